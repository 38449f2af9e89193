//! The frame that stores a block inside an SST:
//! `payload | uncompressed_len u32 | compression u8 | crc32c u32`,
//! the CRC covering every byte before it.

use bytes::Bytes;

use crate::codec::{len_u32, u32_at};
use crate::compress::{Compression, ZSTD_LEVEL};
use crate::error::{FormatError, Result};

/// Bytes after the payload: `uncompressed_len` u32, compression u8, crc32c u32.
pub const BLOCK_TRAILER_SIZE: usize = 9;

/// Largest uncompressed block a reader accepts (128 MiB).
pub const MAX_BLOCK_SIZE: usize = 128 << 20;

const WHAT: &str = "block frame";

/// Largest expansion of a zstd payload: a block regenerates at most 128 KiB
/// (`Block_Maximum_Size`) and an RLE block, the densest, takes 4 bytes.
const ZSTD_MAX_RATIO: usize = (128 << 10) / 4;

/// Frames a raw block. If `compression` does not make the payload strictly
/// smaller, the block is stored uncompressed (compression byte 0).
///
/// `raw` must not exceed [`MAX_BLOCK_SIZE`], or readers will reject the frame.
pub fn encode_block_frame(raw: &[u8], compression: Compression) -> Vec<u8> {
    let compressed = match compression {
        Compression::None => None,
        Compression::Lz4 => Some(lz4_flex::block::compress(raw)),
        Compression::Zstd => zstd::bulk::compress(raw, ZSTD_LEVEL).ok(),
    };
    let (payload, used) = match compressed {
        Some(c) if c.len() < raw.len() => (c, compression),
        _ => (raw.to_vec(), Compression::None),
    };
    let mut out = payload;
    out.reserve(BLOCK_TRAILER_SIZE);
    out.extend_from_slice(&len_u32(raw.len()).to_le_bytes());
    out.push(used.to_byte());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Verifies the frame's CRC and decompresses it, returning the raw block in
/// a freshly allocated `Bytes` of exactly its size.
pub fn decode_block_frame(frame: &[u8]) -> Result<Bytes> {
    let len = frame.len();
    if len < BLOCK_TRAILER_SIZE {
        return Err(FormatError::corrupt(
            WHAT,
            format!("truncated: {len} bytes, trailer needs {BLOCK_TRAILER_SIZE}"),
        ));
    }
    let crc_at = len - 4;
    let stored = u32_at(frame, crc_at).unwrap_or_default();
    let actual = crc32c::crc32c(&frame[..crc_at]);
    if stored != actual {
        return Err(FormatError::corrupt(
            WHAT,
            format!("checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"),
        ));
    }
    let ulen = u32_at(frame, len - BLOCK_TRAILER_SIZE).unwrap_or_default() as usize;
    let compression = Compression::from_byte(frame[len - 5])?;
    let payload = &frame[..len - BLOCK_TRAILER_SIZE];
    if ulen > MAX_BLOCK_SIZE {
        return Err(FormatError::corrupt(
            WHAT,
            format!("uncompressed length {ulen} exceeds limit {MAX_BLOCK_SIZE}"),
        ));
    }
    let out = match compression {
        Compression::None => {
            if payload.len() != ulen {
                return Err(FormatError::corrupt(
                    WHAT,
                    format!("stored length {} != declared {ulen}", payload.len()),
                ));
            }
            return Ok(Bytes::copy_from_slice(payload));
        }
        Compression::Lz4 => {
            // LZ4 cannot expand data by more than ~255x; reject absurd claims
            // before allocating.
            if ulen > payload.len().saturating_mul(255).saturating_add(16) {
                return Err(FormatError::corrupt(
                    WHAT,
                    format!("lz4 length {ulen} impossible for {} bytes", payload.len()),
                ));
            }
            let mut out = vec![0u8; ulen];
            let n = lz4_flex::block::decompress_into(payload, &mut out)
                .map_err(|e| FormatError::corrupt(WHAT, format!("lz4: {e}")))?;
            out.truncate(n);
            out
        }
        Compression::Zstd => {
            // Same idea for zstd: every block regenerates at most 128 KiB and takes at
            // least 4 bytes (an RLE block), so no payload expands more than 32768x.
            if ulen > payload.len().saturating_mul(ZSTD_MAX_RATIO) {
                return Err(FormatError::corrupt(
                    WHAT,
                    format!("zstd length {ulen} impossible for {} bytes", payload.len()),
                ));
            }
            // One-shot decompression into exactly `ulen` bytes: output beyond that is an
            // error, and unlike the streaming decoder it allocates no window buffer (whose
            // size a damaged frame header could set to 128 MiB).
            let mut out = Vec::with_capacity(ulen);
            zstd::bulk::Decompressor::new()
                .and_then(|mut d| d.decompress_to_buffer(payload, &mut out))
                .map_err(|e| FormatError::corrupt(WHAT, format!("zstd: {e}")))?;
            out
        }
    };
    if out.len() != ulen {
        return Err(FormatError::corrupt(
            WHAT,
            format!("decompressed {} bytes, declared {ulen}", out.len()),
        ));
    }
    Ok(Bytes::from(out.into_boxed_slice()))
}
