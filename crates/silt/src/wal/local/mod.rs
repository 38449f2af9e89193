//! The local log: a write-ahead log on a local drive for `Durability::Local`, in front of
//! the remote WAL (DESIGN.md "Local log", seed 003).
//!
//! * Files `<index:010>.slog` in `local_log.dir` are preallocated by writing zeros (fsync'd
//!   once, with the directory), then overwritten in place and recycled, so a commit's
//!   `fdatasync` writes the data blocks alone (no size or extent change to journal).
//! * Each commit group is one `pwrite` of whole 4 KiB blocks — header, records, zero
//!   padding — and one `fdatasync` (leader/follower group commit: whoever waits first
//!   becomes the writer, inside `block_in_place` on a multi-thread runtime or on the
//!   blocking pool otherwise, and keeps writing groups while anybody waits).
//! * Every group header carries a generation: one per file life (bumped when a file is
//!   (re)started and when the log is reopened), so recovery stops at the first torn, zero,
//!   garbage or stale (older generation) group. `docs/local-log.md` has the details.
//! * Once the remote WAL covers every record of a file ([`LocalLog::remote_covered`]), the
//!   file is recycled at the next file switch.
//!
//! A failed write or `fdatasync` poisons the log: every later call returns
//! [`Error::Stopped`] with the original error.
//!
//! `open` takes an exclusive advisory lock (`flock`) on `<dir>/LOCK` before anything else
//! and holds it until the last handle is dropped, so a second
//! open of the directory, in this process or another, fails instead of overwriting
//! acknowledged groups.

mod metrics;
pub(crate) mod owner;
mod recover;
mod writer;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use silt_format::local_log::encode_local_record;
use silt_format::wal::WalRecord;
use silt_format::{SeqNo, ValueKind};
use tokio::sync::watch;

pub(crate) use self::metrics::LocalLogMetrics;
pub use self::metrics::LocalLogSnapshot;
use self::writer::{io_err, Writer};
use crate::config::{LocalLogMode, LocalLogSettings};
use crate::error::{Error, Result};

/// Largest encoded record (one write batch) the local log accepts.
pub const MAX_LOCAL_RECORD_BYTES: usize = 1 << 31;

/// Name of the lock file in the log's directory (never a log file: recovery reads only
/// `*.slog`).
pub const LOCK_FILE_NAME: &str = "LOCK";

/// What [`LocalLog::enqueue`] returns: the record's last sequence number, to pass to
/// [`LocalLog::wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitTicket {
    seq: SeqNo,
}

impl CommitTicket {
    /// Last sequence number of the enqueued record.
    pub fn seq(&self) -> SeqNo {
        self.seq
    }
}

/// Receives every 4 KiB block the log writes, right after its `pwrite`, on the writer's
/// thread (so it should be quick: hand the block off). A hook for benchmarks (`silt bench
/// wal-wa` feeds the blocks to its compressing-drive model), not part of the stable API;
/// see [`LocalLog::open_with_observer`].
#[doc(hidden)]
pub type BlockObserver = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// One encoded record waiting for the next group.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PendingRecord {
    /// End offset of the record in `Pending::payload`.
    pub end: usize,
    /// Its last sequence number.
    pub last_seq: SeqNo,
}

/// Records enqueued but not yet handed to the writer. Sequence numbers are consecutive.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub payload: Vec<u8>,
    pub records: Vec<PendingRecord>,
    pub first_seq: SeqNo,
    pub user_bytes: u64,
}

impl Pending {
    fn last_seq(&self) -> Option<SeqNo> {
        self.records.last().map(|r| r.last_seq)
    }
}

#[derive(Debug)]
struct State {
    pending: Pending,
    /// Sequence number the next record must start at; `None` until the first record when
    /// nothing was recovered.
    next_seq: Option<SeqNo>,
    /// The next record may skip forward (first record after open).
    may_skip: bool,
    /// Highest sequence a caller waits for.
    wanted: SeqNo,
    /// Highest durable sequence.
    durable: SeqNo,
    /// A writer task is running.
    writing: bool,
    poison: Option<Error>,
}

#[derive(Clone, Debug, Default)]
struct Progress {
    durable: SeqNo,
    fatal: Option<Error>,
}

struct Inner {
    state: Mutex<State>,
    /// Held by the one running writer task.
    writer: Mutex<Writer>,
    progress: watch::Sender<Progress>,
    /// Remote-covered sequence + 1 (0: nothing covered yet).
    covered: AtomicU64,
    metrics: Arc<LocalLogMetrics>,
    observer: Option<BlockObserver>,
    /// `LocalLogSettings::max_pending_bytes`.
    max_pending: usize,
    /// The locked `LOCK` file; `None` once released (the lock goes with the descriptor).
    lock: Mutex<Option<File>>,
}

impl Inner {
    /// Stops all I/O and releases the directory lock: waits for a group write in progress
    /// (the writer holds `writer` for its whole run), poisons the log with
    /// [`Error::Closed`] so no later writer touches the files, then closes the lock file.
    /// Records still pending are not written.
    fn release(&self) {
        let _writer = self.writer.lock();
        {
            let mut st = self.state.lock();
            st.poison.get_or_insert(Error::Closed);
        }
        self.progress.send_modify(|p| {
            p.fatal.get_or_insert(Error::Closed);
        });
        self.lock.lock().take();
    }
}

/// Releases the log when the last [`LocalLog`] handle is dropped. Writer threads hold the
/// `Inner` alone, so a writer that is still finishing cannot keep the directory locked
/// after every handle is gone (the release waits for its group instead).
struct Owner(Arc<Inner>);

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Owner")
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLog")
            .field("state", &*self.state.lock())
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

/// Handle to the local log; clones share it. The directory stays locked until the last
/// clone is dropped.
#[derive(Debug, Clone)]
pub struct LocalLog {
    inner: Arc<Inner>,
    _owner: Arc<Owner>,
}

fn stopped(e: &Error) -> Error {
    match e {
        Error::Closed => Error::Closed,
        e => Error::Stopped(Arc::new(e.clone())),
    }
}

/// Creates `dir` if needed and takes the exclusive lock on its lock file.
fn lock_dir(dir: &Path) -> Result<File> {
    std::fs::create_dir_all(dir).map_err(|e| io_err("create directory", dir, e))?;
    let path = dir.join(LOCK_FILE_NAME);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_err("open", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::InvalidSettings(format!(
            "local log directory {} is in use by another process (or another open log in \
             this one): {} is locked",
            dir.display(),
            path.display()
        ))),
        Err(TryLockError::Error(e)) => Err(io_err("lock", &path, e)),
    }
}

impl LocalLog {
    /// Opens (or creates) the log in `settings.dir` and recovers it: returns the records of
    /// the log in sequence order, contiguous, up to the first torn, zero, garbage or stale
    /// group. Blocking (reads every log file; may preallocate one): call it from
    /// `spawn_blocking` in async code.
    ///
    /// The first [`LocalLog::enqueue`] after open must start above every recovered
    /// sequence number (it may skip forward, e.g. when the remote WAL had more); later ones
    /// must follow on exactly.
    ///
    /// The directory is locked first (`flock` on `<dir>/LOCK`, held until the last handle
    /// is dropped): while another handle, in this process or another, holds it, `open`
    /// fails before touching anything else.
    ///
    /// # Errors
    /// `InvalidSettings` for bad settings and when the directory is in use; `Internal` on
    /// I/O errors; `Corrupt` when a group's CRC matches but its records do not match its
    /// header.
    pub fn open(settings: &LocalLogSettings) -> Result<(LocalLog, Vec<WalRecord>)> {
        Self::open_with_observer(settings, None)
    }

    /// [`LocalLog::open`], with `observer` called for every 4 KiB block the log writes,
    /// right after its `pwrite` (the blocks of each group in order; in packed mode a block
    /// that the next group rewrites is seen again). For benchmarks that model the drive
    /// (`silt bench wal-wa`); not part of the stable API.
    ///
    /// # Errors
    /// As [`LocalLog::open`].
    #[doc(hidden)]
    pub fn open_with_observer(
        settings: &LocalLogSettings,
        observer: Option<BlockObserver>,
    ) -> Result<(LocalLog, Vec<WalRecord>)> {
        settings.validate()?;
        let lock = lock_dir(&settings.dir)?;
        let metrics = Arc::new(LocalLogMetrics::default());
        let recovered = recover::recover(settings, &metrics)?;
        let durable = recovered.last_seq.unwrap_or(0);
        let state = State {
            pending: Pending::default(),
            next_seq: recovered.last_seq.map(|s| s + 1),
            may_skip: true,
            wanted: 0,
            durable,
            writing: false,
            poison: None,
        };
        let (progress, _) = watch::channel(Progress {
            durable,
            fatal: None,
        });
        let inner = Arc::new(Inner {
            state: Mutex::new(state),
            writer: Mutex::new(recovered.writer),
            progress,
            covered: AtomicU64::new(0),
            metrics,
            observer,
            max_pending: settings.max_pending_bytes,
            lock: Mutex::new(Some(lock)),
        });
        let log = LocalLog {
            _owner: Arc::new(Owner(Arc::clone(&inner))),
            inner,
        };
        Ok((log, recovered.records))
    }

    /// Appends one record (a write batch whose op `i` has sequence `first_seq + i`) to the
    /// pending buffer. Cheap: no I/O. Call it in sequence order (under the write lock);
    /// the record is written with the next group, whether or not anybody waits for it.
    ///
    /// # Errors
    /// `Stopped` after a write failure; `InvalidInput` for an empty or oversized record;
    /// `Internal` when `first_seq` does not follow the previous record.
    pub fn enqueue<'a>(
        &self,
        first_seq: SeqNo,
        ops: impl IntoIterator<Item = (ValueKind, &'a [u8], &'a [u8])>,
    ) -> Result<CommitTicket> {
        let mut st = self.inner.state.lock();
        if let Some(e) = &st.poison {
            return Err(stopped(e));
        }
        if let Some(next) = st.next_seq {
            let ok = if st.may_skip {
                first_seq >= next
            } else {
                first_seq == next
            };
            if !ok {
                return Err(Error::Internal(format!(
                    "local log: record at seq {first_seq}, expected {}{next}",
                    if st.may_skip { "at least " } else { "" }
                )));
            }
        }
        let pending = &mut st.pending;
        let before = pending.payload.len();
        let mut user_bytes = 0u64;
        let (len, count) = encode_local_record(
            &mut pending.payload,
            ops.into_iter().inspect(|(kind, key, value)| {
                let v = if *kind == ValueKind::Delete {
                    0
                } else {
                    value.len()
                };
                user_bytes += (key.len() + v) as u64;
            }),
        );
        if count == 0 || len > MAX_LOCAL_RECORD_BYTES {
            pending.payload.truncate(before);
            return Err(Error::InvalidInput(if count == 0 {
                "local log: empty record".into()
            } else {
                format!("local log: record of {len} bytes exceeds {MAX_LOCAL_RECORD_BYTES}")
            }));
        }
        let last_seq = first_seq + count as u64 - 1;
        if pending.records.is_empty() {
            pending.first_seq = first_seq;
        }
        pending.records.push(PendingRecord {
            end: pending.payload.len(),
            last_seq,
        });
        pending.user_bytes += user_bytes;
        let pending_bytes = pending.payload.len();
        st.next_seq = Some(last_seq + 1);
        st.may_skip = false;
        // Under the lock, so a writer taking the buffer cannot be overwritten by this.
        self.inner.metrics.pending_bytes.set(pending_bytes as u64);
        let drain = pending_bytes >= self.inner.max_pending && !st.writing;
        if drain {
            st.writing = true;
        }
        drop(st);
        if drain {
            self.inner.metrics.background_drains.incr();
            start_background_writer(&self.inner);
        }
        Ok(CommitTicket { seq: last_seq })
    }

    /// Waits while the pending buffer holds `max_pending_bytes` or more (a background
    /// group commit drains it). Call it before taking the write lock, like the remote
    /// WAL's backpressure; `enqueue` itself never waits.
    ///
    /// # Errors
    /// `Stopped` after a write failure, `Closed` once closed.
    pub async fn reserve(&self) -> Result<()> {
        loop {
            let mut rx = self.inner.progress.subscribe();
            let start = {
                let mut st = self.inner.state.lock();
                if let Some(e) = &st.poison {
                    return Err(stopped(e));
                }
                if st.pending.payload.len() < self.inner.max_pending {
                    return Ok(());
                }
                !std::mem::replace(&mut st.writing, true)
            };
            if start {
                self.inner.metrics.background_drains.incr();
                start_background_writer(&self.inner);
            }
            // Every group the writer finishes (or its failure) is published here.
            if rx.changed().await.is_err() {
                return Err(Error::Closed);
            }
        }
    }

    /// Waits until the ticket's record (and every record before it) is durable: written
    /// with `pwrite` and `fdatasync`'d. Concurrent waiters share groups.
    ///
    /// # Errors
    /// `Stopped` when a write or sync failed (now or earlier); `Internal` without a tokio
    /// runtime.
    pub async fn wait(&self, ticket: CommitTicket) -> Result<()> {
        let seq = ticket.seq;
        let mut rx = self.inner.progress.subscribe();
        let start_writer = {
            let mut st = self.inner.state.lock();
            // Durable before the log stopped (closed or poisoned): still a success.
            if st.durable >= seq {
                return Ok(());
            }
            if let Some(e) = &st.poison {
                return Err(stopped(e));
            }
            if st.next_seq.is_none_or(|n| seq >= n) {
                return Err(Error::Internal(format!(
                    "local log: waiting for seq {seq}, which was never enqueued"
                )));
            }
            st.wanted = st.wanted.max(seq);
            !std::mem::replace(&mut st.writing, true)
        };
        if start_writer {
            let inner = Arc::clone(&self.inner);
            match tokio::runtime::Handle::try_current() {
                // On a multi-thread runtime the leader writes and syncs itself inside
                // `block_in_place`: the runtime moves this worker's other tasks to another
                // thread first, so no async work waits on the disk, and the commit skips
                // two thread hand-offs (to a blocking-pool thread and back), which cost
                // about a third of a 70 us fdatasync.
                Ok(handle)
                    if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread =>
                {
                    tokio::task::block_in_place(|| writer_task(&inner));
                }
                Ok(handle) => {
                    drop(handle.spawn_blocking(move || writer_task(&inner)));
                }
                Err(_) => {
                    self.inner.state.lock().writing = false;
                    return Err(Error::Internal(
                        "local log: wait called outside a tokio runtime".into(),
                    ));
                }
            }
        }
        loop {
            {
                let p = rx.borrow_and_update();
                if p.durable >= seq {
                    return Ok(());
                }
                if let Some(e) = &p.fatal {
                    return Err(stopped(e));
                }
            }
            if rx.changed().await.is_err() {
                return Err(Error::Closed);
            }
        }
    }

    /// Writes and syncs every enqueued record (including ones nobody waits for).
    ///
    /// # Errors
    /// As [`LocalLog::wait`].
    pub async fn flush(&self) -> Result<()> {
        // The last record enqueued, pending or in the group being written.
        let last = {
            let st = self.inner.state.lock();
            if let Some(e) = &st.poison {
                return Err(stopped(e));
            }
            st.next_seq
                .and_then(|n| n.checked_sub(1))
                .filter(|&last| last > st.durable)
        };
        match last {
            Some(seq) => self.wait(CommitTicket { seq }).await,
            None => Ok(()),
        }
    }

    /// Deletes every log file in `dir` (not the lock or owner files): the records are a
    /// replaced writer's stale history (see `owner.rs`). Call it with no `LocalLog` open
    /// on `dir`; the next [`LocalLog::open`] starts an empty log.
    ///
    /// # Errors
    /// I/O errors.
    pub(crate) fn wipe(dir: &std::path::Path) -> Result<()> {
        if !dir.exists() {
            return Ok(());
        }
        recover::remove_log_files(dir)
    }

    /// Every record `<= seq` is durable in the remote WAL: files whose records are all
    /// `<= seq` are recycled at the next file switch (no I/O here).
    pub fn remote_covered(&self, seq: SeqNo) {
        self.inner
            .covered
            .fetch_max(seq.saturating_add(1), Ordering::Relaxed);
    }

    /// Highest sequence number that is durable in the local log.
    pub fn durable_seq(&self) -> SeqNo {
        self.inner.progress.borrow().durable
    }

    /// The log's counters now.
    pub fn metrics(&self) -> LocalLogSnapshot {
        self.inner.metrics.snapshot()
    }

    /// Writes and syncs every enqueued record ([`LocalLog::flush`]), then stops the log and
    /// releases the directory lock, even if the flush failed: every later call on any
    /// clone returns [`Error::Closed`] (or the earlier write error); a record that became
    /// durable before still waits successfully. Blocks for at most the group write in
    /// progress after the flush. Closing twice is fine. Call it once no more records are
    /// enqueued.
    ///
    /// # Errors
    /// The flush's.
    pub async fn close(&self) -> Result<()> {
        let flushed = match self.flush().await {
            Err(Error::Closed) => Ok(()),
            other => other,
        };
        self.inner.release();
        flushed
    }

    /// Stops the log and releases the directory lock now, although other clones may live
    /// on (they get [`Error::Closed`]): for an owner whose clones outlive it in tasks
    /// being torn down. Waits for a group write in progress; pending records are dropped.
    pub(crate) fn release(&self) {
        self.inner.release();
    }
}

/// Marks the writer as stopped (and the log as poisoned) if the writer task unwinds.
struct WriterGuard<'a> {
    inner: &'a Inner,
    done: bool,
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            let e = Error::Internal("local log writer panicked".into());
            let mut st = self.inner.state.lock();
            st.writing = false;
            st.poison.get_or_insert(e.clone());
            self.inner.progress.send_modify(|p| p.fatal = Some(e));
        }
    }
}

/// Runs the writer on the blocking pool of the current tokio runtime, for a drain nobody
/// waits for (the caller set `writing`). Without a runtime the records stay pending until
/// the next `wait` or `flush`.
fn start_background_writer(inner: &Arc<Inner>) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            let inner = Arc::clone(inner);
            drop(handle.spawn_blocking(move || writer_task(&inner)));
        }
        Err(_) => inner.state.lock().writing = false,
    }
}

/// The writer: takes the pending records as one group, writes and syncs them, and goes on
/// while somebody waits for records that are still pending, or while the pending buffer
/// holds `max_pending_bytes` or more. Runs in `block_in_place` or on
/// the blocking pool, never on an async worker that still has other tasks.
fn writer_task(inner: &Inner) {
    let mut guard = WriterGuard { inner, done: false };
    let mut writer = inner.writer.lock();
    loop {
        let batch = {
            let mut st = inner.state.lock();
            let wanted = st.wanted > st.durable || st.pending.payload.len() >= inner.max_pending;
            if st.poison.is_some() || !wanted || st.pending.records.is_empty() {
                st.writing = false;
                guard.done = true;
                return;
            }
            inner.metrics.pending_bytes.set(0);
            std::mem::take(&mut st.pending)
        };
        let covered = inner.covered.load(Ordering::Relaxed).checked_sub(1);
        let result = writer.write_batch(&batch, &inner.metrics, inner.observer.as_ref(), covered);
        let mut st = inner.state.lock();
        match result {
            Ok(()) => {
                let last = batch.last_seq().unwrap_or(st.durable);
                st.durable = st.durable.max(last);
                let durable = st.durable;
                let m = &inner.metrics;
                m.commits.add(batch.records.len() as u64);
                m.user_bytes.add(batch.user_bytes);
                inner.progress.send_modify(|p| p.durable = durable);
            }
            Err(e) => {
                tracing::error!(error = %e, "local log write failed; the log is stopped");
                st.poison = Some(e.clone());
                st.writing = false;
                inner.progress.send_modify(|p| p.fatal = Some(e));
                guard.done = true;
                return;
            }
        }
    }
}
