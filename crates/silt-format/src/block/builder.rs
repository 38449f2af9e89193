//! Building raw data blocks.

use super::ENTRY_HEADER_SIZE;
use crate::codec::len_u32;
use crate::key::{SeqNo, ValueKind};

/// Accumulates entries (in internal order) into one raw block.
#[derive(Debug)]
pub struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    restart_interval: usize,
    since_restart: usize,
    last_key: Vec<u8>,
    count: usize,
}

impl BlockBuilder {
    /// A builder that stores a full key every `restart_interval` entries
    /// (values below 1 are treated as 1).
    pub fn new(restart_interval: usize) -> Self {
        BlockBuilder {
            buf: Vec::new(),
            restarts: Vec::new(),
            restart_interval: restart_interval.max(1),
            since_restart: 0,
            last_key: Vec::new(),
            count: 0,
        }
    }

    /// Appends an entry. Entries must be added in internal order; the caller
    /// (`SstBuilder`) guarantees it. The value of a `Delete` is not stored.
    ///
    /// # Panics
    /// If the block grows beyond `u32::MAX` bytes or a key/value is longer
    /// than `u32::MAX` (the SST builder bounds sizes far below that).
    pub fn add(&mut self, key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) {
        let value = if kind == ValueKind::Delete {
            &[][..]
        } else {
            value
        };
        let shared = if self.count == 0 || self.since_restart >= self.restart_interval {
            self.restarts.push(len_u32(self.buf.len()));
            self.since_restart = 0;
            0
        } else {
            self.last_key
                .iter()
                .zip(key)
                .take_while(|(a, b)| a == b)
                .count()
        };
        let suffix = &key[shared..];
        self.buf
            .reserve(ENTRY_HEADER_SIZE + suffix.len() + value.len());
        self.buf.extend_from_slice(&len_u32(shared).to_le_bytes());
        self.buf
            .extend_from_slice(&len_u32(suffix.len()).to_le_bytes());
        self.buf
            .extend_from_slice(&len_u32(value.len()).to_le_bytes());
        self.buf.extend_from_slice(&seq.to_le_bytes());
        self.buf.push(kind as u8);
        self.buf.extend_from_slice(suffix);
        self.buf.extend_from_slice(value);
        self.last_key.truncate(shared);
        self.last_key.extend_from_slice(suffix);
        self.since_restart += 1;
        self.count += 1;
    }

    /// Size of the raw block if it were finished now.
    pub fn estimated_size(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    /// True if no entry has been added since creation or the last `finish`.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Number of entries added since creation or the last `finish`.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Returns the raw (uncompressed, unframed) block and resets the builder.
    /// An empty builder yields a valid empty block (`num_restarts == 0`).
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        out.reserve(4 * self.restarts.len() + 4);
        for r in &self.restarts {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&len_u32(self.restarts.len()).to_le_bytes());
        self.restarts.clear();
        self.since_restart = 0;
        self.last_key.clear();
        self.count = 0;
        out
    }
}
