//! One view of every metric, as a struct and in the Prometheus text format.
//!
//! Metric names are the field paths of [`Metrics`] joined with `_` under a `silt_` prefix
//! (e.g. `silt_wal_segments_uploaded`, `silt_store_wal_puts`, `silt_stats_block_cache_bytes`):
//! the struct definitions are the one place names are defined.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Db, DbStats, EngineCounters};
use crate::objstore::StoreMetricsSnapshot;
use crate::wal::remote::WalMetrics;

/// Everything measurable about a database, at one moment (each field read atomically).
#[derive(Debug, Serialize)]
pub struct Metrics {
    /// Gauges: memtables, caches, WAL buffer, LSM shape, sequence numbers.
    pub stats: DbStats,
    /// Flush, compaction and GC counters.
    pub engine: serde_json::Value,
    /// Remote WAL counters (absent when read-only).
    pub wal: Option<serde_json::Value>,
    /// Object-store requests by kind, bytes, latency quantiles.
    pub store: StoreMetricsSnapshot,
    /// Store requests retried after transient errors, by request class and cause.
    pub store_retries: crate::objstore::RetrySnapshot,
    /// Local log counters (absent without a local log).
    pub local_log: Option<serde_json::Value>,
    /// Live engine objects in the process.
    pub live: crate::live::LiveObjects,
    /// Resident memory of the process in bytes (Linux `/proc/self/status`), if known.
    pub process_resident_bytes: Option<u64>,
}

impl Metrics {
    /// The Prometheus text exposition format: one gauge per numeric leaf.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        if let Ok(v) = serde_json::to_value(self) {
            flatten("silt", &v, &mut out);
        }
        out
    }
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                let name: String = k
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() {
                            c.to_ascii_lowercase()
                        } else {
                            '_'
                        }
                    })
                    .collect();
                flatten(&format!("{prefix}_{name}"), child, out);
            }
        }
        serde_json::Value::Number(n) => {
            let _ = writeln!(out, "# TYPE {prefix} gauge\n{prefix} {n}");
        }
        serde_json::Value::Bool(b) => {
            let _ = writeln!(out, "# TYPE {prefix} gauge\n{prefix} {}", u8::from(*b));
        }
        _ => {}
    }
}

/// Resident set size from `/proc/self/status` (`VmRSS`), in bytes.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl Db {
    /// All metrics now.
    pub fn metrics(&self) -> Metrics {
        let engine: &EngineCounters = &self.inner.counters;
        let wal: Option<&WalMetrics> = self.inner.wal.as_ref().map(|w| w.metrics().as_ref());
        Metrics {
            stats: self.stats(),
            engine: serde_json::to_value(engine).unwrap_or_default(),
            wal: wal.and_then(|w| serde_json::to_value(w).ok()),
            store: self.inner.store_metrics.snapshot(),
            store_retries: self.inner.storage.retries().snapshot(),
            local_log: self
                .inner
                .local
                .as_ref()
                .and_then(|l| serde_json::to_value(l.metrics().as_ref()).ok()),
            live: crate::live::live_objects(),
            process_resident_bytes: resident_bytes(),
        }
    }
}
