//! The benchmark report: JSON (field names are an interface, see `docs/bench.md`) and the
//! human table printed at the end of a run.

use std::collections::BTreeMap;
use std::io::Write;

use hdrhistogram::Histogram;
use serde::Serialize;
use silt::inspect::StoreReport;
use silt::objstore::RequestPrices;
use silt::{EngineSnapshot, Metrics, Settings};

use super::workload::{Raw, Sample};
use super::Plan;

/// S3 Standard request prices, us-east-1, USD per 1,000 requests (see `docs/bench.md`):
/// class A (PUT, COPY, POST, LIST) and class B (GET, SELECT and all other requests; DELETE
/// is free and not counted). Which requests are in which class is
/// `StoreMetricsSnapshot::put_class_requests` / `get_class_requests`.
pub const S3_STANDARD_US_EAST_1: RequestPrices = RequestPrices {
    usd_per_1000_put_class: 0.005,
    usd_per_1000_get_class: 0.0004,
};

const MB: f64 = (1u64 << 20) as f64;

/// Everything `silt bench` measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub workload: String,
    /// RFC 3339, UTC, when the report was made.
    pub date: String,
    pub store_url: String,
    /// Injected object-store latency (`0` when none).
    pub store_latency: String,
    /// Injected object-store faults (`none` when none).
    pub store_faults: String,
    pub read_ratio: f64,
    /// Fraction of writes that are deletes.
    pub delete_ratio: f64,
    pub durability: String,
    /// `closed_loop` or `open_loop`.
    pub mode: String,
    /// Open-loop target, total operations per second.
    pub rate: Option<f64>,
    pub duration_s: f64,
    pub threads: usize,
    pub key_space: u64,
    pub key_size: usize,
    pub value_size: usize,
    pub preload: u64,
    pub preload_s: f64,
    pub seed: u64,
    pub ops: Ops,
    pub ops_per_s: f64,
    /// Operations completed in each second of the timed phase.
    pub throughput_by_second: Vec<u64>,
    /// Mean throughput of the last 10 s over the first 10 s (shorter windows, a third of the
    /// run each, for runs under 30 s); `null` under 3 s.
    pub throughput_tail_ratio: Option<f64>,
    pub latency_us: LatencyByKind,
    pub wal: Wal,
    /// WAL segments uploaded in each second of the timed phase.
    pub wal_segments_by_second: Vec<u64>,
    /// WAL PUT requests in each second of the timed phase.
    pub wal_puts_by_second: Vec<u64>,
    pub object_store: ObjectStore,
    /// Object-store GETs (whole and ranged, any object) per read operation.
    pub gets_per_read: f64,
    /// GETs of SSTs per read operation.
    pub sst_gets_per_read: f64,
    /// Block cache lookups of the timed phase (reads and scans; compactions bypass the cache).
    pub block_cache: BlockCache,
    /// Bytes written to the store / user bytes written (puts x (key + value size) + deletes x
    /// key size).
    pub write_amplification: f64,
    /// Store bytes after the run (every object, from inspect) / live bytes.
    pub space_amplification: f64,
    /// SST bytes only / live bytes.
    pub space_amplification_sst: f64,
    /// Keys holding a value after the run (with `--state`: over every recorded run; else the
    /// preload's and this run's).
    pub live_keys: u64,
    /// live_keys x (key_size + value_size).
    pub live_bytes: u64,
    pub store_bytes: u64,
    /// Cost of the PUT-class requests (PUT, COPY, POST, LIST) per million writes.
    pub cost_usd_per_million_writes: f64,
    pub cost: Cost,
    pub rss_mb: Rss,
    /// Engine counters (flushes, compactions, GC, write stalls) during the timed phase.
    pub engine: EngineSnapshot,
    /// Shape of the tree during and after the run.
    pub lsm: Lsm,
    /// The whole process (open, preload, timed phase, close): user bytes and store traffic.
    pub whole_run: WholeRun,
    /// `soak` only (flattened into the top level).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub soak: Option<Soak>,
    pub settings: Settings,
    pub machine: Machine,
}

#[derive(Debug, Serialize)]
pub struct BlockCache {
    pub hits: u64,
    pub misses: u64,
    /// `hits / (hits + misses)`, `null` without lookups.
    pub hit_ratio: Option<f64>,
    /// Misses per read operation: the blocks reads had to fetch (from the disk cache or the
    /// store), i.e. read amplification in blocks, without the GETs of compactions.
    pub misses_per_read: f64,
}

#[derive(Debug, Serialize)]
pub struct Lsm {
    /// Most L0 SSTs seen by the once-a-second sampler (start and end included).
    pub l0_ssts_max: u64,
    pub l0_trigger: usize,
    pub l0_slowdown: usize,
    pub l0_stop: usize,
    /// After close, from `silt inspect`.
    pub l0_ssts_after: usize,
    pub runs_after: usize,
    pub wal_segments_after: usize,
    /// WAL segments at or past the replay point after close.
    pub wal_segments_to_replay_after: usize,
}

#[derive(Debug, Serialize)]
pub struct WholeRun {
    /// Preload and every put (key + value bytes) and delete (key bytes), late ones included.
    pub user_bytes: u64,
    pub bytes_written: u64,
    pub bytes_read: u64,
    /// GETs, whole and ranged.
    pub gets: u64,
    pub puts: u64,
    /// `bytes_written / user_bytes`: WAL, flushes, compactions, manifests.
    pub write_amplification: f64,
    pub memtable_flushes: u64,
    pub compactions: u64,
    pub compaction_bytes_in: u64,
    pub compaction_bytes_out: u64,
}

/// The `soak` figures (see `docs/bench.md`, "Soak").
#[derive(Debug, Serialize)]
pub struct Soak {
    pub warmup_s: f64,
    /// `Settings::memory_budget().total`, MB.
    pub memory_budget_mb: f64,
    /// Its parts, MB.
    pub memory_budget_parts_mb: BTreeMap<String, f64>,
    /// Peak resident memory of the timed phase, MB.
    pub rss_peak_mb: f64,
    /// `rss_peak_mb / memory_budget_mb`.
    pub rss_peak_over_budget: f64,
    /// Least-squares slope of resident memory over the samples after the warm-up, MB/s.
    pub rss_growth_after_warmup_mb_per_s: f64,
    /// Block cache hits / lookups over the timed phase (`null` without lookups).
    pub cache_hit_ratio: Option<f64>,
    /// The same after the warm-up.
    pub cache_hit_ratio_after_warmup: Option<f64>,
    /// Disk cache hits / lookups over the timed phase (`null` when disabled or unused).
    pub disk_cache_hit_ratio: Option<f64>,
    pub disk_cache_hit_ratio_after_warmup: Option<f64>,
    /// Object-store GETs (whole and ranged, any object) per read over the timed phase.
    pub object_store_gets_per_read: f64,
    /// The same after the warm-up.
    pub object_store_gets_per_read_after_warmup: f64,
    pub reads_after_warmup: u64,
    pub gets_after_warmup: u64,
    /// Memory gauges at the end of the timed phase, MB.
    pub gauges_end_mb: Gauges,
    /// Live engine objects at the end of the timed phase.
    pub live_end: silt::LiveObjects,
    /// Once a second: resident memory, gauges and L0 SSTs.
    pub memory_by_second: Vec<Sample>,
}

#[derive(Debug, Serialize)]
pub struct Gauges {
    pub active_memtable: f64,
    pub frozen_memtables: f64,
    pub memtables: f64,
    pub wal_unflushed: f64,
    pub block_cache: f64,
    pub sst_meta: f64,
    pub inflight_reads: f64,
    pub disk_cache: f64,
    pub local_log_pending: f64,
}

#[derive(Debug, Serialize)]
pub struct Ops {
    pub read: u64,
    /// Puts and deletes.
    pub write: u64,
    /// The deletes among the writes.
    pub delete: u64,
    /// Reads that found no value (key never written, or deleted).
    pub read_misses: u64,
    /// Operations that completed after the deadline (latency recorded, not counted).
    pub late: u64,
}

#[derive(Debug, Serialize)]
pub struct LatencyByKind {
    pub read: Quantiles,
    pub write: Quantiles,
}

#[derive(Debug, Serialize)]
pub struct Quantiles {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

#[derive(Debug, Serialize)]
pub struct Wal {
    /// Segments uploaded during the timed phase.
    pub segments: u64,
    /// Bytes of those segments.
    pub bytes: u64,
    /// WAL PUT requests (retries and conflicts included) during the timed phase.
    pub puts: u64,
    pub segments_per_s: f64,
    pub puts_per_s: f64,
    pub mean_segment_bytes: f64,
    pub puts_per_1000_writes: f64,
    /// `max(max_puts_per_sec, 1/flush_interval) + wal_bytes_per_s / segment_bytes`.
    pub put_rate_bound_per_s: f64,
    pub wal_bytes_per_s: f64,
    /// `puts <= put_rate_bound_per_s x duration_s + wal.put_burst` (the token bucket starts
    /// full, which matters only in short runs).
    pub within_bound: bool,
    /// Seals by trigger during the timed phase.
    pub seals: BTreeMap<String, u64>,
    /// WAL PUTs of the whole process: open (fence segment), preload, timed phase, close.
    pub puts_whole_run: u64,
    /// WAL objects in the store before and after the run (`silt inspect`'s `wal_segments`).
    /// `objects_after - objects_before = puts_whole_run - gc_deleted_whole_run` when no
    /// upload was retried.
    pub objects_before: usize,
    pub objects_after: usize,
    pub gc_deleted_whole_run: u64,
}

#[derive(Debug, Serialize)]
pub struct ObjectStore {
    /// Whole and ranged GETs.
    pub get: u64,
    /// PUTs (plain and conditional) and multipart requests.
    pub put: u64,
    pub list: u64,
    pub head: u64,
    pub delete: u64,
    pub copy: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub wal_puts: u64,
    pub sst_gets: u64,
    pub errors: u64,
    /// Requests the engine retried after a transient error (timed phase).
    pub retries: u64,
    /// `retries` per 1,000 requests of the timed phase.
    pub retries_per_1000_requests: f64,
    /// Requests that still failed at `store.retry.deadline` (timed phase).
    pub retries_gave_up: u64,
    /// Mean and tail latency per request kind over the whole process (µs).
    pub latency: BTreeMap<String, silt::objstore::LatencySummary>,
}

#[derive(Debug, Serialize)]
pub struct Cost {
    pub usd_per_1000_put_class: f64,
    pub usd_per_1000_get_class: f64,
    pub put_class_requests: u64,
    pub get_class_requests: u64,
    /// Every request of the timed phase.
    pub usd_total: f64,
    pub usd_per_million_ops: f64,
    /// GET-class requests per million reads.
    pub usd_per_million_reads: f64,
}

#[derive(Debug, Serialize)]
pub struct Rss {
    pub start: f64,
    pub peak: f64,
    pub end: f64,
    /// Least-squares slope over the samples after the first 10% of the run.
    pub growth_mb_per_s: f64,
    pub samples: usize,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub mem_total_gb: f64,
    pub cpu: String,
    pub os: String,
    pub arch: String,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

#[allow(clippy::cast_precision_loss)]
fn f(n: u64) -> f64 {
    n as f64
}

fn quantiles(h: &Histogram<u64>) -> Quantiles {
    Quantiles {
        count: h.len(),
        mean: if h.is_empty() { 0.0 } else { h.mean() },
        p50: h.value_at_quantile(0.50),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
    }
}

/// Slope (y per x) of the least-squares line through `points`; 0 with fewer than 2.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    if points.len() < 2 {
        return 0.0;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    ratio(sxy, sxx)
}

/// Mean of the last window over the mean of the first (10 s, or a third of shorter runs).
pub fn tail_ratio(by_second: &[u64]) -> Option<f64> {
    let w = (by_second.len() / 3).min(10);
    if w == 0 {
        return None;
    }
    let first: u64 = by_second[..w].iter().sum();
    let last: u64 = by_second[by_second.len() - w..].iter().sum();
    Some(ratio(f(last), f(first)))
}

fn machine() -> Machine {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        mem_total_gb: (f(mem_kb) / (1024.0 * 1024.0) * 10.0).round() / 10.0,
        cpu,
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
    }
}

/// Assemble the report from the raw measurements, the whole-process metrics after close, and
/// the store before and after.
pub(crate) fn build(
    plan: &Plan,
    raw: &Raw,
    whole: &Metrics,
    before: &StoreReport,
    after: &StoreReport,
) -> Report {
    let args = &plan.args;
    let secs = raw.duration.as_secs_f64();
    // Every counter over the timed phase.
    let timed = raw.end.since(&raw.start);
    let s = &timed.store;
    let retries = &timed.store_retries;
    let (reads, writes) = (raw.reads, raw.writes);
    let ops = reads + writes;
    let wal = timed.wal.unwrap_or_default();
    let segments = wal.segments_uploaded;
    let wal_bytes_uploaded = wal.bytes_uploaded;
    let w = &plan.settings.wal;
    let wal_bytes_per_s = ratio(f(s.wal_bytes), secs);
    let bound = w.max_puts_per_sec.max(1.0 / w.flush_interval.as_secs_f64())
        + wal_bytes_per_s / w.segment_bytes as f64;
    let puts_per_s = ratio(f(s.wal_puts), secs);
    let seals = wal
        .seals_by_trigger()
        .iter()
        .map(|(trigger, n)| ((*trigger).to_string(), *n))
        .collect();

    let prices = S3_STANDARD_US_EAST_1;
    let cost = s.cost(&prices);
    let (put_usd, get_usd) = (cost.put_class_usd, cost.get_class_usd);

    let entry = (args.key_size + args.value_size) as u64;
    let live_bytes = raw.live_keys * entry;
    let user_bytes = (writes - raw.deletes) * entry + raw.deletes * args.key_size as u64;
    let whole_user_bytes =
        (plan.preload + raw.puts_all) * entry + raw.deletes_all * args.key_size as u64;
    let c = &plan.settings.compaction;
    let lsm = Lsm {
        l0_ssts_max: raw.samples.iter().map(|s| s.l0_ssts).max().unwrap_or(0),
        l0_trigger: c.l0_trigger,
        l0_slowdown: c.l0_slowdown,
        l0_stop: c.l0_stop,
        l0_ssts_after: after.l0_ssts,
        runs_after: after.runs.len(),
        wal_segments_after: after.wal_segments,
        wal_segments_to_replay_after: after.wal_segments_to_replay,
    };
    let whole_run = WholeRun {
        user_bytes: whole_user_bytes,
        bytes_written: whole.store.bytes_written,
        bytes_read: whole.store.bytes_read,
        gets: whole.store.get_requests(),
        puts: whole.store.put_requests(),
        write_amplification: ratio(f(whole.store.bytes_written), f(whole_user_bytes)),
        memtable_flushes: whole.engine.memtable_flushes,
        compactions: whole.engine.compactions,
        compaction_bytes_in: whole.engine.compaction_bytes_in,
        compaction_bytes_out: whole.engine.compaction_bytes_out,
    };

    let to_mb = |b: u64| (f(b) / MB * 10.0).round() / 10.0;
    let warm = 0.1 * secs;
    let points: Vec<(f64, f64)> = raw
        .rss
        .iter()
        .filter(|(t, _)| *t >= warm)
        .map(|(t, b)| (*t, f(*b) / MB))
        .collect();

    let gc_deleted_whole_run = whole.engine.gc_deleted_wal;

    Report {
        workload: plan.workload.to_string(),
        date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        store_url: plan.url.clone(),
        store_latency: plan
            .latency
            .map_or_else(|| "0".to_string(), |l| l.to_string()),
        store_faults: plan
            .faults
            .map_or_else(|| "none".to_string(), |f| f.to_string()),
        read_ratio: plan.read_ratio,
        delete_ratio: args.delete_ratio,
        durability: format!("{:?}", plan.durability).to_lowercase(),
        mode: if args.rate.is_some() {
            "open_loop"
        } else {
            "closed_loop"
        }
        .to_string(),
        rate: args.rate,
        duration_s: secs,
        threads: args.threads,
        key_space: plan.key_space,
        key_size: args.key_size,
        value_size: args.value_size,
        preload: plan.preload,
        preload_s: (raw.preload_secs * 100.0).round() / 100.0,
        seed: args.seed,
        ops: Ops {
            read: reads,
            write: writes,
            delete: raw.deletes,
            read_misses: raw.read_misses,
            late: raw.late_ops,
        },
        ops_per_s: ratio(f(ops), secs),
        throughput_by_second: raw.by_second.clone(),
        throughput_tail_ratio: tail_ratio(&raw.by_second),
        latency_us: LatencyByKind {
            read: quantiles(&raw.read_latency),
            write: quantiles(&raw.write_latency),
        },
        wal: Wal {
            segments,
            bytes: wal_bytes_uploaded,
            puts: s.wal_puts,
            segments_per_s: ratio(f(segments), secs),
            puts_per_s,
            mean_segment_bytes: ratio(f(wal_bytes_uploaded), f(segments)),
            puts_per_1000_writes: ratio(f(s.wal_puts) * 1000.0, f(writes)),
            put_rate_bound_per_s: bound,
            wal_bytes_per_s,
            within_bound: f(s.wal_puts) <= bound * secs + f64::from(w.put_burst),
            seals,
            puts_whole_run: whole.store.wal_puts,
            objects_before: before.wal_segments,
            objects_after: after.wal_segments,
            gc_deleted_whole_run,
        },
        wal_segments_by_second: raw.wal_segments_by_second.clone(),
        wal_puts_by_second: raw.wal_puts_by_second.clone(),
        object_store: ObjectStore {
            retries: retries.total,
            retries_per_1000_requests: ratio(f(retries.total) * 1000.0, f(s.requests())),
            retries_gave_up: retries.gave_up,
            get: s.get_requests(),
            put: s.put_requests(),
            list: s.lists,
            head: s.heads,
            delete: s.deletes,
            copy: s.copies,
            bytes_read: s.bytes_read,
            bytes_written: s.bytes_written,
            wal_puts: s.wal_puts,
            sst_gets: s.sst_gets,
            errors: s.errors,
            latency: raw.end.store.latency.clone(),
        },
        gets_per_read: ratio(f(s.get_requests()), f(reads)),
        sst_gets_per_read: ratio(f(s.sst_gets), f(reads)),
        block_cache: BlockCache {
            hits: timed.block_cache.hits,
            misses: timed.block_cache.misses,
            hit_ratio: timed.block_cache.hit_ratio(),
            misses_per_read: ratio(f(timed.block_cache.misses), f(reads)),
        },
        write_amplification: ratio(f(s.bytes_written), f(user_bytes)),
        space_amplification: ratio(f(after.store_bytes), f(live_bytes)),
        space_amplification_sst: ratio(f(after.sst_bytes), f(live_bytes)),
        live_keys: raw.live_keys,
        live_bytes,
        store_bytes: after.store_bytes,
        cost_usd_per_million_writes: ratio(put_usd * 1e6, f(writes)),
        cost: Cost {
            usd_per_1000_put_class: prices.usd_per_1000_put_class,
            usd_per_1000_get_class: prices.usd_per_1000_get_class,
            put_class_requests: s.put_class_requests(),
            get_class_requests: s.get_class_requests(),
            usd_total: cost.total_usd(),
            usd_per_million_ops: ratio(cost.total_usd() * 1e6, f(ops)),
            usd_per_million_reads: ratio(get_usd * 1e6, f(reads)),
        },
        rss_mb: Rss {
            start: raw.rss.first().map_or(0.0, |r| to_mb(r.1)),
            peak: raw.rss.iter().map(|r| r.1).max().map_or(0.0, to_mb),
            end: raw.rss.last().map_or(0.0, |r| to_mb(r.1)),
            growth_mb_per_s: slope(&points),
            samples: raw.rss.len(),
        },
        engine: timed.engine,
        lsm,
        whole_run,
        soak: plan.warmup.map(|w| soak(plan, raw, w)),
        settings: plan.settings.clone(),
        machine: machine(),
    }
}

fn soak(plan: &Plan, raw: &Raw, warmup: std::time::Duration) -> Soak {
    let mb = |b: u64| f(b) / MB;
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    let budget = plan.settings.memory_budget();
    let parts: BTreeMap<String, f64> = [
        ("memtables", budget.memtables),
        ("wal_unflushed", budget.wal_unflushed),
        ("block_cache", budget.block_cache),
        ("memtable_flush", budget.memtable_flush),
        ("compaction_output", budget.compaction_output),
        ("inflight_reads", budget.inflight_reads),
        ("local_log_pending", budget.local_log_pending),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_string(), round(mb(*v as u64))))
    .collect();
    let budget_mb = mb(budget.total as u64);
    let s1 = &raw.end.stats;
    // The warm-up boundary: the sample at the first whole second at or after it.
    let (warm_s, warm) = raw
        .warm
        .as_ref()
        .map_or((raw.by_second.len(), &raw.end), |(s, m)| (*s, m));
    // Counters over the timed phase, and after the warm-up.
    let timed = raw.end.since(&raw.start);
    let after = raw.end.since(warm);
    let reads_after: u64 = raw.reads_by_second.iter().skip(warm_s).sum();
    let gets_after = after.store.get_requests();
    let after_warm: Vec<(f64, f64)> = raw
        .rss
        .iter()
        .filter(|(t, _)| *t >= warmup.as_secs_f64())
        .map(|(t, b)| (*t, mb(*b)))
        .collect();
    let peak = raw.rss.iter().map(|r| r.1).max().unwrap_or(0);
    let disk_hit_ratio = |d: &Metrics| d.disk_cache.and_then(|c| c.hit_ratio());
    Soak {
        warmup_s: warmup.as_secs_f64(),
        memory_budget_mb: round(budget_mb),
        memory_budget_parts_mb: parts,
        rss_peak_mb: round(mb(peak)),
        rss_peak_over_budget: ratio(mb(peak), budget_mb),
        rss_growth_after_warmup_mb_per_s: slope(&after_warm),
        cache_hit_ratio: timed.block_cache.hit_ratio(),
        cache_hit_ratio_after_warmup: after.block_cache.hit_ratio(),
        disk_cache_hit_ratio: disk_hit_ratio(&timed),
        disk_cache_hit_ratio_after_warmup: disk_hit_ratio(&after),
        object_store_gets_per_read: ratio(f(timed.store.get_requests()), f(raw.reads)),
        object_store_gets_per_read_after_warmup: ratio(f(gets_after), f(reads_after)),
        reads_after_warmup: reads_after,
        gets_after_warmup: gets_after,
        gauges_end_mb: Gauges {
            active_memtable: round(mb(s1.active_memtable_bytes as u64)),
            frozen_memtables: round(mb(s1.frozen_memtable_bytes as u64)),
            memtables: round(mb(
                (s1.active_memtable_bytes + s1.frozen_memtable_bytes) as u64
            )),
            wal_unflushed: round(mb(s1.wal_unflushed_bytes as u64)),
            block_cache: round(mb(s1.block_cache_bytes)),
            sst_meta: round(mb(s1.sst_meta_bytes as u64)),
            inflight_reads: round(mb(s1.inflight_read_bytes)),
            disk_cache: round(mb(s1.disk_cache_bytes)),
            local_log_pending: round(mb(s1.local_log_pending_bytes)),
        },
        live_end: raw.end.live,
        memory_by_second: raw.samples.clone(),
    }
}

fn human_bytes(n: f64) -> String {
    if n < 1024.0 {
        return format!("{n:.0} B");
    }
    let mut v = n;
    let mut unit = "B";
    for u in ["KiB", "MiB", "GiB", "TiB"] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// The table printed at the end of a run.
pub fn write_human(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    let mode = match r.rate {
        Some(rate) => format!("open loop at {rate} ops/s"),
        None => "closed loop".to_string(),
    };
    writeln!(
        out,
        "silt bench {}: {:.1} s, {} clients ({mode}), read ratio {:.2}, {} writes, store latency {}",
        r.workload, r.duration_s, r.threads, r.read_ratio, r.durability, r.store_latency
    )?;
    writeln!(
        out,
        "  store {}   key space {}, {} B keys, {} B values, preload {} ({:.1} s)",
        r.store_url, r.key_space, r.key_size, r.value_size, r.preload, r.preload_s
    )?;
    writeln!(out)?;
    let tail = r
        .throughput_tail_ratio
        .map_or_else(|| "-".to_string(), |t| format!("{t:.2}"));
    writeln!(
        out,
        "{:<22}{:.1} ops/s  ({} reads, {} writes; last/first 10 s: {tail})",
        "throughput", r.ops_per_s, r.ops.read, r.ops.write
    )?;
    writeln!(
        out,
        "{:<22}{:>10} {:>10} {:>10} {:>10} {:>10}",
        "latency (µs)", "p50", "p99", "p99.9", "max", "count"
    )?;
    for (name, q) in [
        ("  read", &r.latency_us.read),
        ("  write", &r.latency_us.write),
    ] {
        writeln!(
            out,
            "{name:<22}{:>10} {:>10} {:>10} {:>10} {:>10}",
            q.p50, q.p99, q.p999, q.max, q.count
        )?;
    }
    let w = &r.wal;
    writeln!(
        out,
        "{:<22}{} segments ({:.2}/s), mean {}, {} PUTs ({:.2}/s, bound {:.2}/s: {})",
        "WAL",
        w.segments,
        w.segments_per_s,
        human_bytes(w.mean_segment_bytes),
        w.puts,
        w.puts_per_s,
        w.put_rate_bound_per_s,
        if w.within_bound { "ok" } else { "EXCEEDED" }
    )?;
    writeln!(
        out,
        "{:<22}{:.1} per 1000 writes",
        "WAL PUTs", w.puts_per_1000_writes
    )?;
    let s = &r.object_store;
    writeln!(
        out,
        "{:<22}GET {}  PUT {}  LIST {}  HEAD {}  DELETE {}; read {}, written {}",
        "object store",
        s.get,
        s.put,
        s.list,
        s.head,
        s.delete,
        human_bytes(f(s.bytes_read)),
        human_bytes(f(s.bytes_written))
    )?;
    if s.retries > 0 || s.errors > 0 {
        writeln!(
            out,
            "{:<22}{} errors, {} retried ({:.1} per 1000 requests), {} gave up",
            "store faults", s.errors, s.retries, s.retries_per_1000_requests, s.retries_gave_up
        )?;
    }
    writeln!(
        out,
        "{:<22}{:.2} (SST GETs {:.2}); block cache misses per read {:.3}",
        "GETs per read", r.gets_per_read, r.sst_gets_per_read, r.block_cache.misses_per_read
    )?;
    writeln!(
        out,
        "{:<22}write {:.2}, space {:.2} (SSTs only {:.2})",
        "amplification", r.write_amplification, r.space_amplification, r.space_amplification_sst
    )?;
    writeln!(
        out,
        "{:<22}${:.4} per million writes (PUT class), ${:.4} per million ops",
        "S3 request cost", r.cost_usd_per_million_writes, r.cost.usd_per_million_ops
    )?;
    writeln!(
        out,
        "{:<22}start {:.1} MB, peak {:.1} MB, end {:.1} MB, growth {:.3} MB/s",
        "resident memory", r.rss_mb.start, r.rss_mb.peak, r.rss_mb.end, r.rss_mb.growth_mb_per_s
    )?;
    writeln!(
        out,
        "{:<22}L0 SSTs max {} (trigger {}, stop {}); after: {} L0, {} runs, {} WAL segments ({} to replay)",
        "tree",
        r.lsm.l0_ssts_max,
        r.lsm.l0_trigger,
        r.lsm.l0_stop,
        r.lsm.l0_ssts_after,
        r.lsm.runs_after,
        r.lsm.wal_segments_after,
        r.lsm.wal_segments_to_replay_after
    )?;
    writeln!(
        out,
        "{:<22}{} user bytes, {} written: write amplification {:.2}",
        "whole process",
        human_bytes(f(r.whole_run.user_bytes)),
        human_bytes(f(r.whole_run.bytes_written)),
        r.whole_run.write_amplification
    )?;
    if let Some(s) = &r.soak {
        let pct = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{:.4}", v));
        writeln!(
            out,
            "{:<22}warm-up {:.0} s; growth after it {:.4} MB/s; peak {:.1} MB of a {:.0} MB budget ({:.2})",
            "soak",
            s.warmup_s,
            s.rss_growth_after_warmup_mb_per_s,
            s.rss_peak_mb,
            s.memory_budget_mb,
            s.rss_peak_over_budget
        )?;
        writeln!(
            out,
            "{:<22}block cache hit ratio {} (after warm-up {}), disk cache {}; GETs per read {:.4} (after warm-up {:.4})",
            "",
            pct(s.cache_hit_ratio),
            pct(s.cache_hit_ratio_after_warmup),
            pct(s.disk_cache_hit_ratio),
            s.object_store_gets_per_read,
            s.object_store_gets_per_read_after_warmup
        )?;
        let g = &s.gauges_end_mb;
        writeln!(
            out,
            "{:<22}memtables {:.1} MB, WAL unflushed {:.1} MB, block cache {:.1} MB, SST meta {:.1} MB (at the end)",
            "", g.memtables, g.wal_unflushed, g.block_cache, g.sst_meta
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_slope() {
        assert!((slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]) - 2.0).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 1.0)]), 0.0);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), 0.0);
    }

    #[test]
    fn tail_ratio_windows() {
        assert_eq!(tail_ratio(&[1, 2]), None);
        assert_eq!(tail_ratio(&[10, 0, 5]), Some(0.5));
        let v: Vec<u64> = (0..30).map(|i| if i < 10 { 100 } else { 80 }).collect();
        assert_eq!(tail_ratio(&v), Some(0.8));
    }
}
