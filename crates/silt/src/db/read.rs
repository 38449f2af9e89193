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
    ///
    /// Returns the value and its expiry (Unix milliseconds), if it has one and it has not
    /// passed.
    pub(crate) async fn get_in(
        &self,
        v: &Version,
        key: &[u8],
        seq: SeqNo,
    ) -> Result<Option<(Bytes, Option<u64>)>> {
        let now = self.clock.unix_millis();
        Ok(self
            .get_stored(v, key, seq)
            .await?
            .and_then(|(kind, stored)| live(kind, stored, now)))
    }

    /// The newest version of `key` at `seq` as stored (tombstones and expired puts too).
    async fn get_stored(
        &self,
        v: &Version,
        key: &[u8],
        seq: SeqNo,
    ) -> Result<Option<(ValueKind, Bytes)>> {
        for mem in std::iter::once(&v.active).chain(v.frozen.iter()) {
            if let Some(slot) = mem.get(key, seq) {
                return Ok(Some((slot.kind, slot.value)));
            }
        }
        for sst in &v.l0 {
            if let Some(e) = sst.get(&self.storage, &self.cache, key, seq).await? {
                return Ok(Some((e.kind, e.value)));
            }
        }
        for run in &v.runs {
            if let Some(e) = run.get(&self.storage, &self.cache, key, seq).await? {
                return Ok(Some((e.kind, e.value)));
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
        DbIterator::new(ctx, v, range, seq, self.clock.unix_millis(), pin)
    }

    /// What a follower's scan holds while it lives: the version it reads, so the
    /// follower keeps that version's lease (`Lease::commit`) after moving to a newer
    /// manifest. Other handles need none (a writer's GC knows its own readers).
    pub(crate) fn follower_pin(
        &self,
        v: &std::sync::Arc<Version>,
    ) -> Option<std::sync::Arc<dyn std::any::Any + Send + Sync>> {
        self.follower
            .is_some()
            .then(|| std::sync::Arc::clone(v) as std::sync::Arc<dyn std::any::Any + Send + Sync>)
    }

    /// The current version, then the visible sequence number (in that order: see `get_in`),
    /// the sequence read under the version lock: a follower swaps its version and moves
    /// `visible_seq` together under that lock (`db/follower.rs`).
    pub(crate) fn read_view(&self) -> (std::sync::Arc<Version>, SeqNo) {
        let guard = self.version.read();
        let v = std::sync::Arc::clone(&guard);
        let seq = self.visible_seq.load(Ordering::Acquire);
        drop(guard);
        (v, seq)
    }
}

/// What a reader sees of a stored version at `now` (Unix milliseconds): nothing for a
/// tombstone or a put whose expiry has come (`expires_at <= now`), else the user's value and
/// its expiry.
pub(crate) fn live(kind: ValueKind, stored: Bytes, now: u64) -> Option<(Bytes, Option<u64>)> {
    match kind {
        ValueKind::Delete => None,
        ValueKind::Put => Some((stored, None)),
        ValueKind::PutExpiring => {
            let (at, value) = silt_format::split_expiring(&stored)?;
            (at > now).then_some((value, Some(at)))
        }
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
    /// The newest value of `key`, or `None` if absent, deleted or expired.
    ///
    /// # Errors
    /// Store errors and corrupt SST blocks.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        Ok(self.get_with_expiry(key).await?.map(|(value, _)| value))
    }

    /// The newest value of `key` and its expiry (Unix milliseconds; `None` when it never
    /// expires), or `None` if absent, deleted or expired (see [`crate::Expiry`]).
    ///
    /// # Errors
    /// As [`Db::get`].
    pub async fn get_with_expiry(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<(Bytes, Option<u64>)>> {
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
        let pin = self.inner.follower_pin(&v);
        Ok(self.inner.scan_in(&v, to_range(&range), seq, pin))
    }

    /// Ordered scan of the live keys starting with `prefix`.
    ///
    /// # Errors
    /// As [`Db::scan`].
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Result<DbIterator> {
        self.inner.check_open()?;
        let (v, seq) = self.inner.read_view();
        let pin = self.inner.follower_pin(&v);
        Ok(self
            .inner
            .scan_in(&v, prefix_range(prefix.as_ref()), seq, pin))
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
