//! [`Plan`]: a load workload's arguments resolved against the settings and checked.

use std::time::Duration;

use anyhow::{Context, Result};
use silt::objstore::{FaultSpec, LatencySpec};
use silt::{Settings, MAX_VALUE_BYTES};

use super::args::{BenchArgs, BenchCommand};
use super::state::digits;
use crate::exit::UsageError;
use crate::shared::StoreStack;

/// Everything a run needs, resolved and validated.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub workload: &'static str,
    pub read_ratio: f64,
    pub args: BenchArgs,
    /// Length of the timed phase.
    pub duration: Duration,
    /// `soak` only: the warm-up at the start of the timed phase.
    pub warmup: Option<Duration>,
    pub preload: u64,
    pub key_space: u64,
    pub durability: silt::Durability,
    pub settings: Settings,
    pub url: String,
    pub latency: Option<LatencySpec>,
    pub faults: Option<FaultSpec>,
}

impl Plan {
    pub(crate) fn new(
        url: &str,
        stack: StoreStack,
        mut settings: Settings,
        cmd: BenchCommand,
    ) -> Result<Plan> {
        let (workload, read_ratio, args, warmup) = match cmd {
            BenchCommand::Fill(a) => ("fill", 0.0, a, None),
            BenchCommand::Read(a) => ("read", 1.0, a, None),
            BenchCommand::Mixed(m) => ("mixed", m.read_ratio, m.common, None),
            BenchCommand::Soak(s) => ("soak", s.read_ratio, s.common, Some(s.warmup)),
            BenchCommand::WalWa(_) | BenchCommand::Verify(_) | BenchCommand::Recovery(_) => {
                return Err(anyhow::anyhow!("not a load workload"));
            }
        };
        let usage = |msg: String| anyhow::Error::new(UsageError(msg));
        let duration = args.duration.unwrap_or(if workload == "soak" {
            Duration::from_secs(600)
        } else {
            Duration::from_secs(30)
        });
        if duration.is_zero() {
            return Err(usage("--duration must be positive".into()));
        }
        if let Some(w) = warmup {
            if w >= duration {
                return Err(usage(format!(
                    "--warmup ({}) must be shorter than --duration ({})",
                    humantime::format_duration(w),
                    humantime::format_duration(duration)
                )));
            }
        }
        if args.threads == 0 {
            return Err(usage("--threads must be at least 1".into()));
        }
        if let Some(r) = args.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(usage(format!("--rate must be a positive number, got {r}")));
            }
        }
        if args.value_size > MAX_VALUE_BYTES {
            return Err(usage(format!(
                "--value-size must be at most {MAX_VALUE_BYTES}"
            )));
        }
        let preload = args
            .preload
            .unwrap_or(if matches!(workload, "read" | "soak") {
                args.keys
            } else {
                0
            });
        let key_space = args.keys.max(preload);
        if key_space == 0 {
            return Err(usage("--keys must be at least 1".into()));
        }
        let digits = digits(key_space - 1);
        if args.key_size < digits + 1 || args.key_size > silt::MAX_KEY_BYTES {
            return Err(usage(format!(
                "--key-size must be within {}..={} for a key space of {key_space}",
                digits + 1,
                silt::MAX_KEY_BYTES
            )));
        }
        if let Some(d) = args.flush_interval {
            settings.wal.flush_interval = d;
        }
        if let Some(n) = args.max_puts_per_sec {
            settings.wal.max_puts_per_sec = n;
        }
        if let Some(b) = args.segment_bytes {
            settings.wal.segment_bytes = b;
            // Keep the settings valid when only the segment size is raised.
            settings.wal.max_unflushed_bytes = settings.wal.max_unflushed_bytes.max(b);
        }
        if let Some(b) = args.memtable_bytes {
            settings.memtable_bytes = b;
        }
        settings.validate().context("bench settings")?;
        Ok(Plan {
            workload,
            read_ratio,
            duration,
            warmup,
            durability: args.durability.into(),
            preload,
            key_space,
            args,
            settings,
            url: url.to_string(),
            latency: stack.latency,
            faults: stack.faults,
        })
    }
}
