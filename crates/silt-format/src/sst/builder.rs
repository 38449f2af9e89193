//! Writing SST files in memory.

use std::cmp::Ordering;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::footer::{BlockHandle, Footer, SST_FORMAT_VERSION};
use super::props::{encode_props, SstProps};
use crate::block::{encode_block_frame, BlockBuilder, ENTRY_HEADER_SIZE, MAX_BLOCK_SIZE};
use crate::bloom::BloomBuilder;
use crate::compress::Compression;
use crate::error::{FormatError, Result};
use crate::key::{cmp_internal, SeqNo, ValueKind};

/// Longest user key accepted by [`SstBuilder::add`] (1 MiB).
pub const MAX_KEY_LEN: usize = 1 << 20;
/// Longest value accepted by [`SstBuilder::add`] (64 MiB).
pub const MAX_VALUE_LEN: usize = 64 << 20;
/// Largest target data block size ([`SstOptions::block_bytes`], 16 MiB): the builder clamps
/// to it, and the engine's settings refuse more, so every block (the target plus the entry
/// that crosses it) stays far below [`MAX_BLOCK_SIZE`].
pub const MAX_TARGET_BLOCK_BYTES: usize = 16 << 20;
/// Smallest target data block size the engine's settings accept (256 B).
pub const MIN_TARGET_BLOCK_BYTES: usize = 256;
const MAX_TARGET_BLOCK: usize = MAX_TARGET_BLOCK_BYTES;
const _: () = assert!(MAX_TARGET_BLOCK_BYTES <= MAX_BLOCK_SIZE / 4);
/// Restart interval of the index block. `IndexBlock::decode` relies on it to bound the
/// decoded key bytes (at most this many times the raw index size).
pub(super) const INDEX_RESTART_INTERVAL: usize = 16;

/// Tuning knobs of [`SstBuilder`]. Missing JSON fields take their defaults.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SstOptions {
    /// Target uncompressed data block size (default 4096); a block is closed
    /// once it reaches this size.
    pub block_bytes: usize,
    /// Full key every this many entries (default 16).
    pub restart_interval: usize,
    /// Compression of data and index blocks (default lz4).
    pub compression: Compression,
    /// Bloom filter budget (default 10; 0 disables the filter).
    pub bloom_bits_per_key: u32,
}

impl Default for SstOptions {
    fn default() -> Self {
        SstOptions {
            block_bytes: 4096,
            restart_interval: 16,
            compression: Compression::Lz4,
            bloom_bits_per_key: 10,
        }
    }
}

/// Builds a whole SST in memory from entries given in internal order.
#[derive(Debug)]
pub struct SstBuilder {
    opts: SstOptions,
    block_target: usize,
    out: Vec<u8>,
    block: BlockBuilder,
    index: BlockBuilder,
    bloom: BloomBuilder,
    props: SstProps,
    last_key: Vec<u8>,
    last_seq: SeqNo,
}

impl SstBuilder {
    /// A new, empty builder.
    pub fn new(opts: SstOptions) -> Self {
        SstBuilder {
            block_target: opts.block_bytes.clamp(1, MAX_TARGET_BLOCK),
            out: Vec::new(),
            block: BlockBuilder::new(opts.restart_interval),
            index: BlockBuilder::new(INDEX_RESTART_INTERVAL),
            bloom: BloomBuilder::new(opts.bloom_bits_per_key),
            props: SstProps::default(),
            last_key: Vec::new(),
            last_seq: 0,
            opts,
        }
    }

    /// Adds an entry. Fails with `InvalidInput` if `(key, seq)` is not
    /// strictly greater than the previous entry in internal order, if the key
    /// or value exceeds [`MAX_KEY_LEN`]/[`MAX_VALUE_LEN`], or if the index or
    /// filter would outgrow [`MAX_BLOCK_SIZE`] (finish this SST and start
    /// another). The value of a `Delete` is ignored.
    pub fn add(&mut self, key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) -> Result<()> {
        let value = if kind == ValueKind::Delete {
            &[][..]
        } else {
            value
        };
        if key.len() > MAX_KEY_LEN || value.len() > MAX_VALUE_LEN {
            return Err(FormatError::InvalidInput(format!(
                "key of {} bytes or value of {} bytes exceeds the limits ({MAX_KEY_LEN}, {MAX_VALUE_LEN})",
                key.len(),
                value.len()
            )));
        }
        let first = self.props.entries == 0;
        if !first && cmp_internal(key, seq, &self.last_key, self.last_seq) != Ordering::Greater {
            return Err(FormatError::InvalidInput(format!(
                "entry ({:?}, {seq}) is not after ({:?}, {}) in internal order",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(&self.last_key),
                self.last_seq
            )));
        }
        let index_growth = ENTRY_HEADER_SIZE + key.len() + BlockHandle::ENCODED_SIZE + 4;
        let bloom_growth = self.opts.bloom_bits_per_key as usize / 8 + 1;
        if self.index.estimated_size() + index_growth > MAX_BLOCK_SIZE
            || self.bloom.estimated_size() + bloom_growth > MAX_BLOCK_SIZE
        {
            return Err(FormatError::InvalidInput(
                "SST metadata would exceed the block size limit".into(),
            ));
        }
        if first || key != self.last_key.as_slice() {
            self.bloom.add_key(key);
        }
        self.block.add(key, seq, kind, value);

        let p = &mut self.props;
        if first {
            p.smallest_key = key.to_vec();
            p.min_seq = seq;
            p.max_seq = seq;
        }
        p.entries += 1;
        p.tombstones += u64::from(kind == ValueKind::Delete);
        p.min_seq = p.min_seq.min(seq);
        p.max_seq = p.max_seq.max(seq);
        p.raw_key_bytes += key.len() as u64;
        p.raw_value_bytes += value.len() as u64;
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.last_seq = seq;

        if self.block.estimated_size() >= self.block_target {
            self.flush_block();
        }
        Ok(())
    }

    /// Approximate size of the finished file (uncompressed estimate for the
    /// open block).
    pub fn estimated_size(&self) -> usize {
        self.out.len()
            + self.block.estimated_size()
            + self.index.estimated_size()
            + self.bloom.estimated_size()
            + 3 * crate::block::BLOCK_TRAILER_SIZE
            + 66
            + 2 * self.last_key.len()
            + Footer::SIZE
    }

    /// True if no entry has been added.
    pub fn is_empty(&self) -> bool {
        self.props.entries == 0
    }

    fn flush_block(&mut self) {
        if self.block.is_empty() {
            return;
        }
        let raw = self.block.finish();
        let handle = self.append_frame(&raw, self.opts.compression);
        self.index.add(
            &self.last_key,
            self.last_seq,
            ValueKind::Put,
            &handle.encode(),
        );
        self.props.data_blocks += 1;
    }

    fn append_frame(&mut self, raw: &[u8], compression: Compression) -> BlockHandle {
        let frame = encode_block_frame(raw, compression);
        let handle = BlockHandle {
            offset: self.out.len() as u64,
            len: frame.len() as u64,
        };
        self.out.extend_from_slice(&frame);
        handle
    }

    /// Writes the filter, props, index and footer and returns the whole file
    /// with its props. Fails with `InvalidInput` if no entry was added.
    pub fn finish(mut self) -> Result<(Bytes, SstProps)> {
        if self.is_empty() {
            return Err(FormatError::InvalidInput(
                "cannot finish an empty SST".into(),
            ));
        }
        self.flush_block();
        let filter = self.append_frame(&self.bloom.finish(), Compression::None);
        self.props.largest_key = std::mem::take(&mut self.last_key);
        let props = self.append_frame(&encode_props(&self.props), Compression::None);
        let index_raw = self.index.finish();
        let index = self.append_frame(&index_raw, self.opts.compression);
        let footer = Footer {
            filter,
            props,
            index,
            format_version: SST_FORMAT_VERSION,
        };
        self.out.extend_from_slice(&footer.encode());
        Ok((Bytes::from(self.out), self.props))
    }
}
