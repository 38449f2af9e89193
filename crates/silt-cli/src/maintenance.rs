//! `silt compact` and `silt gc`: run one maintenance pass on a store and print what changed
//! (benchmark runs use them between measurements, see `docs/bench.md`).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use silt::inspect::{inspect, StoreReport};
use silt::Db;

use crate::exit;

fn line(out: &mut impl Write, what: &str, a: u64, b: u64) -> std::io::Result<()> {
    writeln!(out, "{what:<18}{a:>14} -> {b:<14}")
}

/// `silt compact`: flush the memtable (what WAL replay brought back), merge every L0 SST and
/// run into one run, then GC.
pub async fn cmd_compact(db: Arc<Db>) -> Result<u8> {
    db.flush_memtables().await.context("flushing memtables")?;
    let before = inspect(db.storage())
        .await
        .context("inspecting the store")?;
    let m0 = db.metrics();
    db.compact().await.context("compacting")?;
    let d = db.metrics().since(&m0);
    let after = inspect(db.storage())
        .await
        .context("inspecting the store")?;
    let mut out = std::io::stdout().lock();
    print_change(&mut out, &before, &after)?;
    writeln!(
        out,
        "store traffic: {} B written, {} B read, {} GETs, {} PUTs",
        d.store.bytes_written,
        d.store.bytes_read,
        d.store.get_requests(),
        d.store.put_requests()
    )?;
    writeln!(
        out,
        "compactions: {}; GC deleted {} WAL segments, {} SSTs, {} manifests",
        d.engine.compactions,
        d.engine.gc_deleted_wal,
        d.engine.gc_deleted_sst,
        d.engine.gc_deleted_manifest
    )?;
    out.flush()?;
    Ok(exit::OK)
}

fn print_change(out: &mut impl Write, a: &StoreReport, b: &StoreReport) -> std::io::Result<()> {
    let n = |v: usize| v as u64;
    writeln!(out, "{:<18}{:>14}    {:<14}", "", "before", "after")?;
    line(out, "L0 SSTs", n(a.l0_ssts), n(b.l0_ssts))?;
    line(out, "sorted runs", n(a.runs.len()), n(b.runs.len()))?;
    line(out, "SSTs (manifest)", n(a.ssts.len()), n(b.ssts.len()))?;
    line(out, "SST objects", n(a.sst_objects), n(b.sst_objects))?;
    line(out, "SST bytes", a.sst_bytes, b.sst_bytes)?;
    line(out, "WAL segments", n(a.wal_segments), n(b.wal_segments))?;
    line(out, "manifests", n(a.manifests), n(b.manifests))?;
    line(out, "store bytes", a.store_bytes, b.store_bytes)
}

/// `silt gc [--grace D]`: one GC pass.
pub async fn cmd_gc(db: Arc<Db>, grace: Option<Duration>) -> Result<u8> {
    let before = inspect(db.storage())
        .await
        .context("inspecting the store")?;
    let r = db.gc(grace).await.context("collecting garbage")?;
    let after = inspect(db.storage())
        .await
        .context("inspecting the store")?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "deleted {} WAL segments, {} SSTs, {} manifests (grace {})",
        r.wal,
        r.sst,
        r.manifests,
        humantime::format_duration(grace.unwrap_or(db.settings().gc.grace))
    )?;
    writeln!(
        out,
        "checkpoints: {} live kept, {} expired deleted{}",
        r.live_checkpoints,
        r.checkpoints,
        if r.corrupt_checkpoints > 0 {
            format!(
                "; {} undecodable: nothing was deleted (delete them with silt checkpoint delete)",
                r.corrupt_checkpoints
            )
        } else {
            String::new()
        }
    )?;
    writeln!(
        out,
        "store bytes {} -> {}",
        before.store_bytes, after.store_bytes
    )?;
    writeln!(
        out,
        "WAL segments {} -> {}; replay point {}: {} segments older than it remain",
        before.wal_segments,
        after.wal_segments,
        after.wal_replay_from,
        after.wal_segments - after.wal_segments_to_replay
    )?;
    out.flush()?;
    Ok(exit::OK)
}
