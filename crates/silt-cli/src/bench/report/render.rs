//! The human table printed at the end of a run.

use std::io::Write;

use super::schema::Report;
use super::stats::f;

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
        let pct = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
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
