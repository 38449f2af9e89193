//! WAL segment objects: `header | body (records) | body_crc u32`.

use bytes::Bytes;

use super::record::{decode_record, WalRecord};
use crate::codec::{u32_at, Reader};
use crate::error::{FormatError, Result};
use crate::key::SeqNo;

const WHAT: &str = "wal segment";

/// Magic at the start of every WAL segment.
pub const WAL_MAGIC: [u8; 8] = *b"SILTWAL\0";
/// WAL format version written by this crate. Version 2 added expiring puts
/// ([`crate::ValueKind::PutExpiring`]); version 1 segments (which never hold one) are read.
pub const WAL_FORMAT_VERSION: u16 = 2;
/// Oldest WAL format version this crate reads.
pub const WAL_MIN_READ_VERSION: u16 = 1;
/// magic 8 | version 2 | `writer_epoch` 8 | `first_seq` 8 | `last_seq` 8 |
/// `record_count` 4 | `body_len` 8 | `header_crc` 4.
pub const WAL_HEADER_SIZE: usize = 8 + 2 + 8 + 8 + 8 + 4 + 8 + 4;
/// `body_crc` u32.
pub const WAL_TRAILER_SIZE: usize = 4;

/// The fixed-size header of a WAL segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalSegmentHeader {
    /// Epoch of the writer that produced the segment (for fencing).
    pub writer_epoch: u64,
    /// Seq of the first op in the segment.
    pub first_seq: SeqNo,
    /// Seq of the last op in the segment.
    pub last_seq: SeqNo,
    /// Number of records.
    pub record_count: u32,
    /// Length of the body (all records) in bytes.
    pub body_len: u64,
}

/// A fully decoded segment.
#[derive(Clone, Debug)]
pub struct WalSegment {
    /// The header.
    pub header: WalSegmentHeader,
    /// The records, in order.
    pub records: Vec<WalRecord>,
}

/// Builds the segment object from a body made of `encode_record` outputs.
/// The `body_len` written is `body.len()`, whatever `header.body_len` says.
/// A segment without records (`record_count` 0, empty body) is a valid
/// fencing marker.
pub fn encode_segment(header: &WalSegmentHeader, body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(WAL_HEADER_SIZE + body.len() + WAL_TRAILER_SIZE);
    out.extend_from_slice(&WAL_MAGIC);
    out.extend_from_slice(&WAL_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&header.writer_epoch.to_le_bytes());
    out.extend_from_slice(&header.first_seq.to_le_bytes());
    out.extend_from_slice(&header.last_seq.to_le_bytes());
    out.extend_from_slice(&header.record_count.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    Bytes::from(out)
}

/// Decodes and verifies the header; needs only the first
/// [`WAL_HEADER_SIZE`] bytes (extra bytes are ignored).
pub fn decode_segment_header(bytes: &[u8]) -> Result<WalSegmentHeader> {
    let mut r = Reader::new(bytes, WHAT);
    if r.take(8)? != WAL_MAGIC {
        return Err(FormatError::corrupt(WHAT, "bad magic"));
    }
    let version = r.u16()?;
    if !(WAL_MIN_READ_VERSION..=WAL_FORMAT_VERSION).contains(&version) {
        return Err(FormatError::UnsupportedVersion {
            what: "wal",
            version,
        });
    }
    let header = WalSegmentHeader {
        writer_epoch: r.u64()?,
        first_seq: r.u64()?,
        last_seq: r.u64()?,
        record_count: r.u32()?,
        body_len: r.u64()?,
    };
    let crc_at = r.pos();
    if r.u32()? != crc32c::crc32c(&bytes[..crc_at]) {
        return Err(FormatError::corrupt(WHAT, "header checksum mismatch"));
    }
    Ok(header)
}

/// Decodes and fully validates a segment: header CRC, exact object length,
/// body CRC, every record's CRC and lengths, the record count, and that
/// record seqs are increasing, non-overlapping and span exactly
/// `first_seq..=last_seq` (no constraint on those for segments without ops).
#[expect(
    clippy::needless_pass_by_value,
    reason = "the caller hands over the object's bytes, as to the other decoders"
)]
pub fn decode_segment(bytes: Bytes) -> Result<WalSegment> {
    let header = decode_segment_header(&bytes)?;
    let expected_len =
        (WAL_HEADER_SIZE as u64 + WAL_TRAILER_SIZE as u64).checked_add(header.body_len);
    if expected_len != Some(bytes.len() as u64) {
        return Err(FormatError::corrupt(
            WHAT,
            format!(
                "object is {} bytes, header declares a {}-byte body",
                bytes.len(),
                header.body_len
            ),
        ));
    }
    let body_end = bytes.len() - WAL_TRAILER_SIZE;
    let stored = u32_at(&bytes, body_end).unwrap_or_default();
    if stored != crc32c::crc32c(&bytes[WAL_HEADER_SIZE..body_end]) {
        return Err(FormatError::corrupt(WHAT, "body checksum mismatch"));
    }
    let body = bytes.slice(WAL_HEADER_SIZE..body_end);
    let mut records = Vec::with_capacity((header.record_count as usize).min(body.len() / 20));
    let mut pos = 0;
    let mut next_seq = header.first_seq;
    let mut op_seqs: Option<(SeqNo, SeqNo)> = None;
    while pos < body.len() {
        let (rec, end) = decode_record(&body, pos)?;
        let rec_end = rec.first_seq.checked_add(rec.ops.len() as u64);
        match rec_end {
            Some(rec_end) if rec.first_seq >= next_seq => {
                if !rec.ops.is_empty() {
                    let first = op_seqs.map_or(rec.first_seq, |(f, _)| f);
                    op_seqs = Some((first, rec_end - 1));
                }
                next_seq = rec_end;
            }
            _ => {
                return Err(FormatError::corrupt(
                    WHAT,
                    format!("record at {pos} has seq {} out of order", rec.first_seq),
                ))
            }
        }
        records.push(rec);
        pos = end;
    }
    if records.len() as u64 != u64::from(header.record_count) {
        return Err(FormatError::corrupt(
            WHAT,
            format!(
                "{} records, header says {}",
                records.len(),
                header.record_count
            ),
        ));
    }
    if let Some((first, last)) = op_seqs {
        if first != header.first_seq || last != header.last_seq {
            return Err(FormatError::corrupt(
                WHAT,
                format!(
                    "ops span seqs {first}..={last}, header says {}..={}",
                    header.first_seq, header.last_seq
                ),
            ));
        }
    }
    Ok(WalSegment { header, records })
}
