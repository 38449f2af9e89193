//! Followers (`DbBuilder::follower`): read-only handles that keep up with the writer by
//! polling the store (docs/ARCHITECTURE.md, "Followers").
//!
//! Each poll (the `follower` task every `follower.poll_interval`, or
//! [`Db::follower_poll_now`]):
//!
//! 1. lists the manifests past the current one; when there is a newer one it loads the
//!    newest, **leases it first** (a new lease object, checked by the creation rule, see
//!    `db/checkpoint.rs`), then swaps in a version with its SSTs (unchanged ones keep
//!    their handles) and a memtable holding only the follower's entries above the
//!    manifest's flushed sequence, and only then deletes the lease object of the manifest
//!    it read before;
//! 2. lists the WAL past the lowest id not applied yet, fetches the new segments
//!    (`FETCH_CONCURRENCY` at once) and feeds them, in id order and only while no id is
//!    missing, to the recovery rule of `wal/replay.rs` ([`Tail`]): fenced writers' late
//!    segments are skipped, fences move the epoch, and within an epoch only a contiguous
//!    sequence prefix is applied. A segment past a missing id or a sequence gap waits
//!    until the gap is filled (the writer uploads segments concurrently). `visible_seq`
//!    is the end of that prefix, so reads never see past a hole;
//! 3. a segment GC deleted meanwhile is covered by a newer manifest: the poll applies the
//!    newest manifest and tails again.
//!
//! A poll that applied every segment it listed (nothing waits behind a gap) is *caught
//! up*; reads fail with [`Error::Stale`] once the last caught-up poll started more than
//! `follower.max_staleness` ago.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use silt_format::manifest::Manifest;
use silt_format::wal::{decode_segment, WalSegment};
use silt_format::SeqNo;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Db, DbInner};
use crate::error::{Error, Result};
use crate::lsm::run::RunHandle;
use crate::lsm::sst::SstHandle;
use crate::lsm::version::Version;
use crate::manifest;
use crate::memtable::Memtable;
use crate::metric::Cell;
use crate::objstore::Listed;
use crate::wal::replay::Tail;

/// WAL segments (and SSTs) fetched at once.
const FETCH_CONCURRENCY: usize = 8;
/// WAL segments fetched by one poll at most (the next poll goes on).
const FETCH_PER_POLL: usize = 256;
/// Attempts to lease the newest manifest while the writer keeps replacing it.
const LEASE_ATTEMPTS: u32 = 3;

crate::metric::snapshot! {
    /// A follower's figures at one moment (see [`Metrics::follower`](crate::Metrics::follower)).
    pub struct FollowerSnapshot;
    {
        /// Highest sequence applied and visible to reads.
        applied_seq: u64, Gauge "silt_follower_applied_seq",
        /// Newest sequence seen in the store (fetched segments, the manifest) minus the
        /// applied one.
        lag_seq: u64, Gauge "silt_follower_lag_seq",
        /// Milliseconds since the last poll that found the follower caught up started:
        /// the follower's state holds everything the store held then.
        lag_ms: u64, Gauge "silt_follower_lag_ms",
        /// The manifest the follower reads.
        manifest_id: u64, Gauge "silt_follower_manifest_id",
        /// WAL segments fed to the follower (fences and skipped ones included).
        segments_tailed: u64, Counter "silt_follower_segments_tailed",
        /// Newer manifests swapped in.
        manifests_applied: u64, Counter "silt_follower_manifests_applied",
        /// Polls made.
        polls: u64, Counter "silt_follower_polls",
        /// Polls that failed (store errors; the next poll tries again).
        poll_errors: u64, Counter "silt_follower_poll_errors",
        /// Bytes of WAL segments fetched past a gap and held until it fills (at most
        /// `follower.fetch_ahead_bytes`).
        held_ahead_bytes: u64, Gauge "silt_follower_held_ahead_bytes",
        /// Lease objects kept on manifests the follower moved off, for snapshots and
        /// scans still reading them.
        retired_leases: u64, Gauge "silt_follower_retired_leases",
    }
}

/// What a follower reports about itself ([`Db::follower_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FollowerStatus {
    /// Highest sequence applied and visible to reads.
    pub applied_seq: SeqNo,
    /// Newest sequence seen in the store minus `applied_seq`.
    pub lag_seq: u64,
    /// Time since the last poll that found the follower caught up started (its state
    /// holds everything the store held then).
    pub lag: Duration,
    /// When that poll started, Unix milliseconds by the handle's clock.
    pub last_caught_up_unix_ms: u64,
    /// Whether reads fail with [`Error::Stale`] now (`lag` beyond
    /// `follower.max_staleness`).
    pub stale: bool,
    /// The manifest the follower reads (0: none yet).
    pub manifest_id: u64,
    /// The newest writer epoch whose WAL the follower has read.
    pub writer_epoch: u64,
}

/// A follower's state, in `DbInner::follower`.
#[derive(Debug)]
pub(crate) struct Follower {
    state: tokio::sync::Mutex<State>,
    /// When the last caught-up poll started.
    caught_up_at: parking_lot::Mutex<Instant>,
    newest_seen: Cell,
    manifest_id: Cell,
    epoch: Cell,
    segments_tailed: Cell,
    manifests_applied: Cell,
    polls: Cell,
    poll_errors: Cell,
    held_ahead: Cell,
}

#[derive(Debug)]
struct State {
    tail: Tail,
    /// Lowest WAL id not fed yet.
    next_id: u64,
    /// Fetched segments at ids above `next_id` waiting for the ids below them, with
    /// their sizes.
    fetched: BTreeMap<u64, (WalSegment, u64)>,
    /// The sizes in `fetched`, summed: at most `follower.fetch_ahead_bytes` beyond the
    /// segment at `next_id`.
    fetched_bytes: u64,
    manifest: Manifest,
    /// The last poll found the follower caught up with nothing new to apply: the writer is
    /// idle, so the next poll may list only the WAL.
    idle: bool,
    /// When a poll last listed the manifests.
    manifests_listed_at: Option<Instant>,
}

impl Follower {
    /// A follower that starts from `manifest` (every sequence `<= base` in its SSTs),
    /// caught up as of `now` (the open lists the store right after).
    pub(crate) fn new(manifest: Manifest, base: SeqNo, now: Instant) -> Self {
        let mut f = Follower {
            state: tokio::sync::Mutex::new(State {
                tail: Tail::new(base),
                next_id: manifest.wal_replay_from.max(1),
                fetched: BTreeMap::new(),
                fetched_bytes: 0,
                manifest,
                idle: false,
                manifests_listed_at: None,
            }),
            caught_up_at: parking_lot::Mutex::new(now),
            newest_seen: Cell::default(),
            manifest_id: Cell::default(),
            epoch: Cell::default(),
            segments_tailed: Cell::default(),
            manifests_applied: Cell::default(),
            polls: Cell::default(),
            poll_errors: Cell::default(),
            held_ahead: Cell::default(),
        };
        f.newest_seen.set(base);
        f.manifest_id.set(f.state.get_mut().manifest.id);
        f
    }

    fn lag(&self, now: Instant) -> Duration {
        now.saturating_duration_since(*self.caught_up_at.lock())
    }
}

impl DbInner {
    fn follower(&self) -> Result<&Follower> {
        self.follower
            .as_ref()
            .ok_or_else(|| Error::InvalidInput("this handle is not a follower".into()))
    }

    /// `Err(Stale)` when this follower has not been caught up within
    /// `follower.max_staleness`.
    pub(crate) fn check_fresh(&self) -> Result<()> {
        let Some(f) = &self.follower else {
            return Ok(());
        };
        let bound = self.settings.follower.max_staleness;
        if bound.is_zero() {
            return Ok(());
        }
        let lag = f.lag(self.clock.now());
        if lag > bound {
            return Err(Error::Stale(format!(
                "last caught up with the store {lag:?} ago, beyond follower.max_staleness \
                 ({bound:?})"
            )));
        }
        Ok(())
    }

    /// On a follower, hold off its polls (and so manifest swaps and lease moves) while the
    /// guard lives; `None` on other handles, which have none.
    pub(crate) async fn hold_polls(&self) -> Option<impl Drop + '_> {
        match &self.follower {
            Some(f) => Some(f.state.lock().await),
            None => None,
        }
    }

    /// One poll (see the module docs); returns whether it found the follower caught up.
    /// Polls are serialised.
    pub(crate) async fn follower_poll(&self) -> Result<bool> {
        let f = self.follower()?;
        let started = self.clock.now();
        let mut st = f.state.lock().await;
        f.polls.incr();
        let result = self.poll_locked(f, &mut st).await;
        if !matches!(result, Ok(true)) {
            st.idle = false;
        }
        match &result {
            Ok(true) => *f.caught_up_at.lock() = started,
            Ok(false) => {}
            Err(_) => f.poll_errors.incr(),
        }
        result
    }

    /// The open's catch-up: poll until caught up, or until a poll makes no progress (a
    /// gap that waits for a segment still uploading).
    pub(crate) async fn follower_catch_up(&self) -> Result<()> {
        loop {
            let before = self.visible_seq.load(Ordering::Acquire);
            if self.follower_poll().await? || self.visible_seq.load(Ordering::Acquire) == before {
                return Ok(());
            }
        }
    }

    /// Returns whether the poll found the follower caught up.
    async fn poll_locked(&self, f: &Follower, st: &mut State) -> Result<bool> {
        if let Some(lease) = &self.lease {
            for name in lease.take_unread() {
                if let Err(e) = crate::checkpoint::delete(&self.storage, &name).await {
                    tracing::warn!(lease = name, error = %e, "could not delete a retired reader lease");
                }
            }
        }
        // Idle (the last poll was caught up and found nothing new): one LIST, the WAL's;
        // the manifests only every `manifest_relist_interval`. Under writes every poll is a
        // full one.
        let now = self.clock.now();
        let relist = self.settings.follower.manifest_relist_interval;
        let mut listed = None;
        if st.idle
            && st
                .manifests_listed_at
                .is_some_and(|at| now.saturating_duration_since(at) < relist)
        {
            let wal = self.list_wal(st).await?;
            if !wal
                .iter()
                .any(|l| l.id >= st.next_id && !st.fetched.contains_key(&l.id))
            {
                return Ok(true);
            }
            // New segments: the full poll tails this listing rather than a second one.
            listed = Some(wal);
        }
        st.manifests_listed_at = Some(now);
        let before = (st.next_id, st.manifest.id);
        let caught_up = self.poll_full(f, st, listed).await?;
        st.idle = caught_up && (st.next_id, st.manifest.id) == before;
        Ok(caught_up)
    }

    /// A full poll: the manifests, then the WAL (from `listed`, a listing of it taken
    /// earlier in this poll, if given).
    async fn poll_full(
        &self,
        f: &Follower,
        st: &mut State,
        listed: Option<Vec<Listed>>,
    ) -> Result<bool> {
        let newer = self
            .storage
            .list_numbered_after("manifest", "manifest", st.manifest.id)
            .await?;
        if !newer.is_empty() {
            self.apply_newest_manifest(f, st).await?;
        }
        match self.tail_wal(f, st, listed).await? {
            Tailed::Done { caught_up } => Ok(caught_up),
            Tailed::Gone => {
                // GC deleted a segment: a newer manifest covers it.
                self.apply_newest_manifest(f, st).await?;
                match self.tail_wal(f, st, None).await? {
                    Tailed::Done { caught_up } => Ok(caught_up),
                    Tailed::Gone => Ok(false),
                }
            }
        }
    }

    /// The WAL segments past the last one fed (one LIST).
    async fn list_wal(&self, st: &State) -> Result<Vec<Listed>> {
        self.storage
            .list_numbered_after("wal", "wal", st.next_id.saturating_sub(1))
            .await
    }

    /// Load the newest manifest and, when it is newer than the current one, lease it and
    /// swap it in.
    async fn apply_newest_manifest(&self, f: &Follower, st: &mut State) -> Result<()> {
        let lease = self
            .lease
            .as_ref()
            .ok_or_else(|| Error::Internal("a follower without a lease".into()))?;
        for _ in 0..LEASE_ATTEMPTS {
            let Some(m) = manifest::load_latest(&self.storage).await? else {
                return Ok(());
            };
            if m.id <= st.manifest.id {
                return Ok(());
            }
            // Lease first: GC keeps `m` from here on (and the old lease keeps what this
            // handle reads until the swap).
            let Some(staged) = lease
                .stage(
                    &self.storage,
                    self.clock.as_ref(),
                    self.settings.gc.grace,
                    &m,
                )
                .await?
            else {
                tracing::info!(
                    manifest = m.id,
                    "the manifest was replaced before the follower leased it; trying the newest"
                );
                continue;
            };
            let replaced = match self.swap_manifest(f, st, m).await {
                Ok(replaced) => replaced,
                Err(e) => {
                    // The handle still reads the old manifest, under its old lease.
                    staged.abandon(&self.storage).await;
                    return Err(e);
                }
            };
            // The old lease object goes once nothing reads the old version (now, or at
            // a later poll; best effort: it expires anyway).
            if let Some(old) = staged.commit(replaced) {
                if let Err(e) = crate::checkpoint::delete(&self.storage, &old).await {
                    tracing::warn!(lease = old, error = %e, "could not delete the follower's previous lease");
                }
            }
            return Ok(());
        }
        Err(Error::Checkpoint(format!(
            "the newest manifest was replaced {LEASE_ATTEMPTS} times before the follower \
             could lease it (is gc.grace shorter than a store round trip?)"
        )))
    }

    /// Swap in a version for manifest `m` (already leased); returns the version replaced.
    async fn swap_manifest(
        &self,
        f: &Follower,
        st: &mut State,
        m: Manifest,
    ) -> Result<std::sync::Weak<Version>> {
        let cur = self.current();
        let mut known: HashMap<Arc<str>, Arc<SstHandle>> = HashMap::new();
        for h in cur
            .l0
            .iter()
            .chain(cur.runs.iter().flat_map(|r| r.ssts.iter()))
        {
            known.insert(Arc::clone(&h.id), Arc::clone(h));
        }
        let open = |info: silt_format::manifest::SstInfo| {
            let known = &known;
            async move {
                if let Some(h) = known.get(info.id.as_str()) {
                    return Ok::<_, Error>(Arc::clone(h));
                }
                let h = SstHandle::open(&self.storage, info).await?;
                Ok(self.register_sst(h))
            }
        };
        let l0: Vec<Arc<SstHandle>> = futures::stream::iter(m.l0.clone())
            .map(open)
            .buffered(FETCH_CONCURRENCY)
            .try_collect()
            .await?;
        let mut runs = Vec::with_capacity(m.runs.len());
        for run in &m.runs {
            let ssts: Vec<Arc<SstHandle>> = futures::stream::iter(run.ssts.clone())
                .map(open)
                .buffered(FETCH_CONCURRENCY)
                .try_collect()
                .await?;
            runs.push(Arc::new(RunHandle { id: run.id, ssts }));
        }
        let base = flushed_base(&m);
        // Only the entries the SSTs do not hold stay in memory.
        let active = Arc::new(Memtable::new());
        for e in cur.active.iter().filter(|e| e.seq > base) {
            active.insert(e.key, e.seq, e.kind, e.value);
        }
        st.tail.advance_base(base, &active);
        let end = st.tail.out.end;
        {
            // Version and visible sequence change together: a reader takes both under the
            // version lock (`read_view`), so it never pairs a sequence with a version that
            // lacks it.
            let mut v = self.version.write();
            *v = Arc::new(Version::new(active, l0, runs));
            self.visible_seq.store(end, Ordering::Release);
        }
        let replaced = Arc::downgrade(&cur);
        drop(cur);
        // Forget handles of SSTs nothing reads any more (a follower runs no GC, which
        // prunes the registry on a writer).
        self.sst_registry.lock().retain(|_, w| w.strong_count() > 0);
        st.next_id = st.next_id.max(m.wal_replay_from);
        let next_id = st.next_id;
        st.fetched.retain(|id, _| *id >= next_id);
        st.fetched_bytes = st.fetched.values().map(|(_, size)| size).sum();
        f.held_ahead.set(st.fetched_bytes);
        f.manifest_id.set(m.id);
        f.manifests_applied.incr();
        f.newest_seen.set(f.newest_seen.get().max(base));
        if let Some(lease) = &self.lease {
            lease.set_seq(end);
        }
        tracing::debug!(manifest = m.id, base, end, "follower swapped in a manifest");
        st.manifest = m;
        Ok(replaced)
    }

    /// List and fetch new WAL segments and feed the contiguous ones.
    async fn tail_wal(
        &self,
        f: &Follower,
        st: &mut State,
        listed: Option<Vec<Listed>>,
    ) -> Result<Tailed> {
        let listed = match listed {
            Some(l) => l,
            None => self.list_wal(st).await?,
        };
        // Segments past a gap are held until it fills: fetch them ahead only up to
        // `fetch_ahead_bytes` in all (the segment at the gap always). Rounds go on while
        // they feed something, since that frees room.
        let mut fetched_now = 0usize;
        let mut gone = false;
        let all_fetched = loop {
            let mut budget = self
                .settings
                .follower
                .fetch_ahead_bytes
                .saturating_sub(st.fetched_bytes);
            let mut want = Vec::new();
            let mut unfetched = 0usize;
            for l in &listed {
                if l.id < st.next_id || st.fetched.contains_key(&l.id) {
                    continue;
                }
                unfetched += 1;
                if fetched_now + want.len() == FETCH_PER_POLL {
                    continue;
                }
                if l.id == st.next_id {
                    want.push(l.id);
                } else if l.size <= budget {
                    budget -= l.size;
                    want.push(l.id);
                }
            }
            if want.is_empty() {
                break unfetched == 0;
            }
            let everything = want.len() == unfetched;
            fetched_now += want.len();
            let storage = &self.storage;
            let mut fetches = futures::stream::iter(want.into_iter().map(|id| async move {
                let path = storage.wal_path(id);
                let bytes = storage.get_opt(&path).await?;
                Ok::<_, Error>((id, path, bytes))
            }))
            .buffered(FETCH_CONCURRENCY);
            while let Some((id, path, bytes)) = fetches.try_next().await? {
                let Some(bytes) = bytes else {
                    gone = true;
                    continue;
                };
                let size = bytes.len() as u64;
                let seg = decode_segment(bytes).map_err(|e| Error::corrupt(path.to_string(), e))?;
                f.newest_seen
                    .set(f.newest_seen.get().max(seg.header.last_seq));
                st.fetched_bytes += size;
                st.fetched.insert(id, (seg, size));
            }
            drop(fetches);
            let active = Arc::clone(&self.current().active);
            let mut fed = false;
            while let Some((seg, size)) = st.fetched.remove(&st.next_id) {
                st.fetched_bytes = st.fetched_bytes.saturating_sub(size);
                let id = st.next_id;
                st.tail.feed(id, seg, None, &active);
                st.next_id += 1;
                f.segments_tailed.incr();
                fed = true;
            }
            if everything || gone || !fed {
                break everything && !gone;
            }
        };
        // Replay bookkeeping a follower does not need (it would grow without bound).
        st.tail.out.segments.clear();
        st.tail.out.dropped.clear();
        st.tail.out.fenced.clear();
        f.epoch.set(st.tail.epoch());
        f.held_ahead.set(st.fetched_bytes);
        self.visible_seq.store(st.tail.out.end, Ordering::Release);
        if let Some(lease) = &self.lease {
            lease.set_seq(st.tail.out.end);
        }
        if gone && st.fetched.keys().next().is_none_or(|id| *id != st.next_id) {
            return Ok(Tailed::Gone);
        }
        let caught_up = all_fetched && st.fetched.is_empty() && st.tail.waiting() == 0;
        Ok(Tailed::Done { caught_up })
    }

    pub(crate) fn follower_snapshot(&self) -> Option<FollowerSnapshot> {
        let f = self.follower.as_ref()?;
        let applied = self.visible_seq.load(Ordering::Acquire);
        Some(FollowerSnapshot {
            applied_seq: applied,
            lag_seq: f.newest_seen.get().saturating_sub(applied),
            lag_ms: u64::try_from(f.lag(self.clock.now()).as_millis()).unwrap_or(u64::MAX),
            manifest_id: f.manifest_id.get(),
            segments_tailed: f.segments_tailed.get(),
            manifests_applied: f.manifests_applied.get(),
            polls: f.polls.get(),
            poll_errors: f.poll_errors.get(),
            held_ahead_bytes: f.held_ahead.get(),
            retired_leases: self.lease.as_ref().map_or(0, |l| l.retired_count() as u64),
        })
    }
}

enum Tailed {
    Done {
        caught_up: bool,
    },
    /// A segment the follower wanted was deleted (GC): a newer manifest covers it.
    Gone,
}

/// Every sequence `<=` this is in `m`'s SSTs.
pub(crate) fn flushed_base(m: &Manifest) -> SeqNo {
    let sst_max =
        m.l0.iter()
            .chain(m.runs.iter().flat_map(|r| r.ssts.iter()))
            .map(|i| i.props.max_seq)
            .max()
            .unwrap_or(0);
    m.last_flushed_seq.max(sst_max)
}

/// The `follower` task: poll every `follower.poll_interval`. A poll that fails is tried
/// again at the next tick; corruption (a segment or manifest failing validation) or a
/// lost lease stops the handle.
pub(crate) async fn run_follower(inner: Arc<DbInner>, mut shutdown: watch::Receiver<bool>) {
    let interval = inner.settings.follower.poll_interval;
    loop {
        let deadline = inner.clock.now() + interval;
        tokio::select! {
            () = inner.clock.sleep_until(deadline) => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
        if inner.check_usable().is_err() {
            return;
        }
        // A poll riding out a store outage (up to `store.retry.deadline`) does not hold up
        // a close: it is dropped at its next await (state changes between awaits are
        // whole, and the version swap has none; a lease object stored for a dropped swap
        // just expires).
        let polled = tokio::select! {
            r = inner.follower_poll() => r,
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
                continue;
            }
        };
        if let Err(e) = polled {
            if matches!(
                e.kind(),
                crate::ErrorKind::Corrupt | crate::ErrorKind::Closed(_)
            ) {
                inner.set_fatal(e);
                return;
            }
            tracing::warn!(error = %e, "follower poll failed; trying again");
        }
    }
}

impl Db {
    /// A follower's state: what it has applied, how far behind it is, whether reads fail
    /// as stale. `None` for other handles.
    pub fn follower_status(&self) -> Option<FollowerStatus> {
        let inner = &self.inner;
        let f = inner.follower.as_ref()?;
        let now = inner.clock.now();
        let applied = self.visible_seq();
        let lag = f.lag(now);
        let bound = inner.settings.follower.max_staleness;
        Some(FollowerStatus {
            applied_seq: applied,
            lag_seq: f.newest_seen.get().saturating_sub(applied),
            lag,
            last_caught_up_unix_ms: inner
                .clock
                .unix_millis()
                .saturating_sub(u64::try_from(lag.as_millis()).unwrap_or(u64::MAX)),
            stale: !bound.is_zero() && lag > bound,
            manifest_id: f.manifest_id.get(),
            writer_epoch: f.epoch.get(),
        })
    }

    /// Poll the store once now, as the follower's background task does every
    /// `follower.poll_interval` (tests step a follower with it instead of sleeping).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on a handle that is not a follower; store errors;
    /// [`Error::Corrupt`] for a segment or manifest failing validation.
    #[doc(hidden)]
    pub async fn follower_poll_now(&self) -> Result<()> {
        self.inner.check_usable()?;
        self.inner.follower_poll().await.map(|_| ())
    }

    /// Promote this follower: close it, then open the database as its writer with the
    /// same store, settings and clock. The open fences the current writer (if one is
    /// still running, it stops with `Fenced` at its next WAL upload or manifest write);
    /// nothing it acknowledged as `Remote` is lost, and the new writer continues its
    /// sequence (docs/ARCHITECTURE.md, "Followers").
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on a handle that is not a follower; the errors of
    /// [`Db::open`].
    pub async fn promote(self) -> Result<Db> {
        let Some(b) = self
            .inner
            .promote
            .as_ref()
            .map(super::DbBuilder::writer_like)
        else {
            return Err(Error::InvalidInput(
                "only a follower can be promoted".into(),
            ));
        };
        self.close().await?;
        drop(self);
        b.open().await
    }
}
