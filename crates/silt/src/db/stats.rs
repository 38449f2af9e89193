//! Point-in-time sizes of every memory-holding component and the LSM shape.

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::Db;

/// Gauges of a database, for metrics and the CLI.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DbStats {
    /// Approximate bytes in the active memtable.
    pub active_memtable_bytes: usize,
    /// Frozen memtables waiting for their SST flush.
    pub frozen_memtables: usize,
    /// Approximate bytes in frozen memtables.
    pub frozen_memtable_bytes: usize,
    /// WAL bytes written but not yet durable in the object store.
    pub wal_unflushed_bytes: usize,
    /// Bytes held by the block cache.
    pub block_cache_bytes: u64,
    /// Block cache lookups that hit.
    pub block_cache_hits: u64,
    /// Block cache lookups that missed.
    pub block_cache_misses: u64,
    /// Bytes of block files in the disk cache (0 when disabled).
    pub disk_cache_bytes: u64,
    /// Disk cache lookups that hit.
    pub disk_cache_hits: u64,
    /// Disk cache lookups that missed.
    pub disk_cache_misses: u64,
    /// Bytes of SST index and filter blocks held in memory.
    pub sst_meta_bytes: usize,
    /// Bytes of block fetches in flight.
    pub inflight_read_bytes: u64,
    /// Bytes waiting in the local log's buffer (0 without a local log).
    pub local_log_pending_bytes: u64,
    /// The configured memory budget (see `Settings::memory_budget`).
    pub memory_budget_bytes: usize,
    /// SSTs in L0.
    pub l0_ssts: usize,
    /// Highest sequence number visible to reads.
    pub visible_seq: u64,
    /// Highest sequence number durable in the object store.
    pub durable_seq: u64,
    /// Live snapshots.
    pub snapshots: usize,
}

impl Db {
    /// Current gauges.
    pub fn stats(&self) -> DbStats {
        let inner = &self.inner;
        let v = inner.current();
        DbStats {
            active_memtable_bytes: v.active.size_bytes(),
            frozen_memtables: v.frozen.len(),
            frozen_memtable_bytes: v.frozen.iter().map(|m| m.size_bytes()).sum(),
            wal_unflushed_bytes: inner.wal.as_ref().map_or(0, |w| w.unflushed_bytes()),
            block_cache_bytes: inner.cache.size_bytes(),
            block_cache_hits: inner.cache.hits.load(Ordering::Relaxed),
            block_cache_misses: inner.cache.misses.load(Ordering::Relaxed),
            disk_cache_bytes: inner.cache.disk.as_ref().map_or(0, |d| d.size_bytes()),
            disk_cache_hits: inner
                .cache
                .disk
                .as_ref()
                .map_or(0, |d| d.metrics.hits.load(Ordering::Relaxed)),
            disk_cache_misses: inner
                .cache
                .disk
                .as_ref()
                .map_or(0, |d| d.metrics.misses.load(Ordering::Relaxed)),
            sst_meta_bytes: v
                .l0
                .iter()
                .chain(v.runs.iter().flat_map(|r| r.ssts.iter()))
                .map(|s| s.meta_bytes())
                .sum(),
            inflight_read_bytes: inner.cache.inflight_read_bytes(),
            local_log_pending_bytes: inner
                .local
                .as_ref()
                .map_or(0, |l| l.metrics().pending_bytes.load(Ordering::Relaxed)),
            memory_budget_bytes: inner.settings.memory_budget().total,
            l0_ssts: v.l0.len(),
            visible_seq: inner.visible_seq.load(Ordering::Acquire),
            durable_seq: self.durable_seq(),
            snapshots: inner.snapshots.lock().values().sum(),
        }
    }
}
