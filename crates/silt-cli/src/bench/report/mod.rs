//! The benchmark report: [`build`] assembles it from the run's typed metrics; the JSON
//! schema (field names are an interface, see `docs/bench.md`) is in `schema`, the statistics
//! in `stats`, the request cost in `cost`, the human table printed at the end of a run in
//! `render`.

mod cost;
mod render;
mod schema;
mod stats;

use std::collections::BTreeMap;

use silt::inspect::StoreReport;
use silt::Metrics;

use self::cost::S3_STANDARD_US_EAST_1;
pub use self::render::write_human;
pub use self::schema::Report;
use self::schema::{
    BlockCache, Gauges, LatencyByKind, Lsm, Machine, ObjectStore, Ops, Rss, Soak, Wal, WholeRun,
};
use self::stats::{f, quantiles, ratio, slope, tail_ratio};
use super::plan::Plan;
use super::workload::Raw;

const MB: f64 = (1u64 << 20) as f64;

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
    let cost = cost::of(s, &S3_STANDARD_US_EAST_1, reads, writes);
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
        cost_usd_per_million_writes: cost.usd_per_million_writes,
        cost: cost.cost,
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
