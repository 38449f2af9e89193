//! WAL records: `len u32 | first_seq u64 | count u32 | op* | crc32c u32`.
//! `len` counts the bytes after itself up to and including the CRC; the CRC
//! covers `first_seq` through the last op.
//! Op: `kind u8 | key_len u32 | value_len u32 | key | value`.

use bytes::Bytes;

use crate::codec::{len_u32, u32_at, Reader};
use crate::error::{FormatError, Result};
use crate::key::{SeqNo, ValueKind};

const WHAT: &str = "wal record";

/// Bytes of a record besides its ops: len, `first_seq`, count, crc.
pub const RECORD_OVERHEAD: usize = 4 + 8 + 4 + 4;
/// Fixed bytes per op: kind, `key_len`, `value_len`.
pub const OP_HEADER_SIZE: usize = 1 + 4 + 4;

/// One write batch; op `i` has seq `first_seq + i`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalRecord {
    /// Seq of the first op.
    pub first_seq: SeqNo,
    /// The ops, in order.
    pub ops: Vec<WalOp>,
}

/// One put or delete inside a [`WalRecord`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalOp {
    /// Put or Delete.
    pub kind: ValueKind,
    /// User key.
    pub key: Bytes,
    /// Value (empty for Delete).
    pub value: Bytes,
}

/// Largest record [`encode_record`] can frame, as counted by [`record_encoded_len`]: the
/// `len` field (a `u32`) counts the bytes after itself.
pub const MAX_RECORD_BYTES: u64 = u32::MAX as u64 + 4;
/// Most ops one record can hold (`count` is a `u32`).
pub const MAX_RECORD_OPS: u64 = u32::MAX as u64;

/// Encoded size of a record whose ops have the given `(key_len, value_len)`
/// (pass `value_len` 0 for deletes: their values are not stored). Saturates at
/// `usize::MAX` instead of overflowing, so it can check sizes before anything is encoded
/// (e.g. many ops sharing one large value buffer).
pub fn record_encoded_len(ops_key_value_lens: impl IntoIterator<Item = (usize, usize)>) -> usize {
    ops_key_value_lens
        .into_iter()
        .fold(RECORD_OVERHEAD, |total, (k, v)| {
            total.saturating_add(OP_HEADER_SIZE.saturating_add(k).saturating_add(v))
        })
}

/// Whether a record of `encoded_len` bytes ([`record_encoded_len`]) holding `ops` ops can
/// be framed: at most [`MAX_RECORD_BYTES`] and [`MAX_RECORD_OPS`].
pub fn record_fits(encoded_len: usize, ops: usize) -> bool {
    encoded_len as u64 <= MAX_RECORD_BYTES && ops as u64 <= MAX_RECORD_OPS
}

/// Appends one framed record to `buf`; returns the number of bytes appended.
/// Values of `Delete` ops are not stored.
///
/// # Panics
/// If the record would exceed `u32::MAX` bytes or hold more than `u32::MAX` ops: check
/// [`record_fits`] first.
pub fn encode_record<'a>(
    buf: &mut Vec<u8>,
    first_seq: SeqNo,
    ops: impl IntoIterator<Item = (ValueKind, &'a [u8], &'a [u8])>,
) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    let body = buf.len();
    buf.extend_from_slice(&first_seq.to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    let count = encode_ops(buf, ops);
    buf[body + 8..body + 12].copy_from_slice(&len_u32(count).to_le_bytes());
    let crc = crc32c::crc32c(&buf[body..]);
    buf.extend_from_slice(&crc.to_le_bytes());
    let len = len_u32(buf.len() - body);
    buf[start..body].copy_from_slice(&len.to_le_bytes());
    buf.len() - start
}

/// Decodes the record starting at `pos` in `body`; returns it and the offset
/// just past it. Keys and values are slices of `body`.
pub(crate) fn decode_record(body: &Bytes, pos: usize) -> Result<(WalRecord, usize)> {
    let len = u32_at(body, pos)
        .ok_or_else(|| FormatError::corrupt(WHAT, format!("truncated length at {pos}")))?
        as usize;
    let start = pos + 4;
    let end = start
        .checked_add(len)
        .filter(|&e| e <= body.len())
        .ok_or_else(|| {
            FormatError::corrupt(WHAT, format!("length {len} at {pos} runs past the body"))
        })?;
    if len < RECORD_OVERHEAD - 4 {
        return Err(FormatError::corrupt(
            WHAT,
            format!("length {len} too small"),
        ));
    }
    let crc_at = end - 4;
    let stored = u32_at(body, crc_at).unwrap_or_default();
    if stored != crc32c::crc32c(&body[start..crc_at]) {
        return Err(FormatError::corrupt(
            WHAT,
            format!("checksum mismatch at {pos}"),
        ));
    }
    let mut r = Reader::new(&body[start..crc_at], WHAT);
    let first_seq = r.u64()?;
    let count = r.u32()? as usize;
    let ops = decode_ops(&mut r, body, start, count, WHAT)?;
    r.finish()?;
    Ok((WalRecord { first_seq, ops }, end))
}

/// Appends the encoding of `ops` (`op*`, see the module docs) to `buf`; returns their
/// number. Values of `Delete` ops are not stored. Shared with the local log's records.
///
/// # Panics
/// If a key or value exceeds `u32::MAX` bytes.
pub(crate) fn encode_ops<'a>(
    buf: &mut Vec<u8>,
    ops: impl IntoIterator<Item = (ValueKind, &'a [u8], &'a [u8])>,
) -> usize {
    let mut count = 0usize;
    for (kind, key, value) in ops {
        let value = if kind == ValueKind::Delete {
            &[][..]
        } else {
            value
        };
        buf.push(kind as u8);
        buf.extend_from_slice(&len_u32(key.len()).to_le_bytes());
        buf.extend_from_slice(&len_u32(value.len()).to_le_bytes());
        buf.extend_from_slice(key);
        buf.extend_from_slice(value);
        count += 1;
    }
    count
}

/// Decodes `count` ops with `r`, which reads `buf[base..]`; keys and values are slices of
/// `buf`. Errors of its own are reported as `Corrupt` of `what` (the reader's own errors
/// name the reader's). Shared with the local log's records.
pub(crate) fn decode_ops(
    r: &mut Reader<'_>,
    buf: &Bytes,
    base: usize,
    count: usize,
    what: &'static str,
) -> Result<Vec<WalOp>> {
    let mut ops = Vec::with_capacity(count.min(r.remaining() / OP_HEADER_SIZE));
    for _ in 0..count {
        let kind = ValueKind::try_from(r.u8()?)?;
        let key_len = r.len32()?;
        let value_len = r.len32()?;
        let key_start = base + r.pos();
        r.take(key_len)?;
        r.take(value_len)?;
        if kind == ValueKind::Delete && value_len != 0 {
            return Err(FormatError::corrupt(what, "delete op with a value"));
        }
        kind.check_value_len(value_len, what)?;
        let value_start = key_start + key_len;
        ops.push(WalOp {
            kind,
            key: buf.slice(key_start..value_start),
            value: buf.slice(value_start..value_start + value_len),
        });
    }
    Ok(ops)
}
