//! Memtable rotation and flushing frozen memtables to L0 SSTs.

use std::sync::Arc;

use tokio::sync::watch;

use super::DbInner;
use crate::error::{Error, Result};
use crate::lsm::flush::build_sst;
use crate::lsm::sst::SstHandle;
use crate::lsm::version::Version;
use crate::manifest;
use crate::memtable::Memtable;

impl DbInner {
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
                self.set_fatal(e.clone());
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
        let (data, info) = build_sst(mem, &self.settings.sst, id)?;
        let path = self.storage.sst_path(&info.id);
        self.storage.put_new(&path, data.clone()).await?;
        let handle = self.register_sst(SstHandle::from_bytes(&self.storage, info.clone(), &data)?);
        tracing::debug!(sst = %info.id, bytes = info.size, entries = info.props.entries, "flushed memtable");
        self.counters
            .memtable_flushes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.counters
            .flush_bytes
            .fetch_add(info.size, std::sync::atomic::Ordering::Relaxed);

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
        manifest::write(&self.storage, &next).await?;
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

/// Background task: flush frozen memtables whenever woken.
pub(crate) async fn run_memtable_flusher(inner: Arc<DbInner>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if inner.flush_frozen().await.is_err() {
            return;
        }
        tokio::select! {
            () = inner.flush_wake.notified() => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}
