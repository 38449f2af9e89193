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
    /// A value with an expiry time: the stored value is [`EXPIRY_BYTES`] of expiry (Unix
    /// milliseconds, little-endian) followed by the user's value (see [`encode_expiring`]).
    /// Written since WAL format 2, SST format 2 and local-log format 2.
    PutExpiring = 2,
}

/// Bytes of the expiry time in front of a [`ValueKind::PutExpiring`] value.
pub const EXPIRY_BYTES: usize = 8;

impl ValueKind {
    /// Whether an entry of this kind holds a value (Put or `PutExpiring`).
    pub fn is_put(self) -> bool {
        !matches!(self, ValueKind::Delete)
    }

    /// Checks a decoded entry's value against its kind: a Delete stores no value, a
    /// `PutExpiring` at least its expiry. `what` names the structure in the error.
    ///
    /// # Errors
    /// [`FormatError::Corrupt`] when the value's length cannot be that of its kind.
    pub fn check_value_len(self, value_len: usize, what: &'static str) -> Result<(), FormatError> {
        match self {
            ValueKind::Delete if value_len != 0 => Err(FormatError::corrupt(
                what,
                format!("delete with a {value_len}-byte value"),
            )),
            ValueKind::PutExpiring if value_len < EXPIRY_BYTES => Err(FormatError::corrupt(
                what,
                format!("expiring put with a {value_len}-byte value (shorter than its expiry)"),
            )),
            _ => Ok(()),
        }
    }
}

/// The stored value of a [`ValueKind::PutExpiring`] entry: `expires_at` (Unix milliseconds)
/// then `value`.
pub fn encode_expiring(expires_at: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(EXPIRY_BYTES + value.len());
    out.extend_from_slice(&expires_at.to_le_bytes());
    out.extend_from_slice(value);
    out
}

/// Splits the stored value of a [`ValueKind::PutExpiring`] entry into its expiry (Unix
/// milliseconds) and the user's value (a slice of `stored`); `None` if it is too short
/// (decoders reject such entries, see [`ValueKind::check_value_len`]).
pub fn split_expiring(stored: &Bytes) -> Option<(u64, Bytes)> {
    let head: [u8; EXPIRY_BYTES] = stored.get(..EXPIRY_BYTES)?.try_into().ok()?;
    Some((u64::from_le_bytes(head), stored.slice(EXPIRY_BYTES..)))
}

impl TryFrom<u8> for ValueKind {
    type Error = FormatError;

    fn try_from(b: u8) -> Result<Self, FormatError> {
        match b {
            0 => Ok(ValueKind::Delete),
            1 => Ok(ValueKind::Put),
            2 => Ok(ValueKind::PutExpiring),
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
    /// The value as stored: empty for [`ValueKind::Delete`], expiry then value for
    /// [`ValueKind::PutExpiring`].
    pub value: Bytes,
}

impl Entry {
    /// The expiry of a [`ValueKind::PutExpiring`] entry (Unix milliseconds).
    pub fn expires_at(&self) -> Option<u64> {
        match self.kind {
            ValueKind::PutExpiring => split_expiring(&self.value).map(|(at, _)| at),
            _ => None,
        }
    }
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
        assert_eq!(ValueKind::try_from(2).unwrap(), ValueKind::PutExpiring);
        assert!(ValueKind::try_from(3).unwrap_err().is_corrupt());
        assert_eq!(ValueKind::Put as u8, 1);
    }

    #[test]
    fn expiring_values() {
        let stored = Bytes::from(encode_expiring(0x0102_0304_0506_0708, b"v"));
        assert_eq!(stored.len(), EXPIRY_BYTES + 1);
        assert_eq!(
            split_expiring(&stored),
            Some((0x0102_0304_0506_0708, Bytes::from_static(b"v")))
        );
        assert_eq!(split_expiring(&Bytes::from_static(&[1; 7])), None);
        let e = Entry {
            key: Bytes::from_static(b"k"),
            seq: 1,
            kind: ValueKind::PutExpiring,
            value: stored,
        };
        assert_eq!(e.expires_at(), Some(0x0102_0304_0506_0708));
        assert!(ValueKind::PutExpiring.check_value_len(7, "t").is_err());
        assert!(ValueKind::PutExpiring.check_value_len(8, "t").is_ok());
        assert!(ValueKind::Delete.check_value_len(1, "t").is_err());
    }
}
