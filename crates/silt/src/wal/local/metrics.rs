//! Counters of the local log, and their Prometheus names.

crate::metric::snapshot! {
    /// The local log's counters at one moment ([`LocalLog::metrics`](super::LocalLog::metrics),
    /// [`Metrics::local_log`](crate::Metrics::local_log)).
    pub struct LocalLogSnapshot;
    /// The local log's counters, shared by its handles and its writer.
    cells pub(crate) struct LocalLogMetrics;
    {
        /// Records (write batches) made durable.
        commits: Counter "silt_local_log_commits",
        /// `fdatasync` calls on log files (one per group, plus one per file switch mid-group).
        syncs: Counter "silt_local_log_syncs",
        /// Commit groups written (one header each).
        groups: Counter "silt_local_log_groups",
        /// 4 KiB blocks written (each `pwrite` covers whole blocks).
        blocks_written: Counter "silt_local_log_blocks_written",
        /// Bytes handed to `pwrite` (= `blocks_written * 4096`).
        bytes_written: Counter "silt_local_log_bytes_written",
        /// Key and value bytes of the records made durable.
        user_bytes: Counter "silt_local_log_user_bytes",
        /// Bytes of encoded records waiting for the next group.
        pending_bytes: Gauge "silt_local_log_pending_bytes",
        /// Groups started in the background because the pending bytes reached
        /// `max_pending_bytes` while nobody waited.
        background_drains: Counter "silt_local_log_background_drains",
        /// Files created (each preallocated with zeros).
        files_created: Counter "silt_local_log_files_created",
        /// Files reused for a new life.
        files_recycled: Counter "silt_local_log_files_recycled",
        /// Spare files deleted (more than two free files).
        files_deleted: Counter "silt_local_log_files_deleted",
    }
}

use crate::metric::ratio;

impl LocalLogSnapshot {
    /// Records made durable per `fdatasync` (the group commit effect); 0 without syncs.
    pub fn records_per_sync(&self) -> f64 {
        ratio(self.commits, self.syncs)
    }

    /// Bytes written to the drive per user byte (`bytes_written / user_bytes`): the write
    /// amplification on a drive without compression; 0 without user bytes.
    pub fn write_amplification(&self) -> f64 {
        ratio(self.bytes_written, self.user_bytes)
    }
}
