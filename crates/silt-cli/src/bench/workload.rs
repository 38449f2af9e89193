//! The load: preload, then `threads` clients for the timed phase, and a once-a-second sampler
//! of the engine's metrics.
//!
//! Accounting rules (also in `docs/bench.md`):
//! * the timed phase is `[start, start + duration)`; an operation counts (in `ops`,
//!   `throughput_by_second`) when it *completes* inside it, in the second it completes;
//! * operations still running at the deadline are awaited: their latencies are recorded (so a
//!   stall at the end is not hidden) but they are not counted as throughput (`late_ops`);
//! * engine metrics are read at `start` and at the deadline, so counters cover exactly the
//!   timed phase (not the preload, not the final flush on close).
//!
//! Values are [`fill_value`]`(key, seed)` and a write of key `k` is a delete exactly when
//! [`is_delete`]`(k, seed, delete_ratio)`, so the store's contents after a run are known (see
//! `state`).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use silt::{Db, Durability, Metrics, WriteBatch, WriteOptions};
use tokio::time::Instant;

use super::plan::Plan;
use super::state::{fill_value, is_delete, key, RunInfo, State};

/// Keys written per preload batch.
const PRELOAD_BATCH: u64 = 1000;
/// Largest latency the histograms hold exactly: one hour, in microseconds.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// What the timed phase measured.
#[derive(Debug)]
pub(crate) struct Raw {
    pub duration: Duration,
    pub preload_secs: f64,
    pub reads: u64,
    /// Writes (puts and deletes) completed in the timed phase.
    pub writes: u64,
    /// The deletes among them.
    pub deletes: u64,
    /// Every put and delete the clients made, late ones included (not the preload).
    pub puts_all: u64,
    pub deletes_all: u64,
    pub read_misses: u64,
    /// Operations that completed after the deadline (latency recorded, not counted).
    pub late_ops: u64,
    /// Completed operations per second of the timed phase.
    pub by_second: Vec<u64>,
    /// Completed reads per second of the timed phase.
    pub reads_by_second: Vec<u64>,
    /// WAL segments uploaded per second (engine counter deltas).
    pub wal_segments_by_second: Vec<u64>,
    /// WAL PUT requests per second (object-store counter deltas).
    pub wal_puts_by_second: Vec<u64>,
    /// (seconds since start, resident bytes), one sample at start and one per second.
    pub rss: Vec<(f64, u64)>,
    /// Memory gauges and LSM shape, one sample at start and one per second.
    pub samples: Vec<Sample>,
    /// `soak`: the second the warm-up ended and the metrics then.
    pub warm: Option<(usize, Metrics)>,
    pub read_latency: Histogram<u64>,
    pub write_latency: Histogram<u64>,
    /// Metrics at the start and at the end of the timed phase.
    pub start: Metrics,
    pub end: Metrics,
    /// Keys holding a value after the run: the keys of `--state` before the run, changed by
    /// the preload and the timed phase (without `--state`, only this run's keys).
    pub live_keys: u64,
    /// Bit per key: written or deleted by this run (preload included).
    pub touched: Vec<u64>,
    /// Bit per key: holds a value after the run.
    pub live: Vec<u64>,
}

/// Once a second: what holds memory, and the LSM shape.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Sample {
    /// Seconds since the start of the timed phase.
    pub t: f64,
    pub rss_bytes: u64,
    pub memtable_bytes: u64,
    pub wal_unflushed_bytes: u64,
    pub block_cache_bytes: u64,
    pub sst_meta_bytes: u64,
    pub inflight_read_bytes: u64,
    pub l0_ssts: u64,
}

impl Sample {
    fn of(t: f64, m: &Metrics) -> Sample {
        let s = &m.stats;
        Sample {
            t,
            rss_bytes: m.process_resident_bytes.unwrap_or(0),
            memtable_bytes: (s.active_memtable_bytes + s.frozen_memtable_bytes) as u64,
            wal_unflushed_bytes: s.wal_unflushed_bytes as u64,
            block_cache_bytes: s.block_cache_bytes,
            sst_meta_bytes: s.sst_meta_bytes as u64,
            inflight_read_bytes: s.inflight_read_bytes,
            l0_ssts: s.l0_ssts as u64,
        }
    }
}

fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).map_err(|e| anyhow!("histogram: {e}"))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn progress(len: u64, template: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// WAL segments uploaded so far (0 without a remote WAL).
fn segments_uploaded(m: &Metrics) -> u64 {
    m.wal.map_or(0, |w| w.segments_uploaded)
}

/// Shared by the clients.
struct Shared {
    db: Arc<Db>,
    start: Instant,
    deadline: Instant,
    read_ratio: f64,
    delete_ratio: f64,
    /// The run's seed: values and delete choices.
    seed: u64,
    key_space: u64,
    key_size: usize,
    value_size: usize,
    write_opts: WriteOptions,
    /// Per-client interval of the open-loop schedule.
    open_loop: Option<Duration>,
    rate: f64,
    by_second: Vec<AtomicU64>,
    reads_by_second: Vec<AtomicU64>,
    /// Bit per key: holds a value.
    live: Vec<AtomicU64>,
    /// Bit per key: written or deleted by this run.
    touched: Vec<AtomicU64>,
}

fn set_bit(bits: &[AtomicU64], i: u64, on: bool) {
    let word = usize::try_from(i / 64).unwrap_or(usize::MAX);
    if let Some(w) = bits.get(word) {
        if on {
            w.fetch_or(1 << (i % 64), Ordering::Relaxed);
        } else {
            w.fetch_and(!(1 << (i % 64)), Ordering::Relaxed);
        }
    }
}

fn bitmap(len: u64) -> Vec<AtomicU64> {
    (0..len.div_ceil(64)).map(|_| AtomicU64::new(0)).collect()
}

fn words(bits: &[AtomicU64]) -> Vec<u64> {
    bits.iter().map(|w| w.load(Ordering::Relaxed)).collect()
}

fn bit(words: &[u64], i: u64) -> bool {
    let word = usize::try_from(i / 64).unwrap_or(usize::MAX);
    words.get(word).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

/// Record the run in the expected state: every key it touched now holds this run's value or
/// nothing.
pub(crate) fn record_run(plan: &Plan, raw: &Raw, st: &mut State) {
    st.runs.push(RunInfo {
        seed: plan.args.seed,
        value_size: plan.args.value_size,
    });
    let run = u8::try_from(st.runs.len()).unwrap_or(u8::MAX);
    for (k, slot) in (0u64..).zip(st.keys.iter_mut()) {
        if bit(&raw.touched, k) {
            *slot = if bit(&raw.live, k) { run } else { 0 };
        }
    }
}

#[derive(Debug)]
struct ClientOut {
    reads: u64,
    writes: u64,
    deletes: u64,
    puts_all: u64,
    deletes_all: u64,
    read_misses: u64,
    late: u64,
    read_latency: Histogram<u64>,
    write_latency: Histogram<u64>,
}

/// Preload, then run the timed phase. `state`: the expected contents before the run.
pub(crate) async fn run(plan: &Plan, db: &Arc<Db>, state: Option<&State>) -> Result<Raw> {
    let args = &plan.args;
    let live = bitmap(plan.key_space);
    let touched = bitmap(plan.key_space);
    if let Some(st) = state {
        for (k, &run) in (0u64..).zip(st.keys.iter()) {
            if run != 0 {
                set_bit(&live, k, true);
            }
        }
    }

    // Preload: keys 0..preload in Buffered batches, then everything to the store.
    let preload_start = Instant::now();
    if plan.preload > 0 {
        let bar = progress(
            plan.preload,
            "preload {bar:30} {pos}/{len} keys ({per_sec}, {elapsed})",
        );
        let opts = WriteOptions::with_durability(Durability::Buffered);
        let mut value = vec![0u8; args.value_size];
        let mut i = 0;
        while i < plan.preload {
            let end = (i + PRELOAD_BATCH).min(plan.preload);
            let mut batch = WriteBatch::new();
            for k in i..end {
                fill_value(k, args.seed, &mut value);
                batch.put(key(k, args.key_size), &value);
            }
            db.write_with(batch, &opts)
                .await
                .with_context(|| format!("preloading keys {i}..{end}"))?;
            bar.set_position(end);
            i = end;
        }
        bar.set_message("flushing");
        db.flush().await.context("flushing the preload's WAL")?;
        db.flush_memtables()
            .await
            .context("flushing the preload's memtables")?;
        bar.finish_and_clear();
        for k in 0..plan.preload {
            set_bit(&live, k, true);
            set_bit(&touched, k, true);
        }
    }
    let preload_secs = preload_start.elapsed().as_secs_f64();

    let seconds = usize::try_from(plan.duration.as_secs_f64().ceil() as u64).unwrap_or(1);
    // The sample that ends the warm-up (soak): the first one at or after it.
    let warm_second = plan
        .warmup
        .map(|w| usize::try_from(w.as_secs_f64().ceil() as u64).unwrap_or(usize::MAX));
    let start_metrics = db.metrics();
    let start = Instant::now();
    let deadline = start + plan.duration;
    let sh = Arc::new(Shared {
        db: Arc::clone(db),
        start,
        deadline,
        read_ratio: plan.read_ratio,
        delete_ratio: args.delete_ratio,
        seed: args.seed,
        key_space: plan.key_space,
        key_size: args.key_size,
        value_size: args.value_size,
        write_opts: WriteOptions::with_durability(plan.durability),
        open_loop: args
            .rate
            .map(|r| Duration::from_secs_f64(args.threads as f64 / r)),
        rate: args.rate.unwrap_or(0.0),
        by_second: (0..seconds.max(1)).map(|_| AtomicU64::new(0)).collect(),
        reads_by_second: (0..seconds.max(1)).map(|_| AtomicU64::new(0)).collect(),
        live,
        touched,
    });
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..args.threads {
        let sh = Arc::clone(&sh);
        let seed = args.seed ^ (0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(c as u64 + 1));
        clients.spawn(client(c, seed, sh));
    }

    // Sampler: once a second until the deadline.
    let bar = progress(
        u64::try_from(seconds).unwrap_or(u64::MAX),
        "{prefix} {bar:30} {pos}/{len} s {msg}",
    );
    bar.set_prefix(plan.workload);
    let mut rss = vec![(0.0, start_metrics.process_resident_bytes.unwrap_or(0))];
    let mut samples = vec![Sample::of(0.0, &start_metrics)];
    let mut warm = None;
    let mut wal_segments_by_second = Vec::with_capacity(seconds);
    let mut wal_puts_by_second = Vec::with_capacity(seconds);
    let mut prev_segments = segments_uploaded(&start_metrics);
    let mut prev_puts = start_metrics.store.wal_puts;
    let mut end_metrics = None;
    let mut outs = Vec::with_capacity(args.threads);
    for s in 1..=seconds {
        let at = (start + Duration::from_secs(s as u64)).min(deadline);
        let tick = tokio::time::sleep_until(at);
        tokio::pin!(tick);
        loop {
            tokio::select! {
                () = &mut tick => break,
                // Clients end at the deadline, or early on an error (dropping the JoinSet
                // on return aborts the others).
                Some(joined) = clients.join_next() => {
                    outs.push(joined.context("a benchmark client panicked")??);
                }
            }
        }
        let m = db.metrics();
        let segments = segments_uploaded(&m);
        wal_segments_by_second.push(segments.saturating_sub(prev_segments));
        wal_puts_by_second.push(m.store.wal_puts.saturating_sub(prev_puts));
        prev_segments = segments;
        prev_puts = m.store.wal_puts;
        let t = (Instant::now() - start).as_secs_f64();
        rss.push((t, m.process_resident_bytes.unwrap_or(0)));
        samples.push(Sample::of(t, &m));
        if warm.is_none() && warm_second.is_some_and(|w| s >= w) {
            warm = Some((s, db.metrics()));
        }
        let ops = sh.by_second[s - 1].load(Ordering::Relaxed);
        bar.set_position(s as u64);
        bar.set_message(format!(
            "{ops} ops/s, {} WAL segments/s",
            wal_segments_by_second.last().copied().unwrap_or(0)
        ));
        end_metrics = Some(m);
    }
    bar.set_message("waiting for operations in flight");
    let end = end_metrics.unwrap_or_else(|| db.metrics());

    let mut reads = 0;
    let mut writes = 0;
    let mut deletes = 0;
    let mut puts_all = 0;
    let mut deletes_all = 0;
    let mut read_misses = 0;
    let mut late_ops = 0;
    let mut read_latency = new_histogram()?;
    let mut write_latency = new_histogram()?;
    while let Some(joined) = clients.join_next().await {
        outs.push(joined.context("a benchmark client panicked")??);
    }
    for out in outs {
        reads += out.reads;
        writes += out.writes;
        deletes += out.deletes;
        puts_all += out.puts_all;
        deletes_all += out.deletes_all;
        read_misses += out.read_misses;
        late_ops += out.late;
        read_latency
            .add(&out.read_latency)
            .map_err(|e| anyhow!("histogram: {e}"))?;
        write_latency
            .add(&out.write_latency)
            .map_err(|e| anyhow!("histogram: {e}"))?;
    }
    bar.finish_and_clear();
    let live_keys = sh
        .live
        .iter()
        .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
        .sum();
    Ok(Raw {
        duration: plan.duration,
        preload_secs,
        reads,
        writes,
        deletes,
        puts_all,
        deletes_all,
        read_misses,
        late_ops,
        by_second: words(&sh.by_second),
        reads_by_second: words(&sh.reads_by_second),
        wal_segments_by_second,
        wal_puts_by_second,
        rss,
        samples,
        warm,
        read_latency,
        write_latency,
        start: start_metrics,
        end,
        live_keys,
        touched: words(&sh.touched),
        live: words(&sh.live),
    })
}

/// One client: closed loop, or its share of the open-loop schedule.
async fn client(id: usize, seed: u64, sh: Arc<Shared>) -> Result<ClientOut> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = ClientOut {
        reads: 0,
        writes: 0,
        deletes: 0,
        puts_all: 0,
        deletes_all: 0,
        read_misses: 0,
        late: 0,
        read_latency: new_histogram()?,
        write_latency: new_histogram()?,
    };
    let mut value = vec![0u8; sh.value_size];
    // Open loop: client `id` owns schedule slots id, id + threads, id + 2 threads, ...
    let offset = if sh.rate > 0.0 {
        Duration::from_secs_f64(id as f64 / sh.rate)
    } else {
        Duration::ZERO
    };
    let mut slot: u32 = 0;
    loop {
        let scheduled = if let Some(every) = sh.open_loop {
            let at = sh.start + offset + every * slot;
            slot = slot.saturating_add(1);
            if at >= sh.deadline {
                break;
            }
            tokio::time::sleep_until(at).await;
            at
        } else {
            let now = Instant::now();
            if now >= sh.deadline {
                break;
            }
            now
        };
        let is_read =
            sh.read_ratio >= 1.0 || (sh.read_ratio > 0.0 && rng.random_bool(sh.read_ratio));
        let k = rng.random_range(0..sh.key_space);
        let key = key(k, sh.key_size);
        if is_read {
            let found = sh
                .db
                .get(&key)
                .await
                .with_context(|| format!("reading {key}"))?;
            if found.is_none() {
                out.read_misses += 1;
            }
        } else if is_delete(k, sh.seed, sh.delete_ratio) {
            sh.db
                .delete_with(&key, &sh.write_opts)
                .await
                .with_context(|| format!("deleting {key}"))?;
            set_bit(&sh.live, k, false);
            set_bit(&sh.touched, k, true);
            out.deletes_all += 1;
        } else {
            fill_value(k, sh.seed, &mut value);
            sh.db
                .put_with(&key, &value, &sh.write_opts)
                .await
                .with_context(|| format!("writing {key}"))?;
            set_bit(&sh.live, k, true);
            set_bit(&sh.touched, k, true);
            out.puts_all += 1;
        }
        let deleted = !is_read && is_delete(k, sh.seed, sh.delete_ratio);
        let done = Instant::now();
        let us = micros(done.saturating_duration_since(scheduled));
        if is_read {
            out.read_latency.saturating_record(us);
        } else {
            out.write_latency.saturating_record(us);
        }
        if done < sh.deadline {
            let second = usize::try_from((done - sh.start).as_secs()).unwrap_or(usize::MAX);
            if let Some(c) = sh.by_second.get(second) {
                c.fetch_add(1, Ordering::Relaxed);
            }
            if is_read {
                out.reads += 1;
                if let Some(c) = sh.reads_by_second.get(second) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            } else {
                out.writes += 1;
                out.deletes += u64::from(deleted);
            }
        } else {
            out.late += 1;
        }
    }
    Ok(out)
}
