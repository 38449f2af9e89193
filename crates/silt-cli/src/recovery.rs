//! `silt bench recovery`: how long a store written slowly for a long time takes to open
//! (issue "Ride out object-store faults", item 4: bounded recovery time).
//!
//! Phase one simulates the slow writer: an in-memory store, written at `--rate` Remote puts
//! per second for `--simulated` of tokio's *paused* time (a day of one write a second is
//! 86,400 writes, each its own WAL segment, in seconds of real time), then dropped without
//! closing, as a crash would leave it. Phase two opens that store `--opens` times on real
//! time behind the global `--store-latency`/`--store-faults` and times each open, which
//! replays the WAL since the manifest's replay point. Run once with the replay bound of the
//! settings (`wal.max_replay_segments`, `wal.max_replay_age`) and once with it switched off
//! (both a hundred years), side by side.
//!
//! GC runs with `gc.grace = 0` in phase one: the writer's WAL below its replay point is
//! deleted at each `gc.interval` as it would be once the (real-time) grace has passed, so
//! what the open lists is what a long-running writer leaves.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use silt::inspect::inspect;
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::ObjectStore;
use silt::objstore::Storage;
use silt::{Db, Settings};

use crate::exit::UsageError;
use crate::shared::StoreStack;

/// Which replay bound(s) to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Bound {
    /// The settings' bound.
    On,
    /// No bound: only a full memtable moves the replay point.
    Off,
    /// Both, side by side.
    Both,
}

/// `silt bench recovery` arguments.
#[derive(Debug, Args)]
pub struct RecoveryArgs {
    /// Remote puts per second of simulated time.
    #[arg(long, default_value_t = 1.0, value_name = "N")]
    pub rate: f64,
    /// Simulated time the slow writer runs before it crashes.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration, value_name = "D")]
    pub simulated: Duration,
    /// Timed opens of the crashed store (median reported).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub opens: usize,
    /// Value bytes per put.
    #[arg(long, default_value_t = 100, value_name = "B")]
    pub value_size: usize,
    /// With the settings' replay bound, without it, or both.
    #[arg(long, value_enum, default_value_t = Bound::Both)]
    pub bound: Bound,
    /// Write the report as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// One configuration's figures.
#[derive(Debug, Serialize)]
pub struct RecoveryRun {
    pub replay_bound: bool,
    pub max_replay_segments: usize,
    pub max_replay_age_secs: u64,
    pub writes: u64,
    pub simulated_secs: u64,
    /// Real time phase one took.
    pub simulate_wall_secs: f64,
    pub replay_bound_flushes: u64,
    /// WAL objects in the store at the crash.
    pub wal_objects: usize,
    /// SSTs in the store at the crash.
    pub sst_objects: usize,
    /// WAL segments each open replayed.
    pub segments_replayed: Vec<u64>,
    /// Wall time of each open, seconds.
    pub open_secs: Vec<f64>,
    pub open_secs_median: f64,
}

/// The report.
#[derive(Debug, Serialize)]
pub struct RecoveryReport {
    pub rate: f64,
    pub store_latency: String,
    pub store_faults: String,
    pub runs: Vec<RecoveryRun>,
}

const ROOT: &str = "db";

fn key(i: u64) -> String {
    format!("k{i:010}")
}

/// Phase one, on a paused current-thread runtime of its own thread.
async fn simulate(
    store: Arc<dyn ObjectStore>,
    settings: Settings,
    writes: u64,
    interval: Duration,
    value: Vec<u8>,
) -> Result<u64> {
    let db = Db::builder(store, Path::from(ROOT))
        .settings(settings)
        .open()
        .await
        .context("opening the simulated writer")?;
    let start = tokio::time::Instant::now();
    for i in 0..writes {
        let at = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(at).await;
        db.put(key(i), &value)
            .await
            .with_context(|| format!("simulated put {i}"))?;
    }
    let flushes = db.metrics().engine.replay_bound_flushes;
    // A crash: the handle goes without `close`, its tasks die with the runtime.
    drop(db);
    Ok(flushes)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => f64::midpoint(s[n / 2 - 1], s[n / 2]),
    }
}

async fn run_one(
    a: &RecoveryArgs,
    stack: &StoreStack,
    base: &Settings,
    bound: bool,
) -> Result<RecoveryRun> {
    let mut settings = base.clone();
    if !bound {
        let century = Duration::from_secs(100 * 365 * 86_400);
        settings.wal.max_replay_segments = usize::MAX;
        settings.wal.max_replay_age = century;
    }
    let mut simulated_settings = settings.clone();
    simulated_settings.gc.grace = Duration::ZERO;
    let writes = (a.rate * a.simulated.as_secs_f64()).floor() as u64;
    let interval = Duration::from_secs_f64(1.0 / a.rate);
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let value = vec![b'v'; a.value_size];

    let wall = std::time::Instant::now();
    let store = Arc::clone(&mem);
    let flushes = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .context("building the simulated runtime")?;
        rt.block_on(simulate(store, simulated_settings, writes, interval, value))
    })
    .await
    .map_err(|e| anyhow!("the simulated writer panicked: {e}"))??;
    let simulate_wall_secs = wall.elapsed().as_secs_f64();
    let crashed = inspect(&Storage::new(Arc::clone(&mem), Path::from(ROOT)))
        .await
        .context("inspecting the crashed store")?;
    let (wal_objects, sst_objects) = (crashed.wal_segments, crashed.sst_objects);

    let (mut open_secs, mut segments_replayed) = (Vec::new(), Vec::new());
    for _ in 0..a.opens {
        let t = std::time::Instant::now();
        let db = stack
            .apply(Db::builder(Arc::clone(&mem), Path::from(ROOT)))
            .settings(settings.clone())
            .open()
            .await
            .context("opening the crashed store")?;
        open_secs.push(t.elapsed().as_secs_f64());
        segments_replayed.push(db.metrics().engine.recovery_segments);
        // The last write is there (its ack was Remote).
        if writes > 0 {
            let got = db.get(key(writes - 1)).await?;
            if got.is_none() {
                return Err(anyhow!(
                    "the last acknowledged write is missing after the open"
                ));
            }
        }
        // Dropped, not closed: the next open replays the same WAL.
        drop(db);
    }
    Ok(RecoveryRun {
        replay_bound: bound,
        max_replay_segments: settings.wal.max_replay_segments,
        max_replay_age_secs: settings.wal.max_replay_age.as_secs(),
        writes,
        simulated_secs: a.simulated.as_secs(),
        simulate_wall_secs,
        replay_bound_flushes: flushes,
        wal_objects,
        sst_objects,
        open_secs_median: median(&open_secs),
        segments_replayed,
        open_secs,
    })
}

/// Run the benchmark and report.
pub async fn run(a: RecoveryArgs, stack: StoreStack, settings: Settings) -> Result<()> {
    if !(a.rate.is_finite() && a.rate > 0.0) {
        return Err(UsageError(format!("--rate must be a positive number, got {}", a.rate)).into());
    }
    if a.opens == 0 {
        return Err(UsageError("--opens must be at least 1".into()).into());
    }
    if a.simulated.is_zero() {
        return Err(UsageError("--simulated must be positive".into()).into());
    }
    let bounds: &[bool] = match a.bound {
        Bound::On => &[true],
        Bound::Off => &[false],
        Bound::Both => &[true, false],
    };
    let mut runs = Vec::new();
    for &b in bounds {
        runs.push(run_one(&a, &stack, &settings, b).await?);
    }
    let report = RecoveryReport {
        rate: a.rate,
        store_latency: stack
            .latency
            .map_or_else(|| "none".into(), |l| l.to_string()),
        store_faults: stack
            .faults
            .map_or_else(|| "none".into(), |f| f.to_string()),
        runs,
    };
    print_table(&report);
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn print_table(r: &RecoveryReport) {
    println!(
        "recovery after a slow writer: {} puts/s, store latency {}, faults {}",
        r.rate, r.store_latency, r.store_faults
    );
    println!(
        "{:<12} {:>9} {:>10} {:>8} {:>6} {:>9} {:>10} {:>10}",
        "replay bound",
        "writes",
        "simulated",
        "WAL objs",
        "SSTs",
        "replayed",
        "open p50",
        "flushes"
    );
    for run in &r.runs {
        let bound = if run.replay_bound {
            format!("{}/{}s", run.max_replay_segments, run.max_replay_age_secs)
        } else {
            "off".into()
        };
        println!(
            "{:<12} {:>9} {:>9}s {:>8} {:>6} {:>9} {:>9.2}s {:>10}",
            bound,
            run.writes,
            run.simulated_secs,
            run.wal_objects,
            run.sst_objects,
            run.segments_replayed.first().copied().unwrap_or(0),
            run.open_secs_median,
            run.replay_bound_flushes
        );
    }
}
