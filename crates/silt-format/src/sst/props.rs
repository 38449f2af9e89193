//! SST properties: summary statistics stored in the props frame and, as
//! JSON, in manifests.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::codec::{len_u32, Reader};
use crate::error::{FormatError, Result};
use crate::key::SeqNo;

const WHAT: &str = "sst props";

/// Version of the binary props encoding.
pub const PROPS_VERSION: u16 = 1;

/// Summary of an SST's contents. In JSON the key fields are lowercase hex.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SstProps {
    /// Number of entries (puts and tombstones).
    pub entries: u64,
    /// Number of tombstones.
    pub tombstones: u64,
    /// Number of data blocks.
    pub data_blocks: u64,
    /// Smallest user key.
    #[serde(with = "crate::hex")]
    pub smallest_key: Vec<u8>,
    /// Largest user key.
    #[serde(with = "crate::hex")]
    pub largest_key: Vec<u8>,
    /// Smallest sequence number.
    pub min_seq: SeqNo,
    /// Largest sequence number.
    pub max_seq: SeqNo,
    /// Sum of user key lengths over all entries.
    pub raw_key_bytes: u64,
    /// Sum of value lengths over all entries.
    pub raw_value_bytes: u64,
}

/// Binary encoding stored in the props frame (see `docs/format.md`).
pub fn encode_props(p: &SstProps) -> Vec<u8> {
    let mut out = Vec::with_capacity(66 + p.smallest_key.len() + p.largest_key.len());
    out.extend_from_slice(&PROPS_VERSION.to_le_bytes());
    for v in [
        p.entries,
        p.tombstones,
        p.data_blocks,
        p.min_seq,
        p.max_seq,
        p.raw_key_bytes,
        p.raw_value_bytes,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for k in [&p.smallest_key, &p.largest_key] {
        out.extend_from_slice(&len_u32(k.len()).to_le_bytes());
        out.extend_from_slice(k);
    }
    out
}

/// Decodes the props frame content (the output of `decode_block_frame`).
#[expect(
    clippy::needless_pass_by_value,
    reason = "decoders take the frame's `Bytes` like the other block decoders do"
)]
pub fn decode_props(raw: Bytes) -> Result<SstProps> {
    let mut r = Reader::new(&raw, WHAT);
    let version = r.u16()?;
    if version != PROPS_VERSION {
        return Err(FormatError::UnsupportedVersion {
            what: WHAT,
            version,
        });
    }
    let mut p = SstProps {
        entries: r.u64()?,
        tombstones: r.u64()?,
        data_blocks: r.u64()?,
        min_seq: r.u64()?,
        max_seq: r.u64()?,
        raw_key_bytes: r.u64()?,
        raw_value_bytes: r.u64()?,
        ..SstProps::default()
    };
    let n = r.len32()?;
    p.smallest_key = r.take(n)?.to_vec();
    let n = r.len32()?;
    p.largest_key = r.take(n)?.to_vec();
    r.finish()?;
    if p.tombstones > p.entries || p.min_seq > p.max_seq || p.smallest_key > p.largest_key {
        return Err(FormatError::corrupt(WHAT, "inconsistent statistics"));
    }
    Ok(p)
}
