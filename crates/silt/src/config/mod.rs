//! Settings: one serde struct with documented defaults and [`Settings::validate`];
//! [`Settings::load`] reads them from a TOML or JSON file and `SILT_` environment variables
//! (`load.rs`).

mod cache;
mod load;
mod local_log;

pub use cache::CacheSettings;
pub use local_log::{LocalLogMode, LocalLogSettings};

use std::time::Duration;

use serde::{Deserialize, Serialize};
use silt_format::sst::SstOptions;

use crate::error::{Error, Result};

/// Largest key accepted by writes (64 KiB).
pub const MAX_KEY_BYTES: usize = 64 * 1024;
/// Largest value accepted by writes (64 MiB).
pub const MAX_VALUE_BYTES: usize = 64 * 1024 * 1024;
/// Largest write batch, as its encoded WAL record (2 GiB,
/// `silt_format::wal::record_encoded_len` of its ops: about 29 bytes plus key, value and
/// 9 bytes per op). Bounded by the WAL record framing (`u32` length and op count) and by
/// the local log's record limit.
pub const MAX_BATCH_BYTES: usize = crate::wal::local::MAX_LOCAL_RECORD_BYTES;

// The batch limit fits every log the batch is written to. A local-log record of the same
// ops is smaller than its WAL record (no sequence number or CRC).
const _: () = assert!(MAX_BATCH_BYTES as u64 <= silt_format::wal::MAX_RECORD_BYTES);
const _: () = assert!(
    silt_format::local_log::LOCAL_RECORD_OVERHEAD <= silt_format::wal::RECORD_OVERHEAD
        && silt_format::local_log::LOCAL_OP_HEADER_SIZE <= silt_format::wal::OP_HEADER_SIZE
);

const MIB: usize = 1024 * 1024;

/// All tunables of a database. Every field has a default; see each field for its trade-off.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Size at which the active memtable is frozen and queued for flushing to an L0 SST.
    /// Default 64 MiB. Larger: fewer, bigger SSTs and longer WAL replay after a crash.
    pub memtable_bytes: usize,
    /// Frozen memtables allowed to wait for their SST flush before writers wait.
    /// Default 2. Bounds memtable memory at `(1 + this) * memtable_bytes`.
    pub max_frozen_memtables: usize,
    /// In-memory block cache for SST data blocks, in bytes. Default 64 MiB.
    pub block_cache_bytes: u64,
    /// Bytes of SST blocks being fetched from the store at once; readers wait for room
    /// beyond it. Default 16 MiB.
    pub max_inflight_read_bytes: usize,
    /// The optional local log tier (`Durability::Local`). Default `None`: no local log.
    /// When set, every write is also appended to it, so recovery has no sequence holes.
    pub local_log: Option<LocalLogSettings>,
    /// Local-disk cache of SST blocks.
    pub cache: CacheSettings,
    /// Write the memtables to SSTs on `close()`, so the next open replays no WAL.
    /// Default true; false makes closing faster and the next open slower.
    pub flush_on_close: bool,
    /// Remote write-ahead log.
    pub wal: WalSettings,
    /// Layout of the SSTs this writer produces.
    pub sst: SstOptions,
    /// Background compaction of L0 into sorted runs.
    pub compaction: CompactionSettings,
    /// Garbage collection of obsolete objects.
    pub gc: GcSettings,
    /// How object-store faults are ridden out.
    pub store: StoreSettings,
    /// How a follower (`DbBuilder::follower`) keeps up with the writer.
    pub follower: FollowerSettings,
}

/// A follower's polling (see `docs/ARCHITECTURE.md`, "Followers").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FollowerSettings {
    /// Time between polls of the store: each lists the WAL past the last segment applied
    /// and the manifests past the current one (two LISTs), and fetches what is new.
    /// Default 100 ms.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Reads fail with `Unavailable` ([`crate::Error::Stale`]) once the last poll that
    /// found the follower caught up with the store started longer ago than this. `0`:
    /// unbounded (reads serve however old a state). Default 30 s.
    #[serde(with = "humantime_serde")]
    pub max_staleness: Duration,
    /// WAL segments past a gap (a segment the writer is still uploading, or lost) are
    /// fetched ahead and held in memory until the gap fills, up to this many bytes in all;
    /// the ones beyond wait in the store until the gap fills. The segment at the gap
    /// itself is always fetched, so `0` tails strictly in order. Default 64 MiB.
    pub fetch_ahead_bytes: u64,
    /// A poll lists the manifests (`manifest/`) besides the WAL. A follower whose last poll
    /// was caught up and found nothing new, and that finds no new WAL segment, lists them
    /// only this often, so an idle follower makes one LIST a poll; under writes every poll
    /// lists them. A manifest stored with no new WAL segment (a compaction on an idle
    /// writer) is seen within this interval. `0`: every poll. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub manifest_relist_interval: Duration,
}

impl Default for FollowerSettings {
    fn default() -> Self {
        FollowerSettings {
            poll_interval: Duration::from_millis(100),
            max_staleness: Duration::from_secs(30),
            fetch_ahead_bytes: 64 * MIB as u64,
            manifest_relist_interval: Duration::from_secs(1),
        }
    }
}

/// How the engine rides out object-store faults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// Backoff and deadline of retried requests.
    pub retry: RetrySettings,
}

/// Retries of failed store requests: jittered exponential backoff from `initial` up to
/// `max` between attempts. WAL uploads retry for as long as the store keeps failing with
/// transient errors (the handle stays usable); a write waiting for one gives up after
/// `deadline` with `Unavailable`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    /// First backoff. Default 50 ms.
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    /// Longest backoff. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
    /// How long a write (or an open) waits for the store before it fails with
    /// `Unavailable`: the write is then not acknowledged, but it may still become durable,
    /// since its WAL segment keeps being retried. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(5),
            deadline: Duration::from_secs(60),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            memtable_bytes: 64 * MIB,
            max_frozen_memtables: 2,
            block_cache_bytes: 64 * MIB as u64,
            max_inflight_read_bytes: 16 * MIB,
            local_log: None,
            cache: CacheSettings::default(),
            flush_on_close: true,
            wal: WalSettings::default(),
            sst: SstOptions::default(),
            compaction: CompactionSettings::default(),
            gc: GcSettings::default(),
            store: StoreSettings::default(),
            follower: FollowerSettings::default(),
        }
    }
}

/// The configured bound of each memory-holding component, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryBudget {
    /// Active plus frozen memtables: `(1 + max_frozen_memtables) * memtable_bytes`.
    pub memtables: usize,
    /// WAL bytes not yet durable (open segment and uploads in flight).
    pub wal_unflushed: usize,
    /// The block cache.
    pub block_cache: usize,
    /// The SST being built from a frozen memtable.
    pub memtable_flush: usize,
    /// The compaction output SST being built.
    pub compaction_output: usize,
    /// Block fetches in flight.
    pub inflight_reads: usize,
    /// The local log's records not yet written: the pending buffer, the group being
    /// written and its I/O copy, `3 * local_log.max_pending_bytes` (0 without a local
    /// log).
    pub local_log_pending: usize,
    /// The sum.
    pub total: usize,
}

/// Size-tiered compaction (see `docs/compaction.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactionSettings {
    /// Run background compaction. Default true. `silt compact` works either way.
    pub enabled: bool,
    /// Merge L0 into a new sorted run once it holds this many SSTs. Default 4.
    pub l0_trigger: usize,
    /// Writers are slowed (1 ms per write) from this many L0 SSTs. Default 12.
    pub l0_slowdown: usize,
    /// Writers wait for compaction from this many L0 SSTs. Default 20.
    pub l0_stop: usize,
    /// Output SSTs are cut at this size. Default 64 MiB. Also bounds compaction memory:
    /// one output SST is built in memory at a time.
    pub target_sst_bytes: usize,
    /// Runs are merged while the next (older) run is at most this percentage larger than
    /// the newer runs together. Default 100 (size ratio 2).
    pub size_ratio_percent: u64,
    /// Fewest runs a size-ratio merge takes. Default 2.
    pub min_merge_width: usize,
    /// Merge every run into one when `(all runs but the oldest) / oldest` exceeds this
    /// percentage: bounds space amplification from overwrites and deletes. Default 25.
    pub max_space_amp_percent: u64,
    /// Maximum sorted runs before a full merge regardless of sizes. Default 8.
    pub max_runs: usize,
}

impl Default for CompactionSettings {
    fn default() -> Self {
        CompactionSettings {
            enabled: true,
            l0_trigger: 4,
            l0_slowdown: 12,
            l0_stop: 20,
            target_sst_bytes: 64 * MIB,
            size_ratio_percent: 100,
            min_merge_width: 2,
            max_space_amp_percent: 25,
            max_runs: 8,
        }
    }
}

/// Garbage collection of WAL segments, SSTs and manifests no longer needed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcSettings {
    /// Run GC in the background. Default true.
    pub enabled: bool,
    /// Time between background GC passes. Default 60 s. Each pass also checks that this
    /// writer still owns the database, so an idle writer that another writer fenced
    /// learns it within one interval and stops with `Fenced`.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// A manifest keeps what it references for `grace` after a newer manifest replaced it
    /// (by the store's timestamp of the replacement), and an SST is deleted only once it is
    /// older than `grace` too: protects readers in other processes that opened an older
    /// manifest, and SSTs uploaded but not yet in a manifest. A writer's WAL upload retries
    /// must end well within it. Default 5 minutes.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// Lifetime of a read-only handle's lease on the manifest it opened (a `lease`
    /// checkpoint, `checkpoints/`): renewed every third of it while the handle is open,
    /// deleted on close. GC keeps what a lease pins until `grace` after it expires; the
    /// handle's reads fail once its own lease has expired unrenewed. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub lease_lifetime: Duration,
}

impl Default for GcSettings {
    fn default() -> Self {
        GcSettings {
            enabled: true,
            interval: Duration::from_secs(60),
            grace: Duration::from_secs(300),
            lease_lifetime: Duration::from_secs(60),
        }
    }
}

/// Remote WAL flush policy (see `docs/ARCHITECTURE.md`, "Remote WAL").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalSettings {
    /// Seal the open segment once it holds this many bytes. Default 4 MiB.
    /// Larger segments mean fewer PUTs under heavy load; the bound on PUTs per second is
    /// `max(max_puts_per_sec, 1/flush_interval) + write_bytes_per_sec / segment_bytes`.
    pub segment_bytes: usize,
    /// Maximum linger: a segment whose oldest record has waited this long is sealed even if no
    /// durable writer waits. Bounds the loss window of `Buffered` writes. Default 100 ms.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Refill rate of the PUT budget that lets a waiting `Remote` writer seal a segment early.
    /// Default 10 per second. Lower: bigger segments, higher durable-write latency under load.
    pub max_puts_per_sec: f64,
    /// Burst of the PUT budget (tokens the bucket holds). Default 2.
    pub put_burst: u32,
    /// Sealed segments uploading at once. Default 4. While all slots are busy the open segment
    /// keeps growing, so a slow store gets fewer, larger segments.
    pub max_inflight_uploads: usize,
    /// Bytes written but not yet durable in the object store above which writers wait.
    /// Default 64 MiB.
    pub max_unflushed_bytes: usize,
    /// Flush the memtable (which moves the WAL replay point) once this many WAL segments
    /// were assigned since the replay point, full or not: bounds the segments an open
    /// replays when writes are too slow to fill memtables. Default 1,000. Lower: faster
    /// opens, more small L0 SSTs under a trickle of writes.
    pub max_replay_segments: usize,
    /// Flush the memtable once its oldest write is this old, full or not: bounds the age
    /// of the WAL an open replays (and so its length under any write rate). Default 1 h.
    #[serde(with = "humantime_serde")]
    pub max_replay_age: Duration,
}

impl Default for WalSettings {
    fn default() -> Self {
        WalSettings {
            segment_bytes: 4 * MIB,
            flush_interval: Duration::from_millis(100),
            max_puts_per_sec: 10.0,
            put_burst: 2,
            max_inflight_uploads: 4,
            max_unflushed_bytes: 64 * MIB,
            max_replay_segments: 1000,
            max_replay_age: Duration::from_secs(3600),
        }
    }
}

impl Settings {
    /// Check every field; returns [`Error::InvalidSettings`] naming the first bad one.
    ///
    /// # Errors
    /// When a field is out of its allowed range.
    pub fn validate(&self) -> Result<()> {
        fn bad(msg: String) -> Result<()> {
            Err(Error::InvalidSettings(msg))
        }
        if self.memtable_bytes < 4096 {
            return bad(format!(
                "memtable_bytes must be at least 4096, got {}",
                self.memtable_bytes
            ));
        }
        if self.max_inflight_read_bytes < 64 * 1024 {
            return bad(format!(
                "max_inflight_read_bytes must be at least 64 KiB, got {}",
                self.max_inflight_read_bytes
            ));
        }
        if self.max_frozen_memtables == 0 {
            return bad("max_frozen_memtables must be at least 1".into());
        }
        let w = &self.wal;
        if w.segment_bytes < 1024 {
            return bad(format!(
                "wal.segment_bytes must be at least 1024, got {}",
                w.segment_bytes
            ));
        }
        if w.flush_interval.is_zero() {
            return bad("wal.flush_interval must be positive".into());
        }
        if !(w.max_puts_per_sec.is_finite() && w.max_puts_per_sec > 0.0) {
            return bad(format!(
                "wal.max_puts_per_sec must be a positive number, got {}",
                w.max_puts_per_sec
            ));
        }
        if w.put_burst == 0 {
            return bad("wal.put_burst must be at least 1".into());
        }
        if w.max_inflight_uploads == 0 {
            return bad("wal.max_inflight_uploads must be at least 1".into());
        }
        let r = &self.store.retry;
        if r.initial.is_zero() || r.max < r.initial {
            return bad("store.retry needs 0 < initial <= max".into());
        }
        if r.deadline.is_zero() {
            return bad("store.retry.deadline must be positive".into());
        }
        if w.max_replay_segments == 0 {
            return bad("wal.max_replay_segments must be at least 1".into());
        }
        if w.max_replay_age.is_zero() {
            return bad("wal.max_replay_age must be positive".into());
        }
        if w.max_unflushed_bytes < w.segment_bytes {
            return bad(format!(
                "wal.max_unflushed_bytes ({}) must be at least wal.segment_bytes ({})",
                w.max_unflushed_bytes, w.segment_bytes
            ));
        }
        let blocks =
            silt_format::sst::MIN_TARGET_BLOCK_BYTES..=silt_format::sst::MAX_TARGET_BLOCK_BYTES;
        if !blocks.contains(&self.sst.block_bytes) {
            return bad(format!(
                "sst.block_bytes must be within {}..={} (16 MiB), got {}",
                blocks.start(),
                blocks.end(),
                self.sst.block_bytes
            ));
        }
        if self.sst.restart_interval == 0 {
            return bad("sst.restart_interval must be at least 1".into());
        }
        if let Some(l) = &self.local_log {
            l.validate()?;
        }
        let c = &self.compaction;
        if c.l0_trigger < 2 || c.l0_slowdown < c.l0_trigger || c.l0_stop < c.l0_slowdown {
            return bad(format!(
                "compaction needs 2 <= l0_trigger ({}) <= l0_slowdown ({}) <= l0_stop ({})",
                c.l0_trigger, c.l0_slowdown, c.l0_stop
            ));
        }
        if c.target_sst_bytes < 4096 || c.min_merge_width < 2 || c.max_runs < 2 {
            return bad(
                "compaction.target_sst_bytes must be >= 4096, min_merge_width and max_runs >= 2"
                    .into(),
            );
        }
        if self.gc.interval.is_zero() {
            return bad("gc.interval must be positive".into());
        }
        if self.gc.lease_lifetime < Duration::from_secs(1) {
            return bad(format!(
                "gc.lease_lifetime must be at least 1s, got {:?}",
                self.gc.lease_lifetime
            ));
        }
        if self.cache.disk_dir.is_some() && self.cache.disk_bytes < MIB as u64 {
            return bad(format!(
                "cache.disk_bytes must be at least 1 MiB when cache.disk_dir is set, got {}",
                self.cache.disk_bytes
            ));
        }
        let f = &self.follower;
        if f.poll_interval.is_zero() {
            return bad("follower.poll_interval must be positive".into());
        }
        if !f.max_staleness.is_zero() && f.max_staleness < f.poll_interval {
            return bad(format!(
                "follower.max_staleness ({:?}) must be 0 (unbounded) or at least \
                 follower.poll_interval ({:?})",
                f.max_staleness, f.poll_interval
            ));
        }
        if self.sst.bloom_bits_per_key > 64 {
            return bad(format!(
                "sst.bloom_bits_per_key must be at most 64, got {}",
                self.sst.bloom_bits_per_key
            ));
        }
        Ok(())
    }

    /// The memory these settings allow the engine's bounded buffers to hold at once (see
    /// `docs/memory.md`). SST index and filter blocks are not included: they grow with the
    /// data (about 1.25 bytes per key for the filter at 10 bits/key plus one index entry per
    /// data block) and are reported by `DbStats::sst_meta_bytes`.
    pub fn memory_budget(&self) -> MemoryBudget {
        let memtables = (1 + self.max_frozen_memtables) * self.memtable_bytes;
        let parts = MemoryBudget {
            memtables,
            wal_unflushed: self.wal.max_unflushed_bytes,
            block_cache: usize::try_from(self.block_cache_bytes).unwrap_or(usize::MAX),
            // One memtable's SST is built in memory while it uploads.
            memtable_flush: self.memtable_bytes,
            compaction_output: self.compaction.target_sst_bytes,
            inflight_reads: self.max_inflight_read_bytes,
            local_log_pending: self
                .local_log
                .as_ref()
                .map_or(0, |l| 3 * l.max_pending_bytes),
            total: 0,
        };
        MemoryBudget {
            total: parts.memtables
                + parts.wal_unflushed
                + parts.block_cache
                + parts.memtable_flush
                + parts.compaction_output
                + parts.inflight_reads
                + parts.local_log_pending,
            ..parts
        }
    }

    /// Settings suited to tests: small memtables and segments so flushes happen often.
    pub fn small_for_tests() -> Self {
        Settings {
            memtable_bytes: 64 * 1024,
            block_cache_bytes: MIB as u64,
            wal: WalSettings {
                segment_bytes: 16 * 1024,
                max_unflushed_bytes: 4 * MIB,
                ..WalSettings::default()
            },
            sst: SstOptions {
                block_bytes: 1024,
                ..SstOptions::default()
            },
            compaction: CompactionSettings {
                target_sst_bytes: 64 * 1024,
                ..CompactionSettings::default()
            },
            ..Settings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        Settings::default().validate().unwrap();
        Settings::small_for_tests().validate().unwrap();
    }

    #[test]
    fn bad_fields_are_named() {
        let mut s = Settings::default();
        s.wal.max_puts_per_sec = 0.0;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("max_puts_per_sec"), "{e}");
        let mut s = Settings::default();
        s.wal.max_unflushed_bytes = 10;
        assert!(s.validate().is_err());
        let mut s = Settings::default();
        s.gc.interval = Duration::ZERO;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("gc.interval"), "{e}");
        let mut s = Settings::default();
        s.cache.disk_dir = Some("/tmp/c".into());
        s.cache.disk_bytes = 10;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("cache.disk_bytes"), "{e}");
        // One block-size limit, the format's.
        let mut s = Settings::default();
        s.sst.block_bytes = silt_format::sst::MAX_TARGET_BLOCK_BYTES + 1;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("sst.block_bytes"), "{e}");
        s.sst.block_bytes = silt_format::sst::MAX_TARGET_BLOCK_BYTES;
        s.validate().unwrap();
        let mut s = Settings::default();
        s.follower.poll_interval = Duration::ZERO;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("follower.poll_interval"), "{e}");
        let mut s = Settings::default();
        s.follower.max_staleness = Duration::from_millis(10);
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("follower.max_staleness"), "{e}");
        s.follower.max_staleness = Duration::ZERO;
        s.validate().unwrap();
    }

    #[test]
    fn serde_round_trip_with_partial_input() {
        let s: Settings = serde_json::from_str(r#"{"wal":{"flush_interval":"250ms"}}"#).unwrap();
        assert_eq!(s.wal.flush_interval, Duration::from_millis(250));
        assert_eq!(s.memtable_bytes, Settings::default().memtable_bytes);
        let text = serde_json::to_string(&s).unwrap();
        let back: Settings = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
        assert!(serde_json::from_str::<Settings>(r#"{"nope":1}"#).is_err());
    }
}
