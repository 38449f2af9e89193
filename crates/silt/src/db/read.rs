//! The read path: point reads and scans at a sequence number.

use std::ops::{Bound, RangeBounds};
use std::sync::atomic::Ordering;

use bytes::Bytes;
use silt_format::{SeqNo, ValueKind};

use super::{Db, DbInner};
use crate::error::Result;
use crate::lsm::iter::{DbIterator, KeyRange, ScanCtx};
use crate::lsm::version::Version;

impl DbInner {
    /// Read `key` at `seq` in `v`. Callers take the version *before* the sequence number
    /// (plain reads) or hold a registered snapshot (snapshot reads): either way the version
    /// holds the newest version of every key at or below `seq` that any read can need.
    pub(crate) async fn get_in(
        &self,
        v: &Version,
        key: &[u8],
        seq: SeqNo,
    ) -> Result<Option<Bytes>> {
        for mem in std::iter::once(&v.active).chain(v.frozen.iter()) {
            if let Some(slot) = mem.get(key, seq) {
                return Ok(slot);
            }
        }
        for sst in &v.l0 {
            if let Some(e) = sst.get(&self.storage, &self.cache, key, seq).await? {
                return Ok(live(e));
            }
        }
        for run in &v.runs {
            if let Some(e) = run.get(&self.storage, &self.cache, key, seq).await? {
                return Ok(live(e));
            }
        }
        Ok(None)
    }

    pub(crate) fn scan_in(
        &self,
        v: &Version,
        range: KeyRange,
        seq: SeqNo,
        pin: Option<std::sync::Arc<dyn std::any::Any + Send + Sync>>,
    ) -> DbIterator {
        let ctx = ScanCtx {
            storage: self.storage.clone(),
            cache: self.cache.clone(),
            fill_cache: true,
        };
        DbIterator::new(ctx, v, range, seq, pin)
    }

    /// The current version, then the visible sequence number (in that order: see `get_in`).
    pub(crate) fn read_view(&self) -> (std::sync::Arc<Version>, SeqNo) {
        let v = self.current();
        let seq = self.visible_seq.load(Ordering::Acquire);
        (v, seq)
    }
}

fn live(e: silt_format::Entry) -> Option<Bytes> {
    match e.kind {
        ValueKind::Put => Some(e.value),
        ValueKind::Delete => None,
    }
}

pub(crate) fn to_range<K: AsRef<[u8]>>(range: &impl RangeBounds<K>) -> KeyRange {
    let conv = |b: Bound<&K>| match b {
        Bound::Included(k) => Bound::Included(Bytes::copy_from_slice(k.as_ref())),
        Bound::Excluded(k) => Bound::Excluded(Bytes::copy_from_slice(k.as_ref())),
        Bound::Unbounded => Bound::Unbounded,
    };
    KeyRange {
        start: conv(range.start_bound()),
        end: conv(range.end_bound()),
    }
}

impl Db {
    /// The newest value of `key`, or `None` if absent or deleted.
    ///
    /// # Errors
    /// Store errors and corrupt SST blocks.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.inner.check_open()?;
        let (v, seq) = self.inner.read_view();
        self.inner.get_in(&v, key.as_ref(), seq).await
    }

    /// Ordered scan of live keys in `range` (e.g. `"a".."m"`, `..`, `b"k".to_vec()..`).
    ///
    /// # Errors
    /// [`crate::Error::Closed`]; errors while iterating come from [`DbIterator::next`].
    pub fn scan<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Result<DbIterator> {
        self.inner.check_open()?;
        let (v, seq) = self.inner.read_view();
        Ok(self.inner.scan_in(&v, to_range(&range), seq, None))
    }

    /// Ordered scan of the live keys starting with `prefix`.
    ///
    /// # Errors
    /// As [`Db::scan`].
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Result<DbIterator> {
        self.inner.check_open()?;
        let (v, seq) = self.inner.read_view();
        Ok(self
            .inner
            .scan_in(&v, prefix_range(prefix.as_ref()), seq, None))
    }
}

/// The key range of all keys starting with `prefix`.
pub(crate) fn prefix_range(prefix: &[u8]) -> KeyRange {
    let start = if prefix.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Included(Bytes::copy_from_slice(prefix))
    };
    // Smallest key greater than every key with this prefix: strip trailing 0xff, bump last.
    let mut end = prefix.to_vec();
    while end.last() == Some(&0xff) {
        end.pop();
    }
    let end = match end.last_mut() {
        Some(last) => {
            *last += 1;
            Bound::Excluded(Bytes::from(end))
        }
        None => Bound::Unbounded,
    };
    KeyRange { start, end }
}
