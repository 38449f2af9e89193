//! The memtable: a concurrent ordered map of internal keys (user key asc, sequence desc).

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;
use silt_format::{cmp_internal, Entry, SeqNo, ValueKind};

/// Per-entry heap overhead counted against `memtable_bytes` beyond key and value bytes: the
/// skiplist node with its tower, the key's and value's `Bytes` handles and separate heap
/// allocations, and allocator rounding. A soak run measured 280-330 bytes of heap per entry
/// of 16-byte keys and 100-byte values, i.e. about 170-210 bytes of overhead.
const ENTRY_OVERHEAD: usize = 192;

/// A versioned key: ordered by user key ascending, then sequence number descending.
///
/// `head` holds the key's first 16 bytes (big-endian, zero-padded) inside the skiplist
/// node: most comparisons of a search are decided by it, without loading the key's bytes
/// from their separate allocation (a second cache miss per node visited, which made
/// memtable inserts and gets the largest cost of a write).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InternalKey {
    head: u128,
    pub key: Bytes,
    pub seq: SeqNo,
}

impl InternalKey {
    pub fn new(key: Bytes, seq: SeqNo) -> Self {
        InternalKey {
            head: head(&key),
            key,
            seq,
        }
    }
}

/// The first 16 bytes of `key`, zero-padded, as a big-endian number: if two keys' heads
/// differ, they order as their keys do (bytewise); if equal, the keys must be compared.
fn head(key: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    let n = key.len().min(16);
    b[..n].copy_from_slice(&key[..n]);
    u128::from_be_bytes(b)
}

impl Ord for InternalKey {
    fn cmp(&self, other: &Self) -> Ordering {
        match self.head.cmp(&other.head) {
            Ordering::Equal => cmp_internal(&self.key, self.seq, &other.key, other.seq),
            unequal => unequal,
        }
    }
}

impl PartialOrd for InternalKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A stored version: its kind and its value as stored (empty for a tombstone, expiry then
/// value for an expiring put).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub kind: ValueKind,
    pub value: Bytes,
}

/// One memtable. Inserts are concurrent; the write path inserts under its own lock so
/// sequence numbers arrive in order.
#[derive(Debug)]
pub(crate) struct Memtable {
    map: SkipMap<InternalKey, Slot>,
    bytes: AtomicUsize,
    max_seq: AtomicU64,
    _live: crate::live::LiveToken,
}

impl Memtable {
    pub fn new() -> Self {
        Memtable {
            map: SkipMap::new(),
            bytes: AtomicUsize::new(0),
            max_seq: AtomicU64::new(0),
            _live: crate::live::LiveToken::new(crate::live::Kind::Memtable),
        }
    }

    /// Insert one version; a Delete's value is dropped.
    pub fn insert(&self, key: Bytes, seq: SeqNo, kind: ValueKind, value: Bytes) {
        let value = if kind.is_put() { value } else { Bytes::new() };
        let size = key.len() + value.len() + ENTRY_OVERHEAD;
        self.map
            .insert(InternalKey::new(key, seq), Slot { kind, value });
        self.bytes.fetch_add(size, AtomicOrdering::Relaxed);
        self.max_seq.fetch_max(seq, AtomicOrdering::Relaxed);
    }

    /// Approximate bytes held.
    pub fn size_bytes(&self) -> usize {
        self.bytes.load(AtomicOrdering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Highest sequence number inserted (0 when empty).
    pub fn max_seq(&self) -> SeqNo {
        self.max_seq.load(AtomicOrdering::Relaxed)
    }

    /// The newest version of `key` with sequence `<= seq` (tombstones included).
    pub fn get(&self, key: &[u8], seq: SeqNo) -> Option<Slot> {
        let probe = InternalKey::new(Bytes::copy_from_slice(key), seq);
        let e = self.map.lower_bound(Bound::Included(&probe))?;
        (e.key().key.as_ref() == key).then(|| e.value().clone())
    }

    /// Up to `limit` entries strictly after `after` (or from `start` when `after` is None),
    /// in internal order. Used by scans, which resume by key instead of holding a borrow.
    pub fn entries_after(
        &self,
        after: Option<&InternalKey>,
        start: Bound<&[u8]>,
        limit: usize,
    ) -> Vec<Entry> {
        let probe;
        let lower = match (after, start) {
            (Some(k), _) => Bound::Excluded(k),
            (None, Bound::Included(s)) => {
                probe = InternalKey::new(Bytes::copy_from_slice(s), SeqNo::MAX);
                Bound::Included(&probe)
            }
            (None, Bound::Excluded(s)) => {
                // First version of the next key: (s, 0) is the last version of s.
                probe = InternalKey::new(Bytes::copy_from_slice(s), 0);
                Bound::Excluded(&probe)
            }
            (None, Bound::Unbounded) => Bound::Unbounded,
        };
        self.map
            .range((lower, Bound::Unbounded))
            .take(limit)
            .map(|e| to_entry(e.key(), e.value()))
            .collect()
    }

    /// Every entry in internal order (for flushing to an SST).
    pub fn iter(&self) -> impl Iterator<Item = Entry> + '_ {
        self.map.iter().map(|e| to_entry(e.key(), e.value()))
    }
}

fn to_entry(k: &InternalKey, v: &Slot) -> Entry {
    Entry {
        key: k.key.clone(),
        seq: k.seq,
        kind: v.kind,
        value: v.value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The head shortcut orders exactly as `cmp_internal` (keys around 16 bytes, with
        /// zero bytes and shared prefixes, where it could go wrong).
        #[test]
        fn head_order_is_internal_order(
            a in prop::collection::vec(prop::sample::select(vec![0u8, 1, b'k', 0xff]), 0..20),
            b in prop::collection::vec(prop::sample::select(vec![0u8, 1, b'k', 0xff]), 0..20),
            sa in 0u64..3,
            sb in 0u64..3,
        ) {
            let x = InternalKey::new(Bytes::from(a.clone()), sa);
            let y = InternalKey::new(Bytes::from(b.clone()), sb);
            prop_assert_eq!(x.cmp(&y), cmp_internal(&a, sa, &b, sb));
        }
    }

    fn put(v: &'static [u8]) -> Slot {
        Slot {
            kind: ValueKind::Put,
            value: Bytes::from_static(v),
        }
    }

    fn ins(m: &Memtable, k: &'static [u8], seq: SeqNo, s: Slot) {
        m.insert(Bytes::from_static(k), seq, s.kind, s.value);
    }

    #[test]
    fn versions_and_tombstones() {
        let m = Memtable::new();
        let tomb = Slot {
            kind: ValueKind::Delete,
            value: Bytes::new(),
        };
        ins(&m, b"a", 1, put(b"v1"));
        // A tombstone's value is dropped, whatever the caller passes.
        m.insert(
            Bytes::from_static(b"a"),
            3,
            ValueKind::Delete,
            Bytes::from_static(b"x"),
        );
        ins(&m, b"a", 5, put(b"v5"));
        ins(&m, b"b", 2, put(b"w"));
        assert_eq!(m.get(b"a", 0), None);
        assert_eq!(m.get(b"a", 1), Some(put(b"v1")));
        assert_eq!(m.get(b"a", 4), Some(tomb));
        assert_eq!(m.get(b"a", 9), Some(put(b"v5")));
        assert_eq!(m.get(b"c", 9), None);
        assert_eq!(m.max_seq(), 5);
        let all: Vec<_> = m.iter().map(|e| (e.key, e.seq)).collect();
        assert_eq!(
            all,
            vec![
                (Bytes::from_static(b"a"), 5),
                (Bytes::from_static(b"a"), 3),
                (Bytes::from_static(b"a"), 1),
                (Bytes::from_static(b"b"), 2)
            ]
        );
    }

    #[test]
    fn resumable_ranges() {
        let m = Memtable::new();
        for (i, k) in [b"a", b"b", b"c"].iter().enumerate() {
            m.insert(
                Bytes::from_static(*k),
                i as u64 + 1,
                ValueKind::Delete,
                Bytes::new(),
            );
        }
        let first = m.entries_after(None, Bound::Excluded(b"a"), 1);
        assert_eq!(first[0].key.as_ref(), b"b");
        let k = InternalKey::new(first[0].key.clone(), first[0].seq);
        let rest = m.entries_after(Some(&k), Bound::Unbounded, 10);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].key.as_ref(), b"c");
        assert_eq!(m.entries_after(None, Bound::Included(b"b"), 10).len(), 2);
    }
}
