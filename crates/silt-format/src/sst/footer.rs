//! Block handles and the fixed-size SST footer.

use std::ops::Range;

use crate::block::BLOCK_TRAILER_SIZE;
use crate::codec::Reader;
use crate::error::{FormatError, Result};

const WHAT: &str = "sst footer";

/// Magic bytes near the end of every SST.
pub const SST_MAGIC: [u8; 8] = *b"SILTSST\0";

/// The SST format version written by this crate. Version 2 added expiring puts
/// ([`crate::ValueKind::PutExpiring`]) to data blocks; version 1 SSTs (which never hold one)
/// are read.
pub const SST_FORMAT_VERSION: u16 = 2;
/// Oldest SST format version this crate reads.
pub const SST_MIN_READ_VERSION: u16 = 1;

/// Location of a frame inside an SST.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BlockHandle {
    /// Byte offset of the frame.
    pub offset: u64,
    /// Frame length including its trailer.
    pub len: u64,
}

impl BlockHandle {
    /// Encoded size: offset u64 | len u64.
    pub const ENCODED_SIZE: usize = 16;

    /// `offset..offset + len` (saturating).
    pub fn range(&self) -> Range<u64> {
        self.offset..self.offset.saturating_add(self.len)
    }

    /// The 16-byte little-endian encoding.
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.offset.to_le_bytes());
        out[8..].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<BlockHandle> {
        Ok(BlockHandle {
            offset: r.u64()?,
            len: r.u64()?,
        })
    }
}

/// The fixed-size SST footer:
/// `filter | props | index (handles) | format_version u16 | magic | crc32c u32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    /// The bloom filter frame.
    pub filter: BlockHandle,
    /// The props frame.
    pub props: BlockHandle,
    /// The index frame.
    pub index: BlockHandle,
    /// SST format version.
    pub format_version: u16,
}

impl Footer {
    /// Encoded size: three 16-byte handles, version (2), magic (8), crc (4).
    pub const SIZE: usize = 3 * BlockHandle::ENCODED_SIZE + 2 + 8 + 4;

    /// Encodes the footer.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0u8; Self::SIZE];
        for (i, h) in [self.filter, self.props, self.index].iter().enumerate() {
            out[16 * i..16 * (i + 1)].copy_from_slice(&h.encode());
        }
        out[48..50].copy_from_slice(&self.format_version.to_le_bytes());
        out[50..58].copy_from_slice(&SST_MAGIC);
        let crc = crc32c::crc32c(&out[..58]);
        out[58..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes the footer from `tail` (the last `SIZE` bytes of the file; a
    /// longer slice is accepted and its last `SIZE` bytes are used) and checks
    /// that the metadata frames are contiguous, in order, and end exactly at
    /// `file_len - SIZE`.
    pub fn decode(tail: &[u8], file_len: u64) -> Result<Footer> {
        let Some(start) = tail.len().checked_sub(Self::SIZE) else {
            return Err(FormatError::corrupt(
                WHAT,
                format!("truncated: {} bytes, need {}", tail.len(), Self::SIZE),
            ));
        };
        let buf = &tail[start..];
        let mut r = Reader::new(buf, WHAT);
        let filter = BlockHandle::read(&mut r)?;
        let props = BlockHandle::read(&mut r)?;
        let index = BlockHandle::read(&mut r)?;
        let format_version = r.u16()?;
        if r.take(8)? != SST_MAGIC {
            return Err(FormatError::corrupt(WHAT, "bad magic"));
        }
        if !(SST_MIN_READ_VERSION..=SST_FORMAT_VERSION).contains(&format_version) {
            return Err(FormatError::UnsupportedVersion {
                what: "sst",
                version: format_version,
            });
        }
        let stored = r.u32()?;
        let actual = crc32c::crc32c(&buf[..58]);
        if stored != actual {
            return Err(FormatError::corrupt(WHAT, "checksum mismatch"));
        }
        let Some(body_end) = file_len.checked_sub(Self::SIZE as u64) else {
            return Err(FormatError::corrupt(WHAT, "file shorter than footer"));
        };
        let footer = Footer {
            filter,
            props,
            index,
            format_version,
        };
        let mut expect = filter.offset;
        for h in [filter, props, index] {
            let end = h.offset.checked_add(h.len);
            if h.offset != expect || h.len < BLOCK_TRAILER_SIZE as u64 || end.is_none() {
                return Err(FormatError::corrupt(WHAT, "metadata handles out of place"));
            }
            expect = end.unwrap_or_default();
        }
        if expect != body_end {
            return Err(FormatError::corrupt(
                WHAT,
                format!("metadata ends at {expect}, footer starts at {body_end}"),
            ));
        }
        Ok(footer)
    }

    /// Offset where the metadata region (filter, props, index) starts.
    pub fn meta_start(&self) -> u64 {
        self.filter.offset
    }
}
