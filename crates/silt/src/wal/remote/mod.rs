//! The remote WAL: commit groups are appended to an open segment in memory; the flusher
//! seals and uploads segments by DESIGN.md's policy, and the durable watermark advances in
//! sequence order as uploads complete.
//!
//! Seal triggers (nothing else seals a segment):
//! 1. size: the open segment reached `wal.segment_bytes`;
//! 2. a `Remote` writer waits on data in the open segment and the PUT token bucket
//!    (`wal.max_puts_per_sec`, burst `wal.put_burst`) has a token;
//! 3. linger: the oldest record has waited `wal.flush_interval`;
//! 4. an explicit `flush()`.

mod flusher;
mod metrics;
mod upload;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use silt_format::wal::encode_record;
use silt_format::SeqNo;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

pub(crate) use self::flusher::run_flusher;
pub(crate) use self::metrics::WalMetrics;
pub use self::metrics::WalSnapshot;
pub(crate) use self::upload::{upload_segment, UploadError, UploadPolicy};
use crate::clock::Clock;
use crate::config::{RetrySettings, WalSettings};
use crate::db::batch::Op;
use crate::error::{Error, Result};
use crate::objstore::Storage;

/// Why a segment was sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SealReason {
    Size,
    Remote,
    Linger,
    Flush,
}

#[derive(Debug, Default)]
struct OpenSegment {
    body: Vec<u8>,
    first_seq: SeqNo,
    last_seq: SeqNo,
    records: u32,
    opened_at: Option<Instant>,
}

/// The durable watermark, or the error that stopped the WAL.
#[derive(Clone, Debug, Default)]
pub(crate) struct Durable {
    pub seq: SeqNo,
    pub fatal: Option<Error>,
}

#[derive(Debug)]
struct State {
    open: OpenSegment,
    /// Bytes appended but not yet durable (open + sealed in flight).
    unflushed: usize,
    /// Highest sequence a `Remote` writer waits for.
    remote_target: SeqNo,
    flush_wanted: bool,
    last_appended: SeqNo,
    next_id: u64,
    /// Assigned segment ids (in flight or durable) and their last sequence, for the
    /// manifest's replay point.
    segments: BTreeMap<u64, SeqNo>,
    tokens: f64,
    refilled_at: Instant,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub storage: Storage,
    pub settings: WalSettings,
    /// `store.retry`: upload backoff, and how long writers wait for the store.
    pub retry: RetrySettings,
    /// Uploads that took this long confirm ownership before they count (`gc.grace` / 2).
    pub verify_owner_after: std::time::Duration,
    pub clock: Arc<dyn Clock>,
    pub epoch: u64,
    st: Mutex<State>,
    wake: Notify,
    space: Notify,
    durable: watch::Sender<Durable>,
    pub metrics: Arc<WalMetrics>,
    _live: crate::live::LiveToken,
}

/// What a caller gets once the WAL stopped with `e`: [`Error::Closed`] after a close, the
/// original error otherwise.
fn stopped(e: &Error) -> Error {
    match e {
        Error::Closed => Error::Closed,
        e => Error::Stopped(Arc::new(e.clone())),
    }
}

/// Handle to the remote WAL, shared by the write path and the flusher task.
#[derive(Debug, Clone)]
pub(crate) struct RemoteWal {
    pub(crate) sh: Arc<Shared>,
}

/// Where a recovered writer resumes.
#[derive(Debug)]
pub(crate) struct WalStart {
    pub epoch: u64,
    pub next_id: u64,
    pub durable_seq: SeqNo,
    pub segments: BTreeMap<u64, SeqNo>,
}

impl RemoteWal {
    pub fn new(
        storage: Storage,
        settings: WalSettings,
        retry: RetrySettings,
        verify_owner_after: std::time::Duration,
        clock: Arc<dyn Clock>,
        start: WalStart,
    ) -> Self {
        let now = clock.now();
        let burst = f64::from(settings.put_burst);
        let st = State {
            open: OpenSegment::default(),
            unflushed: 0,
            remote_target: 0,
            flush_wanted: false,
            last_appended: start.durable_seq,
            next_id: start.next_id,
            segments: start.segments,
            tokens: burst,
            refilled_at: now,
        };
        let (durable, _) = watch::channel(Durable {
            seq: start.durable_seq,
            fatal: None,
        });
        RemoteWal {
            sh: Arc::new(Shared {
                storage,
                settings,
                retry,
                verify_owner_after,
                clock,
                epoch: start.epoch,
                st: Mutex::new(st),
                wake: Notify::new(),
                space: Notify::new(),
                durable,
                metrics: Arc::new(WalMetrics::default()),
                _live: crate::live::LiveToken::new(crate::live::Kind::Wal),
            }),
        }
    }

    pub fn metrics(&self) -> &Arc<WalMetrics> {
        &self.sh.metrics
    }

    /// The error that stopped the WAL, if any.
    pub fn check(&self) -> Result<()> {
        match &self.sh.durable.borrow().fatal {
            Some(e) => Err(stopped(e)),
            None => Ok(()),
        }
    }

    /// The flusher has stopped for good (the database closed): every writer still waiting
    /// for a sequence that is not durable, and every later wait, gets [`Error::Closed`]
    /// (or the error that stopped the WAL before) instead of waiting forever: the watch
    /// sender lives in `Shared`, so its receivers would never see it drop.
    pub fn stopped(&self) {
        self.sh.durable.send_modify(|d| {
            d.fatal.get_or_insert(Error::Closed);
        });
        self.sh.space.notify_waiters();
    }

    /// Wait while unflushed bytes exceed `wal.max_unflushed_bytes` (backpressure).
    ///
    /// # Errors
    /// `Unavailable` ([`Error::Timeout`]) after `store.retry.deadline` without room (the
    /// store is not taking uploads); the error that stopped the WAL.
    pub async fn reserve(&self) -> Result<()> {
        let deadline = self.sh.clock.now() + self.sh.retry.deadline;
        loop {
            self.check()?;
            let notified = self.sh.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.sh.st.lock().unflushed <= self.sh.settings.max_unflushed_bytes {
                return Ok(());
            }
            self.sh.wake.notify_one();
            tokio::select! {
                () = notified => {}
                () = self.sh.clock.sleep_until(deadline) => {
                    return Err(self.timed_out("a write for room in the WAL buffer"));
                }
            }
        }
    }

    fn timed_out(&self, what: &'static str) -> Error {
        self.sh.metrics.writer_timeouts.incr();
        Error::Timeout {
            what,
            waited: self.sh.retry.deadline,
        }
    }

    /// Append one commit group. Called under the database's write lock, so records arrive
    /// in sequence order.
    pub fn append(&self, first_seq: SeqNo, ops: &[Op]) -> Result<()> {
        self.check()?;
        let mut st = self.sh.st.lock();
        let open = &mut st.open;
        let before = open.body.len();
        encode_record(
            &mut open.body,
            first_seq,
            ops.iter()
                .map(|op| (op.kind, op.key.as_ref(), op.value.as_ref())),
        );
        let added = open.body.len() - before;
        if open.records == 0 {
            open.first_seq = first_seq;
            open.opened_at = Some(self.sh.clock.now());
        }
        open.records += 1;
        open.last_seq = first_seq + ops.len() as u64 - 1;
        st.last_appended = st.open.last_seq;
        st.unflushed += added;
        let full = st.open.body.len() >= self.sh.settings.segment_bytes;
        let first_record = st.open.records == 1;
        drop(st);
        self.sh.metrics.records_appended.incr();
        if full || first_record {
            // The flusher needs to learn the linger deadline of a new segment, or seal a full one.
            self.sh.wake.notify_one();
        }
        Ok(())
    }

    /// Wait until every sequence up to `seq` is stored in the object store.
    ///
    /// # Errors
    /// `Unavailable` ([`Error::Timeout`]) after `store.retry.deadline`: not acknowledged,
    /// but the segment keeps being uploaded, so the write may still become durable; the
    /// error that stopped the WAL (fencing, corruption); `Closed`.
    pub async fn wait_durable(&self, seq: SeqNo) -> Result<()> {
        let mut rx = self.sh.durable.subscribe();
        {
            let d = rx.borrow_and_update();
            if d.seq >= seq {
                return Ok(());
            }
        }
        {
            let mut st = self.sh.st.lock();
            if seq > st.remote_target {
                st.remote_target = seq;
            }
        }
        self.sh.wake.notify_one();
        let deadline = self.sh.clock.now() + self.sh.retry.deadline;
        loop {
            {
                let d = rx.borrow_and_update();
                if d.seq >= seq {
                    return Ok(());
                }
                if let Some(e) = &d.fatal {
                    return Err(stopped(e));
                }
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return Err(Error::Closed);
                    }
                }
                () = self.sh.clock.sleep_until(deadline) => {
                    // The segment keeps being retried: the write may still become durable.
                    return Err(self.timed_out("a durable write for its WAL segment"));
                }
            }
        }
    }

    /// Seal whatever is buffered now and wait until it (and everything before) is durable.
    /// Concurrent calls share one upload.
    pub async fn flush(&self) -> Result<()> {
        let target = {
            let mut st = self.sh.st.lock();
            if st.open.records > 0 {
                st.flush_wanted = true;
            }
            st.last_appended
        };
        self.sh.wake.notify_one();
        self.wait_durable(target).await
    }

    /// Watch the durable watermark (and the fatal error, if any).
    pub fn subscribe_durable(&self) -> watch::Receiver<Durable> {
        self.sh.durable.subscribe()
    }

    /// Highest durable sequence.
    pub fn durable_seq(&self) -> SeqNo {
        self.sh.durable.borrow().seq
    }

    /// First segment id recovery must replay once every sequence `<= flushed` is in SSTs.
    /// Also forgets older segments.
    pub fn replay_point(&self, flushed: SeqNo) -> u64 {
        let mut st = self.sh.st.lock();
        let point = st
            .segments
            .iter()
            .find(|(_, last)| **last > flushed)
            .map_or(st.next_id, |(id, _)| *id);
        st.segments.retain(|id, _| *id >= point);
        point
    }

    /// Segment ids assigned since the last replay point (in flight or stored): what an open
    /// would replay, and what `wal.max_replay_segments` bounds.
    pub fn segments_since_replay_point(&self) -> usize {
        self.sh.st.lock().segments.len()
    }

    /// Bytes written but not yet durable.
    pub fn unflushed_bytes(&self) -> usize {
        self.sh.st.lock().unflushed
    }
}
