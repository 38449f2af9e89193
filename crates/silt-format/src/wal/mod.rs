//! Write-ahead log segments. A remote WAL segment is one object:
//! `header | record* | trailer`, where each record is one atomic write batch.

mod record;
mod segment;
#[cfg(test)]
mod tests;

pub(crate) use record::{decode_ops, encode_ops};
pub use record::{
    encode_record, record_encoded_len, record_fits, WalOp, WalRecord, MAX_RECORD_BYTES,
    MAX_RECORD_OPS, OP_HEADER_SIZE, RECORD_OVERHEAD,
};
pub use segment::{
    decode_segment, decode_segment_header, encode_segment, WalSegment, WalSegmentHeader,
    WAL_FORMAT_VERSION, WAL_HEADER_SIZE, WAL_MAGIC, WAL_MIN_READ_VERSION, WAL_TRAILER_SIZE,
};
