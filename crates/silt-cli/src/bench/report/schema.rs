//! The report's JSON schema: field names are an interface (`docs/bench.md`, "The JSON
//! report"), so rename nothing here lightly.

use std::collections::BTreeMap;

use serde::Serialize;
use silt::{EngineSnapshot, Settings};

use crate::bench::workload::Sample;

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
    /// `live_keys` x (`key_size` + `value_size`).
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
