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
    /// Bytes of SST index and filter blocks held in memory.
    pub sst_meta_bytes: usize,
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
            sst_meta_bytes: v.l0.iter().map(|s| s.meta_bytes()).sum(),
            l0_ssts: v.l0.len(),
            visible_seq: inner.visible_seq.load(Ordering::Acquire),
            durable_seq: self.durable_seq(),
            snapshots: inner.snapshots.lock().values().sum(),
        }
    }
}
