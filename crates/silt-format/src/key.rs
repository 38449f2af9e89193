//! Internal keys: a user key plus a sequence number and a value kind.

use std::cmp::Ordering;

use bytes::Bytes;

use crate::error::FormatError;

/// Sequence number: a monotonically increasing version stamp per write.
pub type SeqNo = u64;

/// Whether an entry stores a value or deletes the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ValueKind {
    /// A tombstone; the entry's value is empty.
    Delete = 0,
    /// A value.
    Put = 1,
}

impl TryFrom<u8> for ValueKind {
    type Error = FormatError;

    fn try_from(b: u8) -> Result<Self, FormatError> {
        match b {
            0 => Ok(ValueKind::Delete),
            1 => Ok(ValueKind::Put),
            other => Err(FormatError::corrupt(
                "value kind",
                format!("unknown kind byte {other}"),
            )),
        }
    }
}

/// One versioned key/value record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// User key.
    pub key: Bytes,
    /// Sequence number of the write.
    pub seq: SeqNo,
    /// Put or Delete.
    pub kind: ValueKind,
    /// The value; empty for [`ValueKind::Delete`].
    pub value: Bytes,
}

/// Internal order: user key ascending (bytewise), then sequence number
/// descending (newest first).
pub fn cmp_internal(a_key: &[u8], a_seq: SeqNo, b_key: &[u8], b_seq: SeqNo) -> Ordering {
    a_key.cmp(b_key).then_with(|| b_seq.cmp(&a_seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_order() {
        assert_eq!(cmp_internal(b"a", 1, b"b", 9), Ordering::Less);
        assert_eq!(cmp_internal(b"a", 9, b"a", 1), Ordering::Less);
        assert_eq!(cmp_internal(b"a", 1, b"a", 9), Ordering::Greater);
        assert_eq!(cmp_internal(b"a", 5, b"a", 5), Ordering::Equal);
        assert_eq!(cmp_internal(b"", 0, b"\0", 100), Ordering::Less);
    }

    #[test]
    fn kind_bytes() {
        assert_eq!(ValueKind::try_from(0).unwrap(), ValueKind::Delete);
        assert_eq!(ValueKind::try_from(1).unwrap(), ValueKind::Put);
        assert!(ValueKind::try_from(2).unwrap_err().is_corrupt());
        assert_eq!(ValueKind::Put as u8, 1);
    }
}
