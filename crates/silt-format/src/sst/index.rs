//! The SST index: one entry per data block holding the block's last
//! internal key and its handle. Encoded as a raw block (see
//! [`crate::block`]) whose entries are `Put`s with key = last user key,
//! seq = last seq and value = the 16-byte handle.

use std::cmp::Ordering;

use bytes::Bytes;

use super::builder::INDEX_RESTART_INTERVAL;
use super::footer::BlockHandle;
use crate::block::Block;
use crate::codec::Reader;
use crate::error::{FormatError, Result};
use crate::key::{cmp_internal, SeqNo, ValueKind};

const WHAT: &str = "sst index";

/// One data block as seen by the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// User key of the block's last entry.
    pub last_key: Bytes,
    /// Seq of the block's last entry.
    pub last_seq: SeqNo,
    /// Where the block's frame is.
    pub handle: BlockHandle,
}

/// A decoded index.
#[derive(Clone, Debug)]
pub struct IndexBlock {
    entries: Vec<IndexEntry>,
    size: usize,
}

impl IndexBlock {
    /// Decodes a raw index block (the output of `decode_block_frame`).
    ///
    /// Every entry holds a copy of its whole key, while the block stores only suffixes,
    /// so a block whose entries all share one long prefix would decode to
    /// entries × prefix bytes. The writer starts a full key every
    /// `INDEX_RESTART_INTERVAL` (16) entries, which caps the decoded keys at that many times
    /// the raw size; more than that is `Corrupt`.
    pub fn decode(raw: Bytes) -> Result<IndexBlock> {
        let size = raw.len();
        let max_key_bytes = size.saturating_mul(INDEX_RESTART_INTERVAL);
        let mut key_bytes = 0usize;
        let block = Block::decode(raw)?;
        let mut entries = Vec::new();
        for e in &block {
            let e = e?;
            if e.kind != ValueKind::Put || e.value.len() != BlockHandle::ENCODED_SIZE {
                return Err(FormatError::corrupt(WHAT, "entry is not a block handle"));
            }
            key_bytes = key_bytes.saturating_add(e.key.len());
            if key_bytes > max_key_bytes {
                return Err(FormatError::corrupt(
                    WHAT,
                    format!(
                        "keys total more than {max_key_bytes} bytes for a {size}-byte block \
                         (restart interval {INDEX_RESTART_INTERVAL})"
                    ),
                ));
            }
            let handle = BlockHandle::read(&mut Reader::new(&e.value, WHAT))?;
            entries.push(IndexEntry {
                last_key: e.key,
                last_seq: e.seq,
                handle,
            });
        }
        Ok(IndexBlock { entries, size })
    }

    /// All entries, in block order.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Index of the first data block whose last `(key, seq)` is `>=` the
    /// target in internal order; `None` if the target is past the end.
    pub fn find(&self, key: &[u8], seq: SeqNo) -> Option<usize> {
        let i = self
            .entries
            .partition_point(|e| cmp_internal(&e.last_key, e.last_seq, key, seq) == Ordering::Less);
        (i < self.entries.len()).then_some(i)
    }

    /// Size of the raw index block in bytes.
    pub fn size_bytes(&self) -> usize {
        self.size
    }
}
