//! Counters of the engine's background work (flushes, compactions, GC, write stalls,
//! recovery), and their Prometheus names.

crate::metric::snapshot! {
    /// The engine's counters at one moment (see [`Metrics::engine`](super::Metrics::engine)).
    pub struct EngineSnapshot;
    /// The engine's counters, shared by the handle and its background tasks.
    cells pub(crate) struct EngineCounters;
    {
        /// Memtables flushed to L0.
        memtable_flushes: Counter "silt_engine_memtable_flushes",
        /// Bytes of SSTs written by memtable flushes.
        flush_bytes: Counter "silt_engine_flush_bytes",
        /// Compactions committed.
        compactions: Counter "silt_engine_compactions",
        /// Bytes read by compactions (input SST sizes).
        compaction_bytes_in: Counter "silt_engine_compaction_bytes_in",
        /// Bytes of SSTs written by compactions.
        compaction_bytes_out: Counter "silt_engine_compaction_bytes_out",
        /// Expired puts compactions turned into tombstones (dropped at the bottom run).
        compaction_expired: Counter "silt_engine_compaction_expired",
        /// GC passes completed (background, after compactions and explicit).
        gc_passes: Counter "silt_engine_gc_passes",
        /// WAL segments deleted by GC.
        gc_deleted_wal: Counter "silt_engine_gc_deleted_wal",
        /// SSTs deleted by GC.
        gc_deleted_sst: Counter "silt_engine_gc_deleted_sst",
        /// Manifests deleted by GC.
        gc_deleted_manifest: Counter "silt_engine_gc_deleted_manifest",
        /// Expired checkpoints and reader leases deleted by GC.
        gc_deleted_checkpoint: Counter "silt_engine_gc_deleted_checkpoint",
        /// GC passes that deleted nothing because a checkpoint object did not decode.
        gc_blocked_by_corrupt_checkpoint: Counter "silt_engine_gc_blocked_by_corrupt_checkpoint",
        /// Memtable flushes started by the replay bound (`wal.max_replay_segments` or
        /// `wal.max_replay_age`) rather than by a full memtable.
        replay_bound_flushes: Counter "silt_engine_replay_bound_flushes",
        /// WAL segments replayed when this handle opened (counted once, by the open).
        recovery_segments: Counter "silt_engine_recovery_segments",
        /// Memtable flushes that failed transiently and were retried.
        flush_failures: Counter "silt_engine_flush_failures",
        /// Compactions that failed (and were retried after a pause).
        compaction_failures: Counter "silt_engine_compaction_failures",
        /// Writes delayed because L0 reached `l0_slowdown`.
        write_slowdowns: Counter "silt_engine_write_slowdowns",
        /// Writes that waited because L0 reached `l0_stop`.
        write_stops: Counter "silt_engine_write_stops",
        /// Manifest commits (flush or compaction) whose write outlived
        /// `store.retry.deadline` and was tried again, with the same bytes.
        manifest_write_retries: Counter "silt_engine_manifest_write_retries",
    }
}
