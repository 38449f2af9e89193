//! `silt bench`: load generators that measure throughput, latency, WAL behaviour, object-store
//! requests, cost and memory (see `docs/bench.md`), plus `silt compact` and `silt gc`.
//!
//! Layout: [`BenchCommand`] and its arguments (here), the load itself (`workload`), the report
//! (`report`), the SVG plot (`plot`) and the maintenance commands (`maintenance`).

mod maintenance;
mod plot;
mod report;
mod state;
mod verify;
mod workload;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use silt::inspect::inspect;
use silt::objstore::{store_from_url, FaultSpec, LatencySpec, Storage};
use silt::{DbBuilder, Settings, MAX_VALUE_BYTES};

pub use self::maintenance::{cmd_compact, cmd_gc};
use crate::cli::LoadDurability;
use crate::commands::StoreStack;
use crate::exit::{self, UsageError};

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
    Verify(verify::VerifyArgs),
    /// Local log write amplification, sparse versus packed, under a compressing-drive model
    /// (seed 003). Needs no store.
    WalWa(crate::walwa::WalWaArgs),
    /// Open time of a store written slowly for a long (simulated) time, with and without
    /// the replay bound. Uses an in-memory store behind `--store-latency`.
    Recovery(crate::recovery::RecoveryArgs),
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
    fn new(
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
        let digits = workload::digits(key_space - 1);
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

/// `silt bench WORKLOAD`: open the store as writer, preload, run the timed phase, report.
pub async fn run(
    url: &str,
    stack: StoreStack,
    settings: Settings,
    cmd: BenchCommand,
) -> Result<u8> {
    let cmd = match cmd {
        BenchCommand::WalWa(args) => {
            crate::walwa::run(args).await?;
            return Ok(0);
        }
        BenchCommand::Verify(args) => return verify::run(url, stack, settings, args).await,
        BenchCommand::Recovery(args) => {
            crate::recovery::run(args, stack, settings).await?;
            return Ok(0);
        }
        other => other,
    };
    let plan = Plan::new(url, stack, settings, cmd)?;
    // The expected state before the run (`--state`), checked before anything is written.
    let mut state = match &plan.args.state {
        Some(path) => Some(
            state::State::load_for_run(path, plan.args.key_size, plan.key_space, plan.args.seed)
                .map_err(|e| anyhow::Error::new(UsageError(format!("{e:#}"))))?,
        ),
        None => None,
    };
    // WAL objects before the run, straight from the store (no latency, not counted).
    let before = {
        let (store, root) = store_from_url(url).with_context(|| format!("cannot open {url}"))?;
        inspect(&Storage::new(store, root))
            .await
            .with_context(|| format!("cannot inspect {url}"))?
    };
    let db = DbBuilder::from_url(url)
        .map(|b| {
            b.settings(plan.settings.clone())
                .store_latency(plan.latency)
                .store_faults(plan.faults)
        })
        .with_context(|| format!("cannot open {url}"))?
        .open()
        .await
        .with_context(|| format!("cannot open {url}"))?;
    let db = Arc::new(db);
    let outcome = workload::run(&plan, &db, state.as_ref()).await;
    let prometheus = db.metrics().to_prometheus();
    let closed = db.close().await.context("closing the database");
    let raw = outcome?;
    closed?;
    // After close: the whole process's requests, and the store as it was left.
    let whole = db.metrics();
    let after = inspect(db.storage())
        .await
        .with_context(|| format!("cannot inspect {url}"))?;
    let report = report::build(&plan, &raw, &whole, &before, &after);
    // The database closed cleanly, so every write of the run is in the store.
    if let (Some(st), Some(path)) = (state.as_mut(), &plan.args.state) {
        workload::record_run(&plan, &raw, st);
        st.save(path)?;
    }

    if let Some(path) = &plan.args.metrics {
        write_file(path, prometheus.as_bytes())?;
    }
    if let Some(path) = &plan.args.json {
        let mut text = serde_json::to_vec_pretty(&report)?;
        text.push(b'\n');
        write_file(path, &text)?;
    }
    if let Some(path) = &plan.args.plot {
        let svg = if report.soak.is_some() {
            plot::render_soak(&report)
        } else {
            plot::render(&report)
        }
        .context("drawing the plot")?;
        write_file(path, svg.as_bytes())?;
    }
    let mut out = std::io::stdout().lock();
    report::write_human(&mut out, &report)?;
    out.flush()?;
    Ok(exit::OK)
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
