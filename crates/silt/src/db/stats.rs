//! Point-in-time sizes of every memory-holding component and the LSM shape, and their
//! Prometheus names.

use super::Db;

crate::metric::snapshot! {
    /// Gauges of a database, for metrics and the CLI: what holds memory (each bound of
    /// `Settings::memory_budget`, so some repeat a component's own size gauge), the LSM
    /// shape and the sequence numbers.
    pub struct DbStats;
    {
        /// Approximate bytes in the active memtable.
        active_memtable_bytes: usize, Gauge "silt_stats_active_memtable_bytes",
        /// Frozen memtables waiting for their SST flush.
        frozen_memtables: usize, Gauge "silt_stats_frozen_memtables",
        /// Approximate bytes in frozen memtables.
        frozen_memtable_bytes: usize, Gauge "silt_stats_frozen_memtable_bytes",
        /// WAL bytes written but not yet durable in the object store.
        wal_unflushed_bytes: usize, Gauge "silt_stats_wal_unflushed_bytes",
        /// Bytes held by the block cache.
        block_cache_bytes: u64, Gauge "silt_stats_block_cache_bytes",
        /// Bytes of block files in the disk cache (0 when disabled).
        disk_cache_bytes: u64, Gauge "silt_stats_disk_cache_bytes",
        /// Bytes of SST index and filter blocks held in memory.
        sst_meta_bytes: usize, Gauge "silt_stats_sst_meta_bytes",
        /// Bytes of block fetches in flight.
        inflight_read_bytes: u64, Gauge "silt_stats_inflight_read_bytes",
        /// Bytes waiting in the local log's buffer (0 without a local log).
        local_log_pending_bytes: u64, Gauge "silt_stats_local_log_pending_bytes",
        /// The configured memory budget (see `Settings::memory_budget`).
        memory_budget_bytes: usize, Gauge "silt_stats_memory_budget_bytes",
        /// SSTs in L0.
        l0_ssts: usize, Gauge "silt_stats_l0_ssts",
        /// Highest sequence number visible to reads.
        visible_seq: u64, Gauge "silt_stats_visible_seq",
        /// Highest sequence number durable in the object store.
        durable_seq: u64, Gauge "silt_stats_durable_seq",
        /// Live snapshots.
        snapshots: usize, Gauge "silt_stats_snapshots",
    }
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
            wal_unflushed_bytes: inner
                .wal
                .as_ref()
                .map_or(0, super::super::wal::remote::RemoteWal::unflushed_bytes),
            block_cache_bytes: inner.cache.size_bytes(),
            disk_cache_bytes: inner
                .cache
                .disk
                .as_ref()
                .map_or(0, super::super::lsm::disk_cache::DiskCache::size_bytes),
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
                .map_or(0, |l| l.metrics().pending_bytes),
            memory_budget_bytes: inner.settings.memory_budget().total,
            l0_ssts: v.l0.len(),
            visible_seq: inner.visible_seq.load(std::sync::atomic::Ordering::Acquire),
            durable_seq: self.durable_seq(),
            snapshots: inner.snapshots.lock().values().sum(),
        }
    }
}
