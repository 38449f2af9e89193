//! Manifests: one object per manifest version,
//! `magic | version u16 | payload_len u32 | payload_crc u32 | payload`,
//! where the payload is the JSON encoding of [`Manifest`].

use serde::{Deserialize, Serialize};

use crate::codec::{len_u32, Reader};
use crate::error::{FormatError, Result};
use crate::key::SeqNo;
use crate::sst::SstProps;

const WHAT: &str = "manifest";

/// Magic at the start of every manifest object.
pub const MANIFEST_MAGIC: [u8; 8] = *b"SILTMAN\0";
/// Manifest format version written by this crate and the only one it reads.
pub const MANIFEST_FORMAT_VERSION: u16 = 1;
/// magic 8 | version 2 | `payload_len` 4 | `payload_crc` 4.
pub const MANIFEST_HEADER_SIZE: usize = 18;

/// The database state at one point: which SSTs exist and where WAL replay
/// starts.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// This manifest's id (equal to its object name).
    pub id: u64,
    /// Bumped by each writer open; fences older writers.
    pub writer_epoch: u64,
    /// Random, drawn by each writer open: two writers claiming the same epoch from the same
    /// manifest still write different bytes, so one that reads back a claim after a lost
    /// PUT response can tell its own from the winner's. `0` when missing (older manifests).
    #[serde(default)]
    pub writer_nonce: u64,
    /// First WAL segment id recovery must replay.
    pub wal_replay_from: u64,
    /// Every seq `<=` this is in SSTs.
    pub last_flushed_seq: SeqNo,
    /// Highest seq known to the manifest writer + 1 (informational).
    pub next_seq_hint: SeqNo,
    /// Level-0 SSTs, newest first.
    pub l0: Vec<SstInfo>,
    /// Sorted runs (reserved for compaction), newest first.
    pub runs: Vec<SortedRun>,
    /// Unknown data kept for forward compatibility.
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One SST as recorded in a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SstInfo {
    /// ULID text; the object is `sst/<id>.sst`.
    pub id: String,
    /// Object size in bytes.
    pub size: u64,
    /// The SST's properties.
    pub props: SstProps,
}

/// A key-ordered sequence of non-overlapping SSTs.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SortedRun {
    /// Run id.
    pub id: u64,
    /// SSTs in key order, non-overlapping.
    pub ssts: Vec<SstInfo>,
}

/// Encodes a manifest object.
///
/// # Panics
/// Never in practice: serializing these types to JSON cannot fail, and a
/// payload over 4 GiB is not supported.
pub fn encode_manifest(m: &Manifest) -> Vec<u8> {
    let payload = serde_json::to_vec(m).expect("manifest serialization cannot fail");
    let mut out = Vec::with_capacity(MANIFEST_HEADER_SIZE + payload.len());
    out.extend_from_slice(&MANIFEST_MAGIC);
    out.extend_from_slice(&MANIFEST_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&len_u32(payload.len()).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Decodes and verifies a manifest object.
pub fn decode_manifest(bytes: &[u8]) -> Result<Manifest> {
    let mut r = Reader::new(bytes, WHAT);
    if r.take(8)? != MANIFEST_MAGIC {
        return Err(FormatError::corrupt(WHAT, "bad magic"));
    }
    let version = r.u16()?;
    if version != MANIFEST_FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion {
            what: WHAT,
            version,
        });
    }
    let len = r.len32()?;
    let crc = r.u32()?;
    if len != r.remaining() {
        return Err(FormatError::corrupt(
            WHAT,
            format!("payload is {} bytes, header says {len}", r.remaining()),
        ));
    }
    let payload = r.take(len)?;
    if crc != crc32c::crc32c(payload) {
        return Err(FormatError::corrupt(WHAT, "payload checksum mismatch"));
    }
    serde_json::from_slice(payload).map_err(|e| FormatError::corrupt(WHAT, format!("json: {e}")))
}

/// True when `bytes` are a manifest object cut short, as a crash leaves one on a store
/// that acknowledged a write it had not made durable: empty, a matching start of the
/// header, or a whole header followed by fewer payload bytes than it announces, which are
/// not a complete JSON value (a strict prefix of the encoding never is). A full-length
/// object that fails [`decode_manifest`] (magic, version, length field, checksum, JSON) is
/// not torn but corrupt: no single damaged byte makes a full-length object look torn.
pub fn manifest_is_torn(bytes: &[u8]) -> bool {
    let mut start = MANIFEST_MAGIC.to_vec();
    start.extend_from_slice(&MANIFEST_FORMAT_VERSION.to_le_bytes());
    let n = bytes.len().min(start.len());
    if bytes[..n] != start[..n] {
        return false;
    }
    let Some(header) = bytes.get(..MANIFEST_HEADER_SIZE) else {
        return true;
    };
    let announced = u32::from_le_bytes([header[10], header[11], header[12], header[13]]);
    let payload = &bytes[MANIFEST_HEADER_SIZE..];
    (payload.len() as u64) < u64::from(announced)
        && serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let props = SstProps {
            entries: 3,
            tombstones: 1,
            data_blocks: 1,
            smallest_key: b"a\x00".to_vec(),
            largest_key: b"zz".to_vec(),
            min_seq: 4,
            max_seq: 9,
            raw_key_bytes: 5,
            raw_value_bytes: 12,
        };
        let mut extra = serde_json::Map::new();
        extra.insert("future".into(), serde_json::json!({"x": [1, 2]}));
        Manifest {
            id: 12,
            writer_epoch: 3,
            writer_nonce: 0x5eed,
            wal_replay_from: 40,
            last_flushed_seq: 9,
            next_seq_hint: 15,
            l0: vec![SstInfo {
                id: "01J0000000000000000000000A".into(),
                size: 4096,
                props,
            }],
            runs: vec![SortedRun {
                id: 1,
                ssts: vec![SstInfo::default()],
            }],
            extra,
        }
    }

    #[test]
    fn round_trip_and_readable_json() {
        let m = sample();
        let bytes = encode_manifest(&m);
        assert_eq!(decode_manifest(&bytes).unwrap(), m);
        let json = std::str::from_utf8(&bytes[MANIFEST_HEADER_SIZE..]).unwrap();
        assert!(json.contains(r#""smallest_key":"6100""#), "{json}");
        assert!(json.contains(r#""largest_key":"7a7a""#));
        assert!(json.contains(r#""wal_replay_from":40"#));
    }

    #[test]
    fn extra_defaults_when_missing() {
        let m = Manifest {
            extra: serde_json::Map::default(),
            ..sample()
        };
        let mut v = serde_json::to_value(&m).unwrap();
        v.as_object_mut().unwrap().remove("extra");
        let parsed: Manifest = serde_json::from_value(v).unwrap();
        assert_eq!(parsed, m);
    }

    #[test]
    fn writer_nonce_defaults_when_missing() {
        let m = Manifest {
            writer_nonce: 0,
            ..sample()
        };
        let mut v = serde_json::to_value(&m).unwrap();
        v.as_object_mut().unwrap().remove("writer_nonce");
        let parsed: Manifest = serde_json::from_value(v).unwrap();
        assert_eq!(parsed, m);
    }

    #[test]
    fn header_snapshot() {
        let bytes = encode_manifest(&Manifest::default());
        let payload = &bytes[MANIFEST_HEADER_SIZE..];
        assert_eq!(
            std::str::from_utf8(payload).unwrap(),
            r#"{"id":0,"writer_epoch":0,"writer_nonce":0,"wal_replay_from":0,"last_flushed_seq":0,"next_seq_hint":0,"l0":[],"runs":[],"extra":{}}"#
        );
        assert_eq!(
            crate::hex::encode(&bytes[..MANIFEST_HEADER_SIZE]),
            format!(
                "53494c544d414e00{}{}{}",
                "0100",
                crate::hex::encode(&(payload.len() as u32).to_le_bytes()),
                crate::hex::encode(&crc32c::crc32c(payload).to_le_bytes()),
            )
        );
        assert_eq!(&bytes[10..18], &[0x82, 0, 0, 0, 0xad, 0x9e, 0x30, 0xf2]);
    }

    #[test]
    fn every_byte_flip_and_truncation_fails() {
        let bytes = encode_manifest(&sample());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x20;
            assert!(matches!(
                decode_manifest(&bad),
                Err(FormatError::Corrupt { .. } | FormatError::UnsupportedVersion { .. })
            ));
        }
        for len in 0..bytes.len() {
            assert!(decode_manifest(&bytes[..len]).unwrap_err().is_corrupt());
        }
    }

    #[test]
    fn torn_is_a_strict_prefix_and_no_byte_flip_is() {
        let bytes = encode_manifest(&sample());
        for len in 0..bytes.len() {
            assert!(manifest_is_torn(&bytes[..len]), "prefix of {len} bytes");
        }
        assert!(!manifest_is_torn(&bytes));
        for i in 0..bytes.len() {
            for flip in [0x01, 0x20, 0x80, 0xff] {
                let mut bad = bytes.clone();
                bad[i] ^= flip;
                assert!(!manifest_is_torn(&bad), "byte {i} ^ {flip:#x}");
            }
        }
        // Something else cut short is not a torn manifest either.
        assert!(!manifest_is_torn(b"SILTWAL"));
        assert!(!manifest_is_torn(&[0; 100]));
    }

    #[test]
    fn bad_json_and_versions() {
        let seal = |payload: &[u8], version: u16| {
            let mut out = MANIFEST_MAGIC.to_vec();
            out.extend_from_slice(&version.to_le_bytes());
            out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
            out.extend_from_slice(payload);
            out
        };
        for p in [
            &b"{"[..],
            b"[]",
            b"{\"id\":\"x\"}",
            b"{\"l0\":[{\"props\":{\"smallest_key\":\"zz\"}}]}",
        ] {
            assert!(decode_manifest(&seal(p, 1)).unwrap_err().is_corrupt());
        }
        assert!(matches!(
            decode_manifest(&seal(b"{}", 2)),
            Err(FormatError::UnsupportedVersion { version: 2, .. })
        ));
    }
}
