//! Memtable rotation and flushing frozen memtables to L0 SSTs.

use std::sync::Arc;

use bytes::Bytes;
use silt_format::manifest::SstInfo;
use tokio::sync::watch;

use super::{DbInner, PendingSst};
use crate::error::{Error, Result};
use crate::lsm::flush::build_sst;
use crate::lsm::sst::SstHandle;
use crate::lsm::version::Version;
use crate::memtable::Memtable;
use crate::objstore::Created;
use crate::retry::Backoff;

/// Names tried for one SST before giving up (each taken name is another object's).
const SST_NAME_ATTEMPTS: usize = 3;

impl DbInner {
    /// Upload a new SST as `info.id`. Should another object hold that name (fresh ULIDs
    /// make it all but impossible), it is left alone and the SST goes up under a fresh id,
    /// written into `info` (the id is in the object name and the manifest, not in the SST
    /// bytes). The returned guards keep those fresh ids safe from GC; hold them until the
    /// manifest referencing the SST is written.
    pub(crate) async fn upload_sst(
        &self,
        info: &mut SstInfo,
        data: &Bytes,
    ) -> Result<Vec<PendingSst>> {
        let mut guards = Vec::new();
        for _ in 0..SST_NAME_ATTEMPTS {
            let path = self.storage.sst_path(&info.id);
            match self.storage.put_new(&path, data.clone()).await? {
                Created::Ours => return Ok(guards),
                Created::Theirs(_) => {
                    let (id, guard) = self.new_sst_id();
                    tracing::warn!(
                        taken = %info.id,
                        new = %id,
                        "SST name held by another object; uploading under a new name"
                    );
                    info.id = id;
                    guards.push(guard);
                }
            }
        }
        Err(Error::Internal(format!(
            "{SST_NAME_ATTEMPTS} fresh SST names in a row were held by other objects"
        )))
    }

    /// Freeze the active memtable (if non-empty). Must be called with the write lock held,
    /// so no commit group straddles the switch.
    pub(crate) fn rotate_locked(&self) -> bool {
        let mut v = self.version.write();
        if v.active.is_empty() {
            return false;
        }
        let mut next = Version::clone(&v);
        next.frozen.insert(0, Arc::clone(&next.active));
        next.active = Arc::new(Memtable::new());
        *v = Arc::new(next);
        drop(v);
        *self.active_since.lock() = None;
        self.flush_wake.notify_one();
        true
    }

    /// Flush every frozen memtable, oldest first.
    pub(crate) async fn flush_frozen(&self) -> Result<()> {
        let _guard = self.flush_lock.lock().await;
        loop {
            self.check_open_or_closing()?;
            let oldest = self.current().frozen.last().cloned();
            let Some(mem) = oldest else { return Ok(()) };
            if let Err(e) = self.flush_one(&mem).await {
                // A store that failed transiently before the manifest write (the SST
                // upload): the memtable stays frozen and is flushed again later.
                if !e.is_transient() {
                    self.set_fatal(e.clone());
                }
                return Err(e);
            }
        }
    }

    fn check_open_or_closing(&self) -> Result<()> {
        match self.fatal.lock().as_ref() {
            Some(e) => Err(Error::Stopped(Arc::new(e.clone()))),
            None => Ok(()),
        }
    }

    async fn flush_one(&self, mem: &Arc<Memtable>) -> Result<()> {
        let (id, _pending) = self.new_sst_id();
        let (data, mut info) = build_sst(mem, &self.settings.sst, id)?;
        // Like `_pending`, held until the manifest below is written.
        let _renamed = self.upload_sst(&mut info, &data).await?;
        let handle = self.register_sst(SstHandle::from_bytes(&self.storage, info.clone(), &data)?);
        tracing::debug!(sst = %info.id, bytes = info.size, entries = info.props.entries, "flushed memtable");
        self.counters.memtable_flushes.incr();
        self.counters.flush_bytes.add(info.size);

        let mut m = self.manifest.lock().await;
        let mut next = m.clone();
        next.id += 1;
        next.l0.insert(0, info);
        next.last_flushed_seq = next.last_flushed_seq.max(mem.max_seq());
        if let Some(wal) = &self.wal {
            next.wal_replay_from = next
                .wal_replay_from
                .max(wal.replay_point(next.last_flushed_seq));
        }
        next.next_seq_hint = next.last_flushed_seq + 1;
        self.commit_manifest(&next).await?;
        *m = next;
        drop(m);

        let mut v = self.version.write();
        let mut nv = Version::clone(&v);
        nv.frozen.retain(|f| !Arc::ptr_eq(f, mem));
        nv.l0.insert(0, handle);
        *v = Arc::new(nv);
        drop(v);
        self.frozen_space.notify_waiters();
        self.compaction_wake.notify_one();
        Ok(())
    }
}

impl DbInner {
    /// Freeze the active memtable when the WAL since the replay point is too long
    /// (`wal.max_replay_segments`) or too old (`wal.max_replay_age`), so its flush moves
    /// the replay point and an open never replays more than that.
    fn rotate_for_replay_bound(&self) {
        let Some(wal) = &self.wal else { return };
        let w = &self.settings.wal;
        let too_many = wal.segments_since_replay_point() > w.max_replay_segments;
        let too_old = self
            .active_since
            .lock()
            .is_some_and(|t| self.clock.now().saturating_duration_since(t) >= w.max_replay_age);
        if !(too_many || too_old) {
            return;
        }
        let _w = self.write_lock.lock();
        if self.rotate_locked() {
            self.counters.replay_bound_flushes.incr();
            tracing::debug!(too_many, too_old, "memtable frozen by the replay bound");
        }
    }
}

/// How often the memtable flusher checks the replay bound (at most; sooner for a short
/// `wal.max_replay_age`).
const REPLAY_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Background task: flush frozen memtables whenever woken, and freeze the active one when
/// the replay bound says so.
pub(crate) async fn run_memtable_flusher(inner: Arc<DbInner>, mut shutdown: watch::Receiver<bool>) {
    let check = REPLAY_CHECK.min(inner.settings.wal.max_replay_age / 2);
    let mut backoff = Backoff::new(&inner.settings.store.retry);
    loop {
        inner.rotate_for_replay_bound();
        let mut tick = inner.clock.now() + check;
        match inner.flush_frozen().await {
            Ok(()) => backoff = Backoff::new(&inner.settings.store.retry),
            Err(e) if inner.check_open().is_ok() => {
                // Transient: the frozen memtable waits; try again after a pause.
                inner.counters.flush_failures.incr();
                let pause = backoff.next_pause();
                tracing::warn!(error = %e, ?pause, "memtable flush failed; retrying");
                tick = inner.clock.now() + pause;
            }
            Err(_) => return,
        }
        tokio::select! {
            () = inner.flush_wake.notified() => {}
            () = inner.clock.sleep_until(tick) => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}
