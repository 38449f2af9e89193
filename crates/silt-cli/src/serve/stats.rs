//! The server's own figures (INFO's clients and stats sections, `--metrics-listen`):
//! connections, and calls and latency per command, under a bounded set of names.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram's buckets.
pub const BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default)]
struct CommandStats {
    calls: AtomicU64,
    /// Calls at most `BUCKETS[i]` seconds long (not cumulative).
    buckets: [AtomicU64; BUCKETS.len()],
    nanos: AtomicU64,
}

/// Counters shared by every connection.
#[derive(Debug)]
pub struct Stats {
    /// Connections open now.
    pub connected: AtomicU64,
    /// Connections accepted since the start.
    pub connections_total: AtomicU64,
    /// Commands run since the start.
    pub commands_total: AtomicU64,
    names: Vec<&'static str>,
    /// One per name, then one for unknown commands.
    per_command: Vec<CommandStats>,
}

impl Stats {
    /// Figures for the commands `names` (index `names.len()` counts every other name).
    pub fn new(names: Vec<&'static str>) -> Stats {
        let per_command = (0..=names.len()).map(|_| CommandStats::default()).collect();
        Stats {
            connected: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            commands_total: AtomicU64::new(0),
            names,
            per_command,
        }
    }

    /// Count one call of command `index` (`None`: unknown) that took `took`.
    pub fn record(&self, index: Option<usize>, took: Duration) {
        self.commands_total.fetch_add(1, Ordering::Relaxed);
        let i = index.unwrap_or(self.names.len()).min(self.names.len());
        let Some(c) = self.per_command.get(i) else {
            return;
        };
        c.calls.fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        if let Some(b) = BUCKETS.iter().position(|b| secs <= *b) {
            c.buckets[b].fetch_add(1, Ordering::Relaxed);
        }
        c.nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The Prometheus text of these figures (commands never called are left out).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(out, "# TYPE silt_serve_connections gauge");
        let _ = writeln!(out, "silt_serve_connections {}", load(&self.connected));
        let _ = writeln!(out, "# TYPE silt_serve_connections_total counter");
        let _ = writeln!(
            out,
            "silt_serve_connections_total {}",
            load(&self.connections_total)
        );
        let named = || {
            self.names
                .iter()
                .copied()
                .chain(std::iter::once("unknown"))
                .zip(&self.per_command)
                .filter(|(_, c)| load(&c.calls) > 0)
        };
        let _ = writeln!(out, "# TYPE silt_serve_commands_total counter");
        for (name, c) in named() {
            let _ = writeln!(
                out,
                "silt_serve_commands_total{{command=\"{name}\"}} {}",
                load(&c.calls)
            );
        }
        let _ = writeln!(out, "# TYPE silt_serve_command_duration_seconds histogram");
        for (name, c) in named() {
            let mut cumulative = 0;
            for (b, le) in c.buckets.iter().zip(BUCKETS) {
                cumulative += load(b);
                let _ = writeln!(
                    out,
                    "silt_serve_command_duration_seconds_bucket{{command=\"{name}\",le=\"{le}\"}} \
                     {cumulative}"
                );
            }
            let calls = load(&c.calls);
            let _ = writeln!(
                out,
                "silt_serve_command_duration_seconds_bucket{{command=\"{name}\",le=\"+Inf\"}} \
                 {calls}"
            );
            let _ = writeln!(
                out,
                "silt_serve_command_duration_seconds_sum{{command=\"{name}\"}} {}",
                load(&c.nanos) as f64 / 1e9
            );
            let _ = writeln!(
                out,
                "silt_serve_command_duration_seconds_count{{command=\"{name}\"}} {calls}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_counts_and_cumulative_buckets() {
        let s = Stats::new(vec!["get", "set"]);
        s.record(Some(0), Duration::from_micros(50));
        s.record(Some(0), Duration::from_millis(3));
        s.record(None, Duration::from_secs(10));
        s.record(Some(99), Duration::from_micros(1));
        let text = s.to_prometheus();
        assert!(
            text.contains("silt_serve_commands_total{command=\"get\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("silt_serve_commands_total{command=\"unknown\"} 2\n"),
            "{text}"
        );
        assert!(!text.contains("command=\"set\""), "{text}");
        assert!(text.contains(
            "silt_serve_command_duration_seconds_bucket{command=\"get\",le=\"0.0001\"} 1\n"
        ));
        assert!(text.contains(
            "silt_serve_command_duration_seconds_bucket{command=\"get\",le=\"0.005\"} 2\n"
        ));
        assert!(text.contains(
            "silt_serve_command_duration_seconds_bucket{command=\"unknown\",le=\"+Inf\"} 2\n"
        ));
        assert_eq!(s.commands_total.load(Ordering::Relaxed), 4);
    }
}
