//! The write path: sequence, log, insert, acknowledge at the requested durability.

use std::sync::atomic::Ordering;

use super::batch::{Durability, WriteBatch, WriteOptions};
use super::Db;
use crate::error::{Error, Result};

impl Db {
    /// Put `key` = `value` with the default (`Remote`) durability.
    ///
    /// # Errors
    /// Invalid key/value sizes, [`Error::Fenced`], store errors that stopped the WAL.
    pub async fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.put_with(key, value, &WriteOptions::default()).await
    }

    /// Put with explicit options: durability, and an expiry ([`WriteOptions::expiring`]).
    ///
    /// # Errors
    /// As [`Db::put`].
    pub async fn put_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        opts: &WriteOptions,
    ) -> Result<()> {
        let mut b = WriteBatch::new();
        match opts.expiry {
            Some(e) => b.put_expiring(key, value, e.resolve(self.inner.clock.unix_millis())),
            None => b.put(key, value),
        };
        let opts = WriteOptions {
            expiry: None,
            ..*opts
        };
        self.write_with(b, &opts).await
    }

    /// Delete `key` (a tombstone) with the default durability.
    ///
    /// # Errors
    /// As [`Db::put`].
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<()> {
        self.delete_with(key, &WriteOptions::default()).await
    }

    /// Delete with explicit options.
    ///
    /// # Errors
    /// As [`Db::put`].
    pub async fn delete_with(&self, key: impl AsRef<[u8]>, opts: &WriteOptions) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete(key);
        self.write_with(b, opts).await
    }

    /// Apply a batch atomically with the default durability.
    ///
    /// # Errors
    /// As [`Db::put`].
    pub async fn write(&self, batch: WriteBatch) -> Result<()> {
        self.write_with(batch, &WriteOptions::default()).await
    }

    /// Apply a batch atomically: every operation gets consecutive sequence numbers, is logged
    /// as one WAL record, and becomes visible at once.
    ///
    /// # Errors
    /// As [`Db::put`]; [`Error::ReadOnly`] on a read-only handle.
    pub async fn write_with(&self, batch: WriteBatch, opts: &WriteOptions) -> Result<()> {
        let inner = &self.inner;
        inner.check_open()?;
        let Some(wal) = &inner.wal else {
            return Err(Error::ReadOnly);
        };
        batch.validate()?;
        if opts.expiry.is_some() {
            return Err(Error::InvalidInput(
                "WriteOptions::expiry applies to put_with; give a batch's puts an expiry with \
                 WriteBatch::put_expiring"
                    .into(),
            ));
        }
        if batch.is_empty() {
            return Ok(());
        }
        if opts.durability == Durability::Local && inner.local.is_none() {
            return Err(Error::InvalidInput(
                "Durability::Local needs settings.local_log".into(),
            ));
        }
        wal.reserve().await?;
        if let Some(local) = &inner.local {
            // Every write enters the local log; with only Remote/Buffered writes nobody
            // waits for its groups, so bound its pending buffer here, outside the lock.
            local.reserve().await?;
        }
        self.wait_for_frozen_space().await?;
        self.wait_for_l0().await?;
        let (last_seq, ticket) = {
            let mut next_seq = inner.write_lock.lock();
            inner.check_open()?;
            let first = *next_seq;
            // Every write enters the local log (in sequence order, under this lock), so it
            // has no holes; only Local writes wait for its fdatasync.
            let ticket = match &inner.local {
                Some(local) => Some(
                    local.enqueue(
                        first,
                        batch
                            .ops
                            .iter()
                            .map(|op| (op.kind, op.key.as_ref(), op.value.as_ref())),
                    )?,
                ),
                None => None,
            };
            wal.append(first, &batch.ops)?;
            let active = std::sync::Arc::clone(&inner.version.read().active);
            // The first write into a fresh memtable starts its `wal.max_replay_age` clock
            // (memtables are only swapped under this lock, so no other write races it).
            if active.is_empty() {
                *inner.active_since.lock() = Some(inner.clock.now());
            }
            for (i, op) in batch.ops.iter().enumerate() {
                active.insert(op.key.clone(), first + i as u64, op.kind, op.value.clone());
            }
            let last = first + batch.ops.len() as u64 - 1;
            *next_seq = last + 1;
            inner.visible_seq.store(last, Ordering::Release);
            if active.size_bytes() >= inner.settings.memtable_bytes {
                inner.rotate_locked();
            }
            (last, ticket)
        };
        match (opts.durability, &inner.local, ticket) {
            (Durability::Buffered, ..) => Ok(()),
            (Durability::Local, Some(local), Some(ticket)) => local.wait(ticket).await,
            (Durability::Local, ..) => Err(Error::Internal("local log vanished".into())),
            (Durability::Remote, ..) => wal.wait_durable(last_seq).await,
        }
    }

    /// Wait while too many frozen memtables await their flush (write backpressure).
    async fn wait_for_frozen_space(&self) -> Result<()> {
        let inner = &self.inner;
        let deadline = inner.clock.now() + inner.settings.store.retry.deadline;
        loop {
            let notified = inner.frozen_space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            inner.check_open()?;
            if inner.current().frozen.len() < inner.settings.max_frozen_memtables {
                return Ok(());
            }
            inner.flush_wake.notify_one();
            tokio::select! {
                () = notified => {}
                () = inner.clock.sleep_until(deadline) => {
                    // Memtable flushes keep failing: the store is not taking SSTs.
                    return Err(Error::Timeout {
                        what: "a write for memtable space (SST flushes are failing)",
                        waited: inner.settings.store.retry.deadline,
                    });
                }
            }
        }
    }

    /// Make every write acknowledged so far durable in the object store (seals the open WAL
    /// segment now). Concurrent calls share one upload.
    ///
    /// # Errors
    /// Store errors or [`Error::Fenced`].
    pub async fn flush(&self) -> Result<()> {
        self.inner.check_open()?;
        match &self.inner.wal {
            Some(wal) => wal.flush().await,
            None => Ok(()),
        }
    }

    /// Wait until every write acknowledged so far is durable in the object store, as if each
    /// had been written with [`Durability::Remote`]. Unlike [`Db::flush`] it does not seal
    /// the open WAL segment early: the WAL keeps its linger (`wal.flush_interval`) and PUT
    /// budget, so its objects stay few and well filled. `silt serve --durability remote`
    /// calls it once per pipeline.
    ///
    /// # Errors
    /// As a `Remote` write's: store errors past the deadline, [`Error::Fenced`].
    pub async fn wait_remote(&self) -> Result<()> {
        self.inner.check_open()?;
        let Some(wal) = &self.inner.wal else {
            return Ok(());
        };
        let last = self.inner.visible_seq.load(Ordering::Acquire);
        wal.wait_durable(last).await
    }

    /// Make every write acknowledged so far durable in the local log, as if each had been
    /// written with [`Durability::Local`]: one group commit (an `fdatasync`) covers them
    /// all; concurrent calls share it. `silt serve --durability local` calls it once per
    /// pipeline.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] without `settings.local_log`; the local log's errors.
    pub async fn flush_local(&self) -> Result<()> {
        self.inner.check_open()?;
        match &self.inner.local {
            Some(local) => local.flush().await,
            None => Err(Error::InvalidInput(
                "flush_local needs a local log (settings.local_log)".into(),
            )),
        }
    }

    /// Freeze the memtable and write every frozen memtable to L0 SSTs now (also advances the
    /// manifest's WAL replay point).
    ///
    /// # Errors
    /// Store errors or [`Error::Fenced`].
    pub async fn flush_memtables(&self) -> Result<()> {
        self.inner.check_open()?;
        if self.inner.wal.is_none() {
            return Err(Error::ReadOnly);
        }
        {
            let _w = self.inner.write_lock.lock();
            self.inner.rotate_locked();
        }
        self.inner.flush_frozen().await
    }

    /// Make everything durable and stop background work. Later calls fail with
    /// [`Error::Closed`]; closing twice is fine (a concurrent second call waits for the
    /// first).
    ///
    /// A write racing with `close` either is sequenced before it (then the final flush
    /// covers it and it is acknowledged at its durability) or fails with
    /// [`Error::Closed`]; none waits forever.
    ///
    /// # Errors
    /// The error of the final flush, if any (background work stops either way).
    pub async fn close(&self) -> Result<()> {
        let _serial = self.tasks.close_lock.lock().await;
        let inner = &self.inner;
        {
            // Under the write lock: every commit group sequenced so far is in the WAL (and
            // the local log), so the final flush below covers it; a later one finds
            // `closed` at its check under this lock and fails.
            let _w = inner.write_lock.lock();
            if inner.closed.swap(true, Ordering::AcqRel) {
                return Ok(());
            }
        }
        // Writers waiting for backpressure see `closed` and fail.
        inner.frozen_space.notify_waiters();
        inner.compacted.notify_waiters();
        let healthy = inner.fatal.lock().is_none();
        let flushed = match &inner.wal {
            Some(wal) if healthy => match wal.flush().await {
                Ok(()) if inner.settings.flush_on_close => {
                    {
                        let _w = inner.write_lock.lock();
                        inner.rotate_locked();
                    }
                    inner.flush_frozen().await
                }
                other => other,
            },
            _ => Ok(()),
        };
        // Local writers get their records synced; then the directory is released.
        let local = match &inner.local {
            Some(local) => local.close().await,
            None => Ok(()),
        };
        self.tasks.shutdown().await;
        // A read-only handle's lease goes with it.
        inner.release_lease().await;
        if let Some(wal) = &inner.wal {
            // The flusher is gone: nothing waits for an upload that will not happen.
            wal.stopped();
        }
        flushed.and(local)
    }
}
