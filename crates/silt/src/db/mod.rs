//! The public database handle.

pub(crate) mod batch;
mod builder;
mod checkpoint;
mod compact;
mod counters;
mod flush;
mod follower;
mod gc;
mod metrics;
mod open;
pub(crate) mod read;
mod snapshot;
mod stats;
mod tasks;
mod write;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use silt_format::manifest::Manifest;
use silt_format::SeqNo;
use tokio::sync::Notify;

pub use self::batch::{Durability, Expiry, WriteBatch, WriteOptions};
pub use self::builder::DbBuilder;
pub use self::checkpoint::CheckpointInfo;
pub(crate) use self::counters::EngineCounters;
pub use self::counters::EngineSnapshot;
pub use self::follower::{FollowerSnapshot, FollowerStatus};
pub use self::gc::GcReport;
pub use self::metrics::Metrics;
pub use self::snapshot::Snapshot;
pub use self::stats::DbStats;
use self::tasks::Tasks;
use crate::clock::Clock;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::lsm::cache::BlockCache;
use crate::lsm::sst::SstHandle;
use crate::lsm::version::Version;
use crate::objstore::Storage;
use crate::wal::remote::RemoteWal;

/// State shared by the handle and its background tasks.
#[derive(Debug)]
pub(crate) struct DbInner {
    pub storage: Storage,
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
    /// `None` when open read-only.
    pub wal: Option<RemoteWal>,
    /// The local log tier, when configured (writers only).
    pub local: Option<crate::wal::local::LocalLog>,
    /// Next sequence number; held while a commit group is sequenced, logged and inserted.
    pub write_lock: Mutex<SeqNo>,
    /// Every sequence `<= visible_seq` is in the memtable and readable.
    pub visible_seq: AtomicU64,
    pub version: RwLock<Arc<Version>>,
    pub manifest: tokio::sync::Mutex<Manifest>,
    /// Serialises memtable flushes (background task and explicit calls).
    pub flush_lock: tokio::sync::Mutex<()>,
    pub cache: BlockCache,
    /// Wakes the memtable flusher.
    pub flush_wake: Notify,
    /// When the oldest write in the active memtable happened (`None`: it is empty); set
    /// under the write lock, cleared at rotation. `wal.max_replay_age` counts from it.
    pub active_since: Mutex<Option<tokio::time::Instant>>,
    /// Signalled when a frozen memtable has been flushed.
    pub frozen_space: Notify,
    /// Live snapshots: sequence → count.
    pub snapshots: Mutex<BTreeMap<SeqNo, usize>>,
    /// Error that stopped background work (e.g. a failed memtable flush).
    pub fatal: Mutex<Option<Error>>,
    pub closed: AtomicBool,
    /// Wakes the compactor (after a flush).
    pub compaction_wake: Notify,
    /// Signalled when a compaction committed (L0 shrank).
    pub compacted: Notify,
    /// Serialises compactions (background and explicit).
    pub compaction_lock: tokio::sync::Mutex<()>,
    /// Every open SST handle, weakly: GC never deletes an SST a reader still holds.
    pub sst_registry: Mutex<std::collections::HashMap<Arc<str>, std::sync::Weak<SstHandle>>>,
    /// SSTs being uploaded whose manifest is not written yet: GC must not touch them.
    pub pending_ssts: Arc<Mutex<std::collections::HashSet<String>>>,
    /// GC's memory of recent manifests (immutable objects, so read once each).
    pub gc_manifests: Mutex<std::collections::HashMap<u64, Arc<gc::ManifestRefs>>>,
    /// A read-only handle's lease on the manifest it opened (`None` for a writer, and for
    /// an empty database).
    pub lease: Option<checkpoint::Lease>,
    /// A follower's tailing state (`None` for other handles).
    pub follower: Option<follower::Follower>,
    /// A follower's builder for its promotion to writer ([`Db::promote`]).
    pub promote: Option<DbBuilder>,
    pub counters: Arc<EngineCounters>,
    /// Requests the engine made to the object store.
    pub store_metrics: Arc<crate::objstore::StoreMetrics>,
    pub _live: crate::live::LiveToken,
}

impl DbInner {
    /// The handle works and, for a follower, is fresh enough to serve reads.
    pub(crate) fn check_open(&self) -> Result<()> {
        self.check_usable()?;
        self.check_fresh()
    }

    /// The handle works: not closed, not stopped, its lease (if any) not lapsed.
    pub(crate) fn check_usable(&self) -> Result<()> {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if let Some(e) = self.fatal.lock().as_ref() {
            return Err(Error::Stopped(Arc::new(e.clone())));
        }
        self.check_lease()
    }

    pub(crate) fn set_fatal(&self, e: Error) {
        tracing::error!(error = %e, "database stopped");
        let mut f = self.fatal.lock();
        if f.is_none() {
            *f = Some(e);
        }
        drop(f);
        self.frozen_space.notify_waiters();
    }

    /// Write `next`, the manifest a flush or compaction commits (the caller holds the
    /// manifest lock). A write that outlived `store.retry.deadline` on transient errors has
    /// an unknown outcome, and no other manifest may take its id; it is tried again with
    /// the same bytes (an earlier attempt that landed reads back as ours) for as long as
    /// the store keeps failing transiently, so an outage longer than the deadline pauses
    /// flushes and compactions instead of stopping the handle. Writers waiting on them
    /// meanwhile fail with `Unavailable` at their own deadline. Fencing, any other error,
    /// and a handle that is closing stop the handle, as the unknown outcome requires.
    pub(crate) async fn commit_manifest(&self, next: &Manifest) -> Result<()> {
        let mut backoff = crate::retry::Backoff::new(&self.settings.store.retry);
        loop {
            match crate::manifest::write(&self.storage, next).await {
                Ok(()) => return Ok(()),
                Err(e)
                    if e.is_transient()
                        && !self.closed.load(std::sync::atomic::Ordering::Acquire) =>
                {
                    self.counters.manifest_write_retries.incr();
                    let pause = backoff.next_pause();
                    tracing::warn!(
                        manifest = next.id, error = %e, ?pause,
                        "manifest write outlived the retry deadline; trying again"
                    );
                    self.clock.sleep_until(self.clock.now() + pause).await;
                }
                Err(e) => {
                    self.set_fatal(e.clone());
                    return Err(e);
                }
            }
        }
    }

    pub(crate) fn current(&self) -> Arc<Version> {
        Arc::clone(&self.version.read())
    }

    /// Remember an open SST handle (weakly) and share it.
    pub(crate) fn register_sst(&self, h: SstHandle) -> Arc<SstHandle> {
        let h = Arc::new(h);
        self.sst_registry
            .lock()
            .insert(Arc::clone(&h.id), Arc::downgrade(&h));
        h
    }

    /// A fresh SST name (ULID: time-ordered, unique), protected from GC until the returned
    /// guard is dropped (after the manifest that references it is written, or on failure).
    pub(crate) fn new_sst_id(&self) -> (String, PendingSst) {
        let id = ulid::Ulid::from_parts(self.clock.unix_millis(), rand::random()).to_string();
        self.pending_ssts.lock().insert(id.clone());
        let guard = PendingSst {
            set: Arc::clone(&self.pending_ssts),
            id: id.clone(),
        };
        (id, guard)
    }
}

/// Keeps an SST id in `pending_ssts` while alive.
#[derive(Debug)]
pub(crate) struct PendingSst {
    set: Arc<Mutex<std::collections::HashSet<String>>>,
    id: String,
}

impl Drop for PendingSst {
    fn drop(&mut self) {
        self.set.lock().remove(&self.id);
    }
}

/// An open Silt database.
///
/// Cheap operations take `&self`; share the handle between tasks with an `Arc<Db>`.
/// Call [`Db::close`] before dropping to make buffered writes durable; dropping without
/// closing stops background work and loses only `Buffered` writes not yet uploaded.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use silt::{Db, Settings};
/// let db = Db::open("memory://", Settings::default()).await?;
/// db.put("hello", "world").await?;
/// assert_eq!(db.get("hello").await?.as_deref(), Some(&b"world"[..]));
/// db.close().await?;
/// # Ok::<(), silt::Error>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct Db {
    inner: Arc<DbInner>,
    tasks: Tasks,
}

impl Db {
    /// Open (creating if empty) the database at `url` as its writer, fencing any other.
    ///
    /// # Errors
    /// Invalid settings or URL, store errors, corruption found during recovery, or
    /// [`Error::Fenced`] when another writer wins the race to open.
    pub async fn open(url: &str, settings: Settings) -> Result<Db> {
        DbBuilder::from_url(url)?.settings(settings).open().await
    }

    /// Open with an explicit object store and root path.
    ///
    /// # Errors
    /// As [`Db::open`].
    pub async fn open_with_store(
        store: Arc<dyn object_store::ObjectStore>,
        root: object_store::path::Path,
        settings: Settings,
    ) -> Result<Db> {
        DbBuilder::new(store, root).settings(settings).open().await
    }

    /// A builder for custom components (clock, read-only mode).
    pub fn builder(
        store: Arc<dyn object_store::ObjectStore>,
        root: object_store::path::Path,
    ) -> DbBuilder {
        DbBuilder::new(store, root)
    }

    /// The settings the database was opened with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The object store and root.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// Highest sequence number visible to reads.
    pub fn visible_seq(&self) -> SeqNo {
        self.inner
            .visible_seq
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Highest sequence number stored in the object store's WAL (read-only: the visible one).
    pub fn durable_seq(&self) -> SeqNo {
        self.inner
            .wal
            .as_ref()
            .map_or_else(|| self.visible_seq(), RemoteWal::durable_seq)
    }

    /// The writer epoch this handle holds (0 when read-only).
    pub fn writer_epoch(&self) -> u64 {
        self.inner.wal.as_ref().map_or(0, |w| w.sh.epoch)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // The aborted background tasks may hold `DbInner` (and with it the local log) a
        // little longer; the local log's directory lock must not wait for them, or a
        // reopen right after the drop would find the directory in use. Nothing can write
        // to the local log without this handle.
        if let Some(local) = &self.inner.local {
            local.release();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::LocalLogSettings;
    use crate::wal::local::LocalLog;

    #[tokio::test]
    async fn dropping_the_handle_releases_the_local_log_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalLogSettings {
            dir: dir.path().join("local"),
            file_bytes: 64 << 10,
            ..LocalLogSettings::default()
        };
        let mut s = Settings::small_for_tests();
        s.local_log = Some(local.clone());
        let db = Db::open("memory://", s).await.unwrap();
        db.put("k", "v").await.unwrap();
        // A background task that has not noticed its abort yet still holds the state.
        let held = Arc::clone(&db.inner);
        drop(db);
        let (_log, _) = LocalLog::open(&local).unwrap();
        drop(held);
    }

    #[tokio::test]
    async fn buffered_writes_keep_the_local_log_pending_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let max = 16 << 10;
        let mut s = Settings::small_for_tests();
        s.local_log = Some(LocalLogSettings {
            dir: dir.path().join("local"),
            file_bytes: 1 << 20,
            max_pending_bytes: max,
            ..LocalLogSettings::default()
        });
        let db = Db::open("memory://", s).await.unwrap();
        let opts = WriteOptions::with_durability(Durability::Buffered);
        let record = silt_format::local_log::local_record_encoded_len([(8, 1000)]) as u64;
        for i in 0..300u32 {
            db.put_with(format!("k{i:07}"), [7u8; 1000], &opts)
                .await
                .unwrap();
            let pending = db.stats().local_log_pending_bytes;
            assert!(pending < max as u64 + record, "{pending} pending after {i}");
        }
        // Nobody waited for the local log (Buffered writes), so only background drains,
        // started by the enqueue that filled the buffer or by a write's `reserve`, kept
        // it bounded: at least one. How many depends on the writer's speed (one drain
        // may take several full buffers while writes wait), so no more is asserted.
        let m = db.metrics().local_log.unwrap();
        assert!(m.background_drains >= 1);
        db.close().await.unwrap();
    }
}
