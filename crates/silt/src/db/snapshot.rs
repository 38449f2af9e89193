//! Snapshots: reads at a fixed sequence number.

use std::ops::RangeBounds;
use std::sync::Arc;

use bytes::Bytes;
use silt_format::SeqNo;

use super::read::{prefix_range, to_range};
use super::{Db, DbInner};
use crate::error::Result;
use crate::lsm::iter::DbIterator;

/// Registration of a live snapshot; unregisters on drop. Scans started from a snapshot
/// hold one too, so the versions they read stay protected until they finish.
#[derive(Debug)]
struct Pin {
    inner: Arc<DbInner>,
    seq: SeqNo,
    /// A follower's snapshot reads the version it was taken with: the writer's
    /// compactions do not know its sequence number, so a newer version may lack what it
    /// needs.
    version: Option<Arc<crate::lsm::version::Version>>,
}

impl Pin {
    fn version(&self) -> Arc<crate::lsm::version::Version> {
        self.version
            .as_ref()
            .map_or_else(|| self.inner.current(), Arc::clone)
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut s = self.inner.snapshots.lock();
        if let Some(n) = s.get_mut(&self.seq) {
            *n -= 1;
            if *n == 0 {
                s.remove(&self.seq);
            }
        }
    }
}

/// A consistent read view at the sequence number current when it was taken.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pin: Arc<Pin>,
}

impl Snapshot {
    /// The sequence number this snapshot reads at.
    pub fn seq(&self) -> SeqNo {
        self.pin.seq
    }

    /// Value of `key` as of the snapshot.
    ///
    /// # Errors
    /// Store errors and corrupt SST blocks.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        Ok(self.get_with_expiry(key).await?.map(|(value, _)| value))
    }

    /// Value of `key` as of the snapshot and its expiry (Unix milliseconds), as
    /// [`Db::get_with_expiry`]. Expiry is judged at the time of the call, not the
    /// snapshot's.
    ///
    /// # Errors
    /// As [`Snapshot::get`].
    pub async fn get_with_expiry(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<(Bytes, Option<u64>)>> {
        self.pin.inner.check_open()?;
        let v = self.pin.version();
        self.pin.inner.get_in(&v, key.as_ref(), self.pin.seq).await
    }

    /// Ordered scan as of the snapshot.
    ///
    /// # Errors
    /// [`crate::Error::Closed`].
    pub fn scan<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Result<DbIterator> {
        self.pin.inner.check_open()?;
        let pin: Arc<dyn std::any::Any + Send + Sync> = self.pin.clone();
        let v = self.pin.version();
        Ok(self
            .pin
            .inner
            .scan_in(&v, to_range(&range), self.pin.seq, Some(pin)))
    }

    /// Prefix scan as of the snapshot.
    ///
    /// # Errors
    /// [`crate::Error::Closed`].
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Result<DbIterator> {
        self.pin.inner.check_open()?;
        let pin: Arc<dyn std::any::Any + Send + Sync> = self.pin.clone();
        let v = self.pin.version();
        Ok(self
            .pin
            .inner
            .scan_in(&v, prefix_range(prefix.as_ref()), self.pin.seq, Some(pin)))
    }
}

impl Db {
    /// A snapshot of everything visible now.
    pub fn snapshot(&self) -> Snapshot {
        let inner = Arc::clone(&self.inner);
        // Register under the write lock so the sequence cannot move while we register it.
        let (seq, version) = {
            let _w = inner.write_lock.lock();
            let (seq, version) = if inner.follower.is_some() {
                let (v, seq) = inner.read_view();
                (seq, Some(v))
            } else {
                (
                    inner.visible_seq.load(std::sync::atomic::Ordering::Acquire),
                    None,
                )
            };
            *inner.snapshots.lock().entry(seq).or_insert(0) += 1;
            (seq, version)
        };
        Snapshot {
            pin: Arc::new(Pin {
                inner,
                seq,
                version,
            }),
        }
    }
}
