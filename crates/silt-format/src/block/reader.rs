//! Reading raw data blocks: validation, iteration and seeks.

use std::cmp::Ordering;
use std::ops::Range;

use bytes::Bytes;

use super::ENTRY_HEADER_SIZE;
use crate::codec::{u32_at, Reader};
use crate::error::{FormatError, Result};
use crate::key::{cmp_internal, Entry, SeqNo, ValueKind};

const WHAT: &str = "block";

/// A decoded raw block. Owns a `Bytes` of exactly the raw block; cheap to clone.
#[derive(Clone, Debug)]
pub struct Block {
    raw: Bytes,
    data_end: usize,
    num_restarts: usize,
}

/// Fixed part of an entry plus the ranges of its variable parts.
struct EntryHeader {
    shared: usize,
    seq: SeqNo,
    kind: ValueKind,
    suffix: Range<usize>,
    value: Range<usize>,
}

impl Block {
    /// Validates the restart array and trailer of a raw block.
    pub fn decode(raw: Bytes) -> Result<Block> {
        let len = raw.len();
        if len < 4 {
            return Err(FormatError::corrupt(
                WHAT,
                format!("truncated: {len} bytes"),
            ));
        }
        let num_restarts = u32_at(&raw, len - 4).unwrap_or_default() as usize;
        let trailer = (num_restarts as u64) * 4 + 4;
        if trailer > len as u64 {
            return Err(FormatError::corrupt(
                WHAT,
                format!("{num_restarts} restarts do not fit in {len} bytes"),
            ));
        }
        let data_end = len - trailer as usize;
        if (num_restarts == 0) != (data_end == 0) {
            return Err(FormatError::corrupt(
                WHAT,
                format!("{num_restarts} restarts for {data_end} bytes of entries"),
            ));
        }
        let block = Block {
            raw,
            data_end,
            num_restarts,
        };
        let mut prev = None;
        for i in 0..num_restarts {
            let r = block.restart(i);
            let ok = match prev {
                None => r == 0,
                Some(p) => r > p && r < data_end,
            };
            if !ok {
                return Err(FormatError::corrupt(
                    WHAT,
                    format!("restart {i} at offset {r} is out of order or out of range"),
                ));
            }
            prev = Some(r);
        }
        Ok(block)
    }

    /// Length of the raw block in bytes.
    pub fn size_bytes(&self) -> usize {
        self.raw.len()
    }

    /// Number of restart points (0 only for an empty block).
    pub fn num_restarts(&self) -> usize {
        self.num_restarts
    }

    /// Iterates from the first entry.
    pub fn iter(&self) -> BlockIter {
        BlockIter {
            block: self.clone(),
            pos: 0,
            next_restart: 0,
            key: Vec::new(),
            seq: 0,
            kind: ValueKind::Put,
            value: 0..0,
            has_prev: false,
            pending: None,
            done: false,
        }
    }

    /// Iterates from the first entry whose `(key, seq)` is `>=` the target
    /// in internal order: binary search over the restart points, then a
    /// linear scan.
    pub fn iter_from(&self, key: &[u8], seq: SeqNo) -> BlockIter {
        let mut it = self.iter();
        let (mut lo, mut hi) = (0, self.num_restarts);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.restart_key(mid) {
                Ok((k, s)) if cmp_internal(k, s, key, seq) == Ordering::Less => lo = mid + 1,
                Ok(_) => hi = mid,
                Err(e) => {
                    it.pending = Some(Err(e));
                    return it;
                }
            }
        }
        let start = lo.saturating_sub(1);
        if start < self.num_restarts {
            it.pos = self.restart(start);
            it.next_restart = start;
        }
        loop {
            match it.advance() {
                None => break,
                Some(Ok(())) if cmp_internal(&it.key, it.seq, key, seq) == Ordering::Less => {}
                Some(Ok(())) => {
                    it.pending = Some(Ok(it.current()));
                    break;
                }
                Some(Err(e)) => {
                    it.pending = Some(Err(e));
                    break;
                }
            }
        }
        it
    }

    /// Offset of restart point `i` (valid after `decode`).
    fn restart(&self, i: usize) -> usize {
        u32_at(&self.raw, self.data_end + 4 * i).map_or(usize::MAX, |r| r as usize)
    }

    /// Parses the fixed header of the entry at `pos`.
    fn header(&self, pos: usize) -> Result<EntryHeader> {
        let data = self.raw.get(pos..self.data_end).unwrap_or_default();
        let mut r = Reader::new(data, WHAT);
        let shared = r.len32()?;
        let unshared = r.len32()?;
        let value_len = r.len32()?;
        let seq = r.u64()?;
        let kind = ValueKind::try_from(r.u8()?)?;
        let suffix_start = pos + ENTRY_HEADER_SIZE;
        r.take(unshared)?;
        r.take(value_len)?;
        let value_start = suffix_start + unshared;
        if kind == ValueKind::Delete && value_len != 0 {
            return Err(FormatError::corrupt(WHAT, "tombstone with a value"));
        }
        kind.check_value_len(value_len, WHAT)?;
        Ok(EntryHeader {
            shared,
            seq,
            kind,
            suffix: suffix_start..value_start,
            value: value_start..value_start + value_len,
        })
    }

    /// The full key and seq stored at restart point `i`.
    fn restart_key(&self, i: usize) -> Result<(&[u8], SeqNo)> {
        let h = self.header(self.restart(i))?;
        if h.shared != 0 {
            return Err(FormatError::corrupt(WHAT, "restart entry shares a prefix"));
        }
        Ok((&self.raw[h.suffix], h.seq))
    }
}

/// Iterator over a block's entries. Owns a clone of the [`Block`], so it is
/// `'static`. After yielding an `Err` it yields `None`.
#[derive(Debug)]
pub struct BlockIter {
    block: Block,
    /// Offset of the next entry to decode.
    pos: usize,
    /// Index of the first restart point not before `pos`.
    next_restart: usize,
    key: Vec<u8>,
    seq: SeqNo,
    kind: ValueKind,
    value: Range<usize>,
    /// Whether `key`/`seq` hold a previously decoded entry.
    has_prev: bool,
    /// An item to yield before decoding further (set by seeks).
    pending: Option<Result<Entry>>,
    done: bool,
}

impl BlockIter {
    /// Decodes the entry at `pos` into the iterator state.
    fn advance(&mut self) -> Option<Result<()>> {
        if self.pos >= self.block.data_end {
            if self.next_restart < self.block.num_restarts {
                self.next_restart = self.block.num_restarts;
                return Some(Err(FormatError::corrupt(
                    WHAT,
                    "restart point inside the last entry",
                )));
            }
            return None;
        }
        Some(self.advance_inner())
    }

    fn advance_inner(&mut self) -> Result<()> {
        let at_restart = self.next_restart < self.block.num_restarts
            && self.block.restart(self.next_restart) == self.pos;
        if at_restart {
            self.next_restart += 1;
        } else if self.next_restart < self.block.num_restarts
            && self.block.restart(self.next_restart) < self.pos
        {
            return Err(FormatError::corrupt(WHAT, "entry overlaps a restart point"));
        }
        let h = self.block.header(self.pos)?;
        if (at_restart && h.shared != 0) || h.shared > self.key.len() {
            return Err(FormatError::corrupt(
                WHAT,
                format!(
                    "bad shared prefix length {} at offset {}",
                    h.shared, self.pos
                ),
            ));
        }
        let suffix = &self.block.raw[h.suffix.clone()];
        if self.has_prev {
            // new key = key[..shared] ++ suffix, so comparing the suffix with
            // the old key's tail compares the whole keys.
            let order = suffix
                .cmp(&self.key[h.shared..])
                .then_with(|| self.seq.cmp(&h.seq));
            if order != Ordering::Greater {
                return Err(FormatError::corrupt(
                    WHAT,
                    format!("entries out of order at offset {}", self.pos),
                ));
            }
        }
        self.key.truncate(h.shared);
        self.key.extend_from_slice(suffix);
        self.seq = h.seq;
        self.kind = h.kind;
        self.pos = h.value.end;
        self.value = h.value;
        self.has_prev = true;
        Ok(())
    }

    fn current(&self) -> Entry {
        Entry {
            key: Bytes::copy_from_slice(&self.key),
            seq: self.seq,
            kind: self.kind,
            value: self.block.raw.slice(self.value.clone()),
        }
    }
}

impl IntoIterator for &Block {
    type Item = Result<Entry>;
    type IntoIter = BlockIter;

    fn into_iter(self) -> BlockIter {
        self.iter()
    }
}

impl Iterator for BlockIter {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match self.pending.take() {
            Some(item) => Some(item),
            None => self.advance().map(|r| r.map(|()| self.current())),
        };
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}
