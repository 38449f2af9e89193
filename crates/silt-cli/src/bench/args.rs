//! The `silt bench` command line: [`BenchCommand`] and the arguments of its workloads.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::verify::VerifyArgs;
use crate::recovery::RecoveryArgs;
use crate::shared::LoadDurability;
use crate::walwa::WalWaArgs;

/// The benchmarks. An enum so that more (e.g. WAL write-amplification runs) slot in beside.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Writes only: random keys of the key space (overwrites once it is full).
    Fill(BenchArgs),
    /// Reads only, over a filled key space (`--preload` defaults to `--keys`).
    Read(BenchArgs),
    /// Reads and writes mixed by `--read-ratio` (the seed-000 workload is 0.8).
    Mixed(MixedArgs),
    /// The mixed workload for a long time (default 10 min): memory growth after a warm-up,
    /// peak memory against the budget, cache hit ratios, GETs per read.
    Soak(SoakArgs),
    /// Read keys back and compare them with the expected state that `--state` recorded.
    Verify(VerifyArgs),
    /// Local log write amplification, sparse versus packed, under a compressing-drive model
    /// (seed 003). Needs no store.
    WalWa(WalWaArgs),
    /// Open time of a store written slowly for a long (simulated) time, with and without
    /// the replay bound. Uses an in-memory store behind `--store-latency`.
    Recovery(RecoveryArgs),
}

/// `silt bench mixed` arguments.
#[derive(Debug, Args)]
pub struct MixedArgs {
    /// Fraction of operations that are reads (0.0..=1.0).
    #[arg(long, default_value_t = 0.8, value_parser = parse_ratio, value_name = "R")]
    pub read_ratio: f64,
    #[command(flatten)]
    pub common: BenchArgs,
}

/// `silt bench soak` arguments.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// Fraction of operations that are reads (0.0..=1.0).
    #[arg(long, default_value_t = 0.8, value_parser = parse_ratio, value_name = "R")]
    pub read_ratio: f64,
    /// The first part of the timed phase that the "after warm-up" figures leave out (memory
    /// growth, warm cache hit ratio, warm GETs per read). Must be shorter than `--duration`.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, value_name = "D")]
    pub warmup: Duration,
    #[command(flatten)]
    pub common: BenchArgs,
}

/// Arguments every workload takes.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Length of the timed phase (after any preload), e.g. `30s`, `2m`. Default 30 s
    /// (`soak`: 10 min).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "D")]
    pub duration: Option<Duration>,
    /// Concurrent clients. Closed loop: each issues its next operation when the previous one
    /// returns. With `--rate`, they share the open-loop schedule.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub threads: usize,
    /// Open loop: total operations per second, issued on a fixed schedule; latency is measured
    /// from each operation's scheduled time, so stalls are not hidden (coordinated omission).
    #[arg(long, value_name = "OPS")]
    pub rate: Option<f64>,
    /// Size of the key space (keys are chosen uniformly from it).
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub keys: u64,
    /// Bytes of each key.
    #[arg(long, default_value_t = 16, value_name = "B")]
    pub key_size: usize,
    /// Bytes of each value (random, so incompressible).
    #[arg(long, default_value_t = 100, value_name = "B")]
    pub value_size: usize,
    /// When a write is acknowledged.
    #[arg(long, value_enum, default_value_t = LoadDurability::Remote)]
    pub durability: LoadDurability,
    /// Override `wal.flush_interval` (maximum linger of a WAL record), e.g. `100ms`.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "D")]
    pub flush_interval: Option<Duration>,
    /// Override `wal.max_puts_per_sec` (refill rate of the WAL PUT budget).
    #[arg(long, value_name = "N")]
    pub max_puts_per_sec: Option<f64>,
    /// Override `wal.segment_bytes` (size at which a WAL segment is sealed).
    #[arg(long, value_name = "B")]
    pub segment_bytes: Option<usize>,
    /// Override `memtable_bytes`.
    #[arg(long, value_name = "B")]
    pub memtable_bytes: Option<usize>,
    /// Fraction of writes that are deletes (0.0..=1.0). Which keys a run deletes is decided
    /// per key from `--seed`, so every write a run makes to one key is the same operation.
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio, value_name = "R")]
    pub delete_ratio: f64,
    /// Expected-state file for `silt bench verify`: loaded before the run when it exists,
    /// updated with the keys this run wrote or deleted, and saved after the run.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Before timing, write keys 0..N in `Buffered` batches, then flush the WAL and the
    /// memtables so that reads reach SSTs in the store. Default: `--keys` for `read` and
    /// `soak`, else 0. The key space becomes max(--keys, N).
    #[arg(long, value_name = "N")]
    pub preload: Option<u64>,
    /// Seed of the key, operation and value choices.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw throughput and WAL segments per second (`soak`: resident memory) to FILE (SVG).
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Write every engine metric at the end of the timed phase in the Prometheus text format.
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
}

fn parse_ratio(s: &str) -> std::result::Result<f64, String> {
    let r: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(format!("must be within 0.0..=1.0, got {r}"))
    }
}
