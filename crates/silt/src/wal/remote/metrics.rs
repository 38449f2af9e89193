//! Counters of the remote WAL, and their Prometheus names.

crate::metric::snapshot! {
    /// The remote WAL's counters at one moment (see [`Metrics::wal`](crate::Metrics::wal)).
    pub struct WalSnapshot;
    /// The remote WAL's counters, shared by the write path and the flusher.
    cells pub(crate) struct WalMetrics;
    {
        /// Segments stored in the object store.
        segments_uploaded: Counter "silt_wal_segments_uploaded",
        /// Bytes of those segments.
        bytes_uploaded: Counter "silt_wal_bytes_uploaded",
        /// PUT requests issued for segments (including retries and id conflicts).
        put_requests: Counter "silt_wal_put_requests",
        /// Seals because the open segment reached `wal.segment_bytes`.
        seals_size: Counter "silt_wal_seals_size",
        /// Seals for a waiting `Remote` writer.
        seals_remote: Counter "silt_wal_seals_remote",
        /// Seals at max linger.
        seals_linger: Counter "silt_wal_seals_linger",
        /// Seals for an explicit flush.
        seals_flush: Counter "silt_wal_seals_flush",
        /// Records (commit groups) appended.
        records_appended: Counter "silt_wal_records_appended",
        /// Segment uploads started again after their requests kept failing transiently for
        /// `store.retry.deadline` (each request's own retries are in `store_retries`).
        upload_retries: Counter "silt_wal_upload_retries",
        /// Writers that gave up waiting for the store (`store.retry.deadline`).
        writer_timeouts: Counter "silt_wal_writer_timeouts",
    }
}

impl WalSnapshot {
    /// Seals by trigger, named as in the bench report: `size`, `remote`, `linger`, `flush`.
    pub fn seals_by_trigger(&self) -> [(&'static str, u64); 4] {
        [
            ("size", self.seals_size),
            ("remote", self.seals_remote),
            ("linger", self.seals_linger),
            ("flush", self.seals_flush),
        ]
    }
}
