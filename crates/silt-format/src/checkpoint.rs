//! Checkpoints and reader leases: one small JSON object per checkpoint,
//! `checkpoints/<name>.json` under the database root (see `docs/format.md`).
//!
//! A checkpoint pins one manifest and a sequence number: the database as it was at
//! that point. Garbage collection keeps everything a live checkpoint needs.

use serde::{Deserialize, Serialize};

use crate::error::{FormatError, Result};
use crate::key::SeqNo;

const WHAT: &str = "checkpoint";

/// Checkpoint format version written by this crate and the only one it reads.
pub const CHECKPOINT_FORMAT_VERSION: u16 = 1;

/// Longest checkpoint name, in bytes.
pub const MAX_CHECKPOINT_NAME: usize = 128;

/// Who holds a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointKind {
    /// Made by a user (`Db::create_checkpoint`); lives until deleted or expired.
    Named,
    /// A read-only handle's lease on the manifest it opened, renewed while it is open.
    Lease,
}

/// One checkpoint object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Always [`CHECKPOINT_FORMAT_VERSION`] when written by this crate.
    pub format_version: u16,
    /// The checkpoint's name (equal to its object name without `.json`).
    pub name: String,
    /// Named checkpoint or reader lease.
    pub kind: CheckpointKind,
    /// The manifest it pins.
    pub manifest_id: u64,
    /// Reads at the checkpoint see every sequence number `<=` this and nothing above.
    pub seq: SeqNo,
    /// When it was created, Unix milliseconds.
    pub created_at_ms: u64,
    /// When it stops protecting anything, Unix milliseconds; `None`: never (until deleted).
    pub expires_at_ms: Option<u64>,
}

impl Checkpoint {
    /// True when the checkpoint has expired at `now_ms` (Unix milliseconds).
    pub fn expired_at(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }
}

/// Check a checkpoint name: 1 to [`MAX_CHECKPOINT_NAME`] bytes of `A-Z a-z 0-9 . _ -`,
/// and neither `.` nor `..`.
///
/// # Errors
/// [`FormatError::InvalidInput`] saying what is wrong.
pub fn validate_checkpoint_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_CHECKPOINT_NAME {
        return Err(FormatError::InvalidInput(format!(
            "checkpoint name must be 1 to {MAX_CHECKPOINT_NAME} bytes, got {}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(FormatError::InvalidInput(format!(
            "checkpoint name {name:?} has {c:?}: only A-Z, a-z, 0-9, '.', '_' and '-' are allowed"
        )));
    }
    if name == "." || name == ".." {
        return Err(FormatError::InvalidInput(format!(
            "checkpoint name {name:?} is not allowed"
        )));
    }
    Ok(())
}

/// Encodes a checkpoint object (JSON).
///
/// # Panics
/// Never in practice: serializing this type to JSON cannot fail.
pub fn encode_checkpoint(c: &Checkpoint) -> Vec<u8> {
    serde_json::to_vec(c).expect("checkpoint serialization cannot fail")
}

/// Decodes and checks a checkpoint object: its JSON, its version and its name.
///
/// # Errors
/// [`FormatError::Corrupt`] for bad JSON, a missing or unknown field, or an invalid name;
/// [`FormatError::UnsupportedVersion`] for a version this crate does not read.
pub fn decode_checkpoint(bytes: &[u8]) -> Result<Checkpoint> {
    // The version first, so a future version with other fields says so.
    #[derive(Deserialize)]
    struct Version {
        format_version: u16,
    }
    let v: Version = serde_json::from_slice(bytes)
        .map_err(|e| FormatError::corrupt(WHAT, format!("json: {e}")))?;
    if v.format_version != CHECKPOINT_FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion {
            what: WHAT,
            version: v.format_version,
        });
    }
    let c: Checkpoint = serde_json::from_slice(bytes)
        .map_err(|e| FormatError::corrupt(WHAT, format!("json: {e}")))?;
    validate_checkpoint_name(&c.name).map_err(|e| FormatError::corrupt(WHAT, e.to_string()))?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            format_version: CHECKPOINT_FORMAT_VERSION,
            name: "nightly-2026.12.01".into(),
            kind: CheckpointKind::Named,
            manifest_id: 42,
            seq: 1234,
            created_at_ms: 1_700_000_000_000,
            expires_at_ms: Some(1_700_000_060_000),
        }
    }

    #[test]
    fn round_trip() {
        let c = sample();
        assert_eq!(decode_checkpoint(&encode_checkpoint(&c)).unwrap(), c);
        let lease = Checkpoint {
            kind: CheckpointKind::Lease,
            expires_at_ms: None,
            ..c
        };
        let text = String::from_utf8(encode_checkpoint(&lease)).unwrap();
        assert!(text.contains(r#""kind":"lease""#), "{text}");
        assert!(text.contains(r#""expires_at_ms":null"#), "{text}");
        assert_eq!(decode_checkpoint(text.as_bytes()).unwrap(), lease);
    }

    #[test]
    fn bad_bytes_are_typed_errors() {
        let good = encode_checkpoint(&sample());
        for n in 0..good.len() {
            assert!(decode_checkpoint(&good[..n]).unwrap_err().is_corrupt());
        }
        assert!(decode_checkpoint(b"\xff\x00garbage")
            .unwrap_err()
            .is_corrupt());
        let text = String::from_utf8(good).unwrap();
        let future = text.replace(r#""format_version":1"#, r#""format_version":9"#);
        assert!(matches!(
            decode_checkpoint(future.as_bytes()),
            Err(FormatError::UnsupportedVersion { version: 9, .. })
        ));
        let bad_kind = text.replace(r#""named""#, r#""other""#);
        assert!(decode_checkpoint(bad_kind.as_bytes())
            .unwrap_err()
            .is_corrupt());
        let bad_name = text.replace("nightly-2026.12.01", "a/b");
        assert!(decode_checkpoint(bad_name.as_bytes())
            .unwrap_err()
            .is_corrupt());
    }

    #[test]
    fn names() {
        for ok in ["a", "nightly-1", "v1.2_3", &"x".repeat(MAX_CHECKPOINT_NAME)] {
            validate_checkpoint_name(ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "é",
            "a\0",
            &"x".repeat(MAX_CHECKPOINT_NAME + 1),
        ] {
            assert!(validate_checkpoint_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn expiry() {
        let c = sample();
        assert!(!c.expired_at(1_700_000_059_999));
        assert!(c.expired_at(1_700_000_060_000));
        let never = Checkpoint {
            expires_at_ms: None,
            ..c
        };
        assert!(!never.expired_at(u64::MAX));
    }
}
