//! The local log: commit groups written in place into preallocated, recycled files.
//!
//! A commit group is `header (36 bytes) | record*`. In sparse mode the group starts at a
//! 4 KiB-aligned offset (or right after a packed group) and is followed by zeros up to the
//! next 4 KiB boundary (the header's `padded` flag says so); in packed mode groups follow
//! each other back to back. Either way recovery scans sequentially: the next group starts at
//! [`GroupHeader::next_offset`].
//!
//! Header: `magic "SL" | version u8 | flags u8 | generation u32 | first_seq u64 |
//! last_seq u64 | payload_len u32 | record_count u32 | crc32c u32`; the CRC covers the
//! first 32 header bytes and the payload.
//!
//! Record: `op_count u32 | op*`, op: `kind u8 | key_len u32 | value_len u32 | key | value`
//! (the op encoding of the remote WAL). A record carries neither its first sequence number
//! nor a CRC: its ops take consecutive sequence numbers following the previous record's,
//! starting at the header's `first_seq`, and the group CRC covers it.
//!
//! Decoding never panics. A scan stops at the first group that is not valid, and
//! [`GroupEnd`] says why: zeros, garbage, a torn write (CRC mismatch or a payload running
//! past the data), or a stale generation (an older file life left beyond the write point).

use std::fmt;

use bytes::Bytes;

use crate::codec::{len_u32, Reader};
use crate::error::{FormatError, Result};
use crate::key::{SeqNo, ValueKind};
use crate::wal::{decode_ops, encode_ops, WalRecord, OP_HEADER_SIZE};

const WHAT: &str = "local log group";

/// Magic at the start of every group header.
pub const LOCAL_LOG_MAGIC: [u8; 2] = *b"SL";
/// Group format version written by this crate. Version 2 added expiring puts
/// ([`crate::ValueKind::PutExpiring`]); version 1 groups (which never hold one) are read.
pub const LOCAL_LOG_VERSION: u8 = 2;
/// Oldest group format version this crate reads.
pub const LOCAL_LOG_MIN_READ_VERSION: u8 = 1;
/// Size of the blocks groups are aligned to and padded to (sparse mode).
pub const LOCAL_BLOCK_SIZE: usize = 4096;
/// magic 2 | version 1 | flags 1 | generation 4 | `first_seq` 8 | `last_seq` 8 |
/// `payload_len` 4 | `record_count` 4 | crc32c 4.
pub const GROUP_HEADER_SIZE: usize = 2 + 1 + 1 + 4 + 8 + 8 + 4 + 4 + 4;
/// Header flag: zeros follow the group up to the next [`LOCAL_BLOCK_SIZE`] boundary.
pub const FLAG_PADDED: u8 = 1;
/// Bytes of a record besides its ops: `op_count`.
pub const LOCAL_RECORD_OVERHEAD: usize = 4;
/// Fixed bytes per op: kind, `key_len`, `value_len` (the op encoding of the remote WAL).
pub const LOCAL_OP_HEADER_SIZE: usize = OP_HEADER_SIZE;

const CRC_AT: usize = GROUP_HEADER_SIZE - 4;

/// Rounds `x` up to a multiple of [`LOCAL_BLOCK_SIZE`] (saturating at the largest one).
pub fn align_up(x: u64) -> u64 {
    const B: u64 = LOCAL_BLOCK_SIZE as u64;
    x.checked_add(B - 1).map_or(!(B - 1), |v| v & !(B - 1))
}

/// The fixed-size header of a commit group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupHeader {
    /// Life of the file (or of the log after a reopen) the group was written in.
    pub generation: u32,
    /// Seq of the first op of the first record.
    pub first_seq: SeqNo,
    /// Seq of the last op of the last record.
    pub last_seq: SeqNo,
    /// Bytes of records after the header.
    pub payload_len: u32,
    /// Number of records.
    pub record_count: u32,
    /// Zeros follow the group up to the next 4 KiB boundary (sparse mode).
    pub padded: bool,
}

impl GroupHeader {
    /// Encodes the header for `payload` (its CRC covers the first 32 bytes and `payload`).
    /// `payload_len` is taken from the header, which must match `payload.len()`.
    pub fn encode(&self, payload: &[u8]) -> [u8; GROUP_HEADER_SIZE] {
        debug_assert_eq!(self.payload_len as usize, payload.len());
        let mut h = [0u8; GROUP_HEADER_SIZE];
        h[0..2].copy_from_slice(&LOCAL_LOG_MAGIC);
        h[2] = LOCAL_LOG_VERSION;
        h[3] = if self.padded { FLAG_PADDED } else { 0 };
        h[4..8].copy_from_slice(&self.generation.to_le_bytes());
        h[8..16].copy_from_slice(&self.first_seq.to_le_bytes());
        h[16..24].copy_from_slice(&self.last_seq.to_le_bytes());
        h[24..28].copy_from_slice(&self.payload_len.to_le_bytes());
        h[28..32].copy_from_slice(&self.record_count.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&h[..CRC_AT]), payload);
        h[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Bytes of header and payload (without padding).
    pub fn group_len(&self) -> u64 {
        GROUP_HEADER_SIZE as u64 + u64::from(self.payload_len)
    }

    /// Where the group following one written at `offset` starts.
    pub fn next_offset(&self, offset: u64) -> u64 {
        let end = offset.saturating_add(self.group_len());
        if self.padded {
            align_up(end)
        } else {
            end
        }
    }
}

/// Appends one record to `buf`; returns `(bytes appended, op count)`.
/// Values of `Delete` ops are not stored.
///
/// # Panics
/// If a key or value exceeds `u32::MAX` bytes or the record holds more than `u32::MAX`
/// ops; callers bound sizes beforehand.
pub fn encode_local_record<'a>(
    buf: &mut Vec<u8>,
    ops: impl IntoIterator<Item = (ValueKind, &'a [u8], &'a [u8])>,
) -> (usize, usize) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    let count = encode_ops(buf, ops);
    buf[start..start + 4].copy_from_slice(&len_u32(count).to_le_bytes());
    (buf.len() - start, count)
}

/// Encoded size of a record whose ops have the given `(key_len, value_len)` (pass
/// `value_len` 0 for deletes).
pub fn local_record_encoded_len(
    ops_key_value_lens: impl IntoIterator<Item = (usize, usize)>,
) -> usize {
    LOCAL_RECORD_OVERHEAD
        + ops_key_value_lens
            .into_iter()
            .map(|(k, v)| LOCAL_OP_HEADER_SIZE + k + v)
            .sum::<usize>()
}

/// Why a scan stopped: every variant marks the end of the log at that offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupEnd {
    /// Fewer than a header's worth of bytes left (end of the file).
    EndOfData,
    /// The header is all zeros (preallocated space never written in this file's lives).
    Zeroed,
    /// Bad magic, version, flags or inconsistent header fields.
    Garbage(String),
    /// A plausible header whose payload runs past the data or whose CRC does not match:
    /// a write that did not complete.
    Torn(String),
    /// A valid group of an older generation: left over from an earlier life of the file.
    Stale {
        /// Generation found.
        generation: u32,
        /// Lowest generation accepted here.
        min_generation: u32,
    },
}

impl fmt::Display for GroupEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupEnd::EndOfData => write!(f, "end of data"),
            GroupEnd::Zeroed => write!(f, "zeroed header"),
            GroupEnd::Garbage(d) => write!(f, "garbage: {d}"),
            GroupEnd::Torn(d) => write!(f, "torn group: {d}"),
            GroupEnd::Stale {
                generation,
                min_generation,
            } => write!(
                f,
                "stale generation {generation} (expected at least {min_generation})"
            ),
        }
    }
}

/// Parses and sanity-checks a group header (everything but the CRC, which needs the
/// payload). `bytes` must hold at least [`GROUP_HEADER_SIZE`] bytes.
pub fn decode_group_header(bytes: &[u8]) -> Result<GroupHeader, GroupEnd> {
    let Some(h) = bytes.get(..GROUP_HEADER_SIZE) else {
        return Err(GroupEnd::EndOfData);
    };
    if h.iter().all(|&b| b == 0) {
        return Err(GroupEnd::Zeroed);
    }
    let garbage = |d: String| Err(GroupEnd::Garbage(d));
    if h[0..2] != LOCAL_LOG_MAGIC {
        return garbage(format!("bad magic {:02x}{:02x}", h[0], h[1]));
    }
    if !(LOCAL_LOG_MIN_READ_VERSION..=LOCAL_LOG_VERSION).contains(&h[2]) {
        return garbage(format!("unsupported version {}", h[2]));
    }
    if h[3] & !FLAG_PADDED != 0 {
        return garbage(format!("unknown flags {:#04x}", h[3]));
    }
    let mut r = Reader::new(&h[4..CRC_AT], WHAT);
    let (Ok(generation), Ok(first_seq), Ok(last_seq), Ok(payload_len), Ok(record_count)) =
        (r.u32(), r.u64(), r.u64(), r.u32(), r.u32())
    else {
        return garbage("short header".into());
    };
    let header = GroupHeader {
        generation,
        first_seq,
        last_seq,
        payload_len,
        record_count,
        padded: h[3] & FLAG_PADDED != 0,
    };
    if record_count == 0 {
        return garbage("no records".into());
    }
    if last_seq < first_seq {
        return garbage(format!("last_seq {last_seq} < first_seq {first_seq}"));
    }
    // Every record holds at least one op, which takes one sequence number.
    if u64::from(record_count) - 1 > last_seq - first_seq {
        return garbage(format!(
            "{record_count} records for seqs {first_seq}..={last_seq}"
        ));
    }
    let min_payload =
        u64::from(record_count) * (LOCAL_RECORD_OVERHEAD + LOCAL_OP_HEADER_SIZE) as u64;
    if u64::from(payload_len) < min_payload {
        return garbage(format!(
            "payload {payload_len} bytes too small for {record_count} records"
        ));
    }
    Ok(header)
}

/// A group whose header, bounds, CRC and generation were checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidGroup {
    /// The header.
    pub header: GroupHeader,
    /// Offset of the header in the scanned data.
    pub offset: u64,
    /// Offset of the payload (just past the header).
    pub payload_offset: u64,
    /// Where the next group starts.
    pub next_offset: u64,
}

/// Checks the group starting at `offset` of `data` (a whole log file, or any prefix of
/// one): header, payload bounds, CRC, and `generation >= min_generation`.
pub fn check_group(data: &[u8], offset: u64, min_generation: u32) -> Result<ValidGroup, GroupEnd> {
    let start = usize::try_from(offset).map_err(|_| GroupEnd::EndOfData)?;
    let Some(header_end) = start
        .checked_add(GROUP_HEADER_SIZE)
        .filter(|&e| e <= data.len())
    else {
        return Err(GroupEnd::EndOfData);
    };
    let hb = &data[start..header_end];
    let header = decode_group_header(hb)?;
    let Some(payload_end) = header_end
        .checked_add(header.payload_len as usize)
        .filter(|&e| e <= data.len())
    else {
        return Err(GroupEnd::Torn(format!(
            "payload of {} bytes at {offset} runs past the data",
            header.payload_len
        )));
    };
    let payload = &data[header_end..payload_end];
    let crc = crc32c::crc32c_append(crc32c::crc32c(&hb[..CRC_AT]), payload);
    let stored = u32::from_le_bytes([hb[CRC_AT], hb[CRC_AT + 1], hb[CRC_AT + 2], hb[CRC_AT + 3]]);
    if crc != stored {
        return Err(GroupEnd::Torn(format!("checksum mismatch at {offset}")));
    }
    if header.generation < min_generation {
        return Err(GroupEnd::Stale {
            generation: header.generation,
            min_generation,
        });
    }
    Ok(ValidGroup {
        header,
        offset,
        payload_offset: header_end as u64,
        next_offset: header.next_offset(offset),
    })
}

/// Decodes the records of a group whose CRC was checked. `payload` holds exactly the
/// group's payload; keys and values are slices of it. A payload that does not match its
/// header (op counts, lengths, trailing bytes) is `Corrupt`: with a valid CRC this is no
/// torn write.
pub fn decode_group_records(header: &GroupHeader, payload: &Bytes) -> Result<Vec<WalRecord>> {
    if payload.len() != header.payload_len as usize {
        return Err(FormatError::corrupt(
            WHAT,
            format!(
                "payload of {} bytes, header says {}",
                payload.len(),
                header.payload_len
            ),
        ));
    }
    let mut r = Reader::new(payload, WHAT);
    // The header's fields are public: do not trust `record_count` for the allocation
    // (each record takes at least an op count and one op header).
    let max_records = payload.len() / (LOCAL_RECORD_OVERHEAD + LOCAL_OP_HEADER_SIZE);
    let mut records = Vec::with_capacity((header.record_count as usize).min(max_records));
    let mut seq = header.first_seq;
    for _ in 0..header.record_count {
        let count = r.u32()? as usize;
        if count == 0 {
            return Err(FormatError::corrupt(WHAT, "record without ops"));
        }
        let first_seq = seq;
        let ops = decode_ops(&mut r, payload, 0, count, WHAT)?;
        seq = seq
            .checked_add(count as u64)
            .ok_or_else(|| FormatError::corrupt(WHAT, "sequence overflow"))?;
        records.push(WalRecord { first_seq, ops });
    }
    r.finish()?;
    if seq.wrapping_sub(1) != header.last_seq {
        return Err(FormatError::corrupt(
            WHAT,
            format!(
                "ops cover seqs {}..={}, header says last_seq {}",
                header.first_seq,
                seq.wrapping_sub(1),
                header.last_seq
            ),
        ));
    }
    Ok(records)
}

/// Appends a whole group to `out`: header, `payload`, and when `padded`, zeros until
/// `out.len()` is a multiple of 4 KiB (the caller writes `out` at a block-aligned file
/// offset, so `out` may start with the tail of the block the group starts in).
/// Returns the header.
pub fn encode_group(
    out: &mut Vec<u8>,
    generation: u32,
    first_seq: SeqNo,
    last_seq: SeqNo,
    record_count: u32,
    payload: &[u8],
    padded: bool,
) -> GroupHeader {
    let header = GroupHeader {
        generation,
        first_seq,
        last_seq,
        payload_len: len_u32(payload.len()),
        record_count,
        padded,
    };
    out.extend_from_slice(&header.encode(payload));
    out.extend_from_slice(payload);
    if padded {
        out.resize(align_up(out.len() as u64) as usize, 0);
    }
    header
}

/// One valid group found by [`scan_groups`].
#[derive(Clone, Debug)]
pub struct ScannedGroup {
    /// Header and offsets.
    pub group: ValidGroup,
    /// The decoded records.
    pub records: Vec<WalRecord>,
}

/// Scans `data` (a whole file) from offset 0 with the rules of one file life: each group's
/// generation must be at least the previous one's, and within one generation sequence
/// numbers must follow on (`first_seq == previous last_seq + 1`); a higher generation
/// (a reopen) may skip forward. Returns the valid groups and why the scan stopped.
/// Payloads are copied, so the records do not keep `data` alive.
///
/// # Errors
/// `Corrupt` when a group's CRC matches but its records do not match its header.
pub fn scan_groups(data: &[u8]) -> Result<(Vec<ScannedGroup>, u64, GroupEnd)> {
    let mut out: Vec<ScannedGroup> = Vec::new();
    let mut offset = 0u64;
    let mut min_generation = 0u32;
    let end = loop {
        let group = match check_group(data, offset, min_generation) {
            Ok(g) => g,
            Err(e) => break e,
        };
        if let Some(prev) = out.last() {
            let p = &prev.group.header;
            let h = &group.header;
            let follows = if h.generation == p.generation {
                Some(h.first_seq) == p.last_seq.checked_add(1)
            } else {
                h.first_seq > p.last_seq
            };
            if !follows {
                break GroupEnd::Stale {
                    generation: h.generation,
                    min_generation,
                };
            }
        }
        let start = group.payload_offset as usize;
        let payload =
            Bytes::copy_from_slice(&data[start..start + group.header.payload_len as usize]);
        let records = decode_group_records(&group.header, &payload)?;
        min_generation = group.header.generation;
        offset = group.next_offset;
        out.push(ScannedGroup { group, records });
    };
    Ok((out, offset, end))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    type Rec = Vec<(ValueKind, Vec<u8>, Vec<u8>)>;

    fn payload_of(recs: &[Rec]) -> (Vec<u8>, u64) {
        let mut buf = Vec::new();
        let mut ops = 0u64;
        for r in recs {
            let (n, c) = encode_local_record(
                &mut buf,
                r.iter()
                    .map(|(k, key, v)| (*k, key.as_slice(), v.as_slice())),
            );
            assert_eq!(
                n,
                local_record_encoded_len(r.iter().map(|(k, key, v)| (
                    key.len(),
                    if *k == ValueKind::Delete { 0 } else { v.len() }
                )))
            );
            ops += c as u64;
        }
        (buf, ops)
    }

    fn put(k: &[u8], v: &[u8]) -> Rec {
        vec![(ValueKind::Put, k.to_vec(), v.to_vec())]
    }

    /// Appends a group for `recs` starting at seq `first` to `file` at its current length.
    fn push_group(file: &mut Vec<u8>, gen: u32, first: SeqNo, recs: &[Rec], padded: bool) -> SeqNo {
        let (payload, ops) = payload_of(recs);
        let last = first + ops - 1;
        encode_group(file, gen, first, last, recs.len() as u32, &payload, padded);
        last
    }

    fn seqs(groups: &[ScannedGroup]) -> Vec<SeqNo> {
        groups
            .iter()
            .flat_map(|g| g.records.iter())
            .flat_map(|r| (0..r.ops.len() as u64).map(move |i| r.first_seq + i))
            .collect()
    }

    #[test]
    fn header_is_36_bytes_and_round_trips() {
        assert_eq!(GROUP_HEADER_SIZE, 36);
        let (payload, _) = payload_of(&[put(b"k", b"v")]);
        let h = GroupHeader {
            generation: 3,
            first_seq: 10,
            last_seq: 10,
            payload_len: payload.len() as u32,
            record_count: 1,
            padded: true,
        };
        let bytes = h.encode(&payload);
        assert_eq!(decode_group_header(&bytes).unwrap(), h);
        assert_eq!(h.next_offset(0), 4096);
        assert_eq!(h.next_offset(4096), 8192);
        let packed = GroupHeader { padded: false, ..h };
        assert_eq!(packed.next_offset(100), 100 + 36 + payload.len() as u64);
    }

    #[test]
    fn documented_example() {
        // docs/format.md, "Local log block".
        let mut out = Vec::new();
        push_group(&mut out, 1, 5, &[put(b"k", b"v")], true);
        let hex: String = out[..GROUP_HEADER_SIZE + 15]
            .iter()
            .fold(String::new(), |mut s, b| {
                use std::fmt::Write as _;
                let _ = write!(s, "{b:02x}");
                s
            });
        assert_eq!(
            hex,
            "534c02010100000005000000000000000500000000000000\
             0f00000001000000928bea54010000000101000000010000006b76"
        );
        assert_eq!(out.len(), 4096);
    }

    #[test]
    fn records_round_trip_with_consecutive_seqs() {
        let recs = vec![
            put(b"a", b"1"),
            vec![
                (ValueKind::Put, b"b".to_vec(), b"2".to_vec()),
                (ValueKind::Delete, b"c".to_vec(), b"ignored".to_vec()),
            ],
            put(b"", b""),
        ];
        let mut file = Vec::new();
        let last = push_group(&mut file, 1, 7, &recs, false);
        assert_eq!(last, 10);
        let (groups, end_off, end) = scan_groups(&file).unwrap();
        assert_eq!(end, GroupEnd::EndOfData);
        assert_eq!(end_off, file.len() as u64);
        let r = &groups[0].records;
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].first_seq, r[1].first_seq, r[2].first_seq), (7, 8, 10));
        assert_eq!(r[1].ops[1].kind, ValueKind::Delete);
        assert!(r[1].ops[1].value.is_empty());
        assert_eq!(&r[1].ops[0].value[..], b"2");
    }

    #[test]
    fn sparse_groups_are_aligned_and_zero_padded() {
        let mut file = Vec::new();
        push_group(&mut file, 1, 1, &[put(b"k1", b"v1")], true);
        assert_eq!(file.len(), LOCAL_BLOCK_SIZE);
        assert!(file[GROUP_HEADER_SIZE + 21..].iter().all(|&b| b == 0));
        // A group larger than a block spans blocks and is padded once.
        let big = vec![7u8; 5000];
        push_group(&mut file, 1, 2, &[put(b"k2", &big), put(b"k3", b"v")], true);
        assert_eq!(file.len(), 3 * LOCAL_BLOCK_SIZE);
        push_group(&mut file, 1, 4, &[put(b"k4", b"v4")], true);
        file.resize(8 * LOCAL_BLOCK_SIZE, 0);
        let (groups, end_off, end) = scan_groups(&file).unwrap();
        let offsets: Vec<u64> = groups.iter().map(|g| g.group.offset).collect();
        assert_eq!(offsets, vec![0, 4096, 12288]);
        assert_eq!(seqs(&groups), vec![1, 2, 3, 4]);
        assert_eq!(end_off, 16384);
        assert_eq!(end, GroupEnd::Zeroed);
    }

    #[test]
    fn packed_groups_are_back_to_back() {
        let mut file = Vec::new();
        let mut seq = 1;
        let mut offsets = Vec::new();
        for i in 0..200u32 {
            offsets.push(file.len() as u64);
            seq = push_group(&mut file, 2, seq, &[put(&i.to_le_bytes(), b"value")], false) + 1;
        }
        let used = file.len();
        file.resize(align_up(used as u64) as usize + 4096, 0);
        let (groups, end_off, end) = scan_groups(&file).unwrap();
        assert_eq!(groups.len(), 200);
        assert_eq!(
            groups.iter().map(|g| g.group.offset).collect::<Vec<_>>(),
            offsets
        );
        // Headers straddle block boundaries: no alignment in packed mode.
        assert!(offsets.iter().any(|o| o % 4096 > 4096 - 36));
        assert_eq!(end_off, used as u64);
        assert_eq!(end, GroupEnd::Zeroed);
        assert_eq!(seqs(&groups), (1..=200).collect::<Vec<_>>());
    }

    #[test]
    fn torn_group_ends_the_log() {
        let mut file = Vec::new();
        push_group(&mut file, 1, 1, &[put(b"a", b"1")], true);
        let mut second = Vec::new();
        push_group(&mut second, 1, 2, &[put(b"b", &[9u8; 6000])], true);
        // Only the first block of the second group reached the disk.
        file.extend_from_slice(&second[..4096]);
        file.resize(4 * 4096, 0);
        let (groups, end_off, end) = scan_groups(&file).unwrap();
        assert_eq!(seqs(&groups), vec![1]);
        assert_eq!(end_off, 4096);
        assert!(matches!(end, GroupEnd::Torn(_)), "{end}");
        // Only the second block: the header is zeros.
        let mut file2 = Vec::new();
        push_group(&mut file2, 1, 1, &[put(b"a", b"1")], true);
        file2.resize(2 * 4096, 0);
        file2.extend_from_slice(&second[4096..]);
        let (groups, _, end) = scan_groups(&file2).unwrap();
        assert_eq!(seqs(&groups), vec![1]);
        assert_eq!(end, GroupEnd::Zeroed);
        // Payload cut short by the end of the data.
        let mut file3 = Vec::new();
        push_group(&mut file3, 1, 1, &[put(b"a", &[1u8; 100])], false);
        file3.truncate(file3.len() - 1);
        let (groups, _, end) = scan_groups(&file3).unwrap();
        assert!(groups.is_empty());
        assert!(matches!(end, GroupEnd::Torn(_)));
    }

    #[test]
    fn crc_mismatch_is_torn() {
        let mut file = Vec::new();
        push_group(&mut file, 1, 1, &[put(b"a", b"1")], true);
        push_group(&mut file, 1, 2, &[put(b"b", b"2")], true);
        for at in [4096 + 8, 4096 + 36 + 14, 4096 + 32] {
            let mut f = file.clone();
            f[at] ^= 0x40;
            let (groups, off, end) = scan_groups(&f).unwrap();
            assert_eq!(seqs(&groups), vec![1]);
            assert_eq!(off, 4096);
            assert!(
                matches!(end, GroupEnd::Torn(_) | GroupEnd::Garbage(_)),
                "{at}: {end}"
            );
        }
        let mut f = file.clone();
        f[4096 + 36 + 14] ^= 1;
        assert!(matches!(check_group(&f, 4096, 0), Err(GroupEnd::Torn(_))));
    }

    #[test]
    fn stale_generation_ends_the_log() {
        // An old life of the file: gen 3, seqs 1..=5 in five sparse groups.
        let mut old = Vec::new();
        for s in 1..=5 {
            push_group(&mut old, 3, s, &[put(b"old", b"x")], true);
        }
        // The new life (gen 9) overwrote the first two blocks only.
        let mut new = Vec::new();
        push_group(&mut new, 9, 100, &[put(b"new", b"y")], true);
        push_group(&mut new, 9, 101, &[put(b"new", b"z")], true);
        let mut file = old.clone();
        file[..new.len()].copy_from_slice(&new);
        let (groups, off, end) = scan_groups(&file).unwrap();
        assert_eq!(seqs(&groups), vec![100, 101]);
        assert_eq!(off, 8192);
        assert_eq!(
            end,
            GroupEnd::Stale {
                generation: 3,
                min_generation: 9
            }
        );
        // A reopen bumps the generation and may skip sequence numbers forward.
        let mut file = new.clone();
        push_group(&mut file, 10, 150, &[put(b"x", b"y")], true);
        let (groups, _, _) = scan_groups(&file).unwrap();
        assert_eq!(seqs(&groups), vec![100, 101, 150]);
        // Same generation with a hole: not part of this life.
        let mut file = new.clone();
        push_group(&mut file, 9, 150, &[put(b"x", b"y")], true);
        let (groups, _, end) = scan_groups(&file).unwrap();
        assert_eq!(seqs(&groups), vec![100, 101]);
        assert!(matches!(end, GroupEnd::Stale { .. }));
    }

    #[test]
    fn header_field_checks() {
        let (payload, _) = payload_of(&[put(b"k", b"v")]);
        let good = GroupHeader {
            generation: 1,
            first_seq: 5,
            last_seq: 5,
            payload_len: payload.len() as u32,
            record_count: 1,
            padded: false,
        };
        let bad = [
            GroupHeader {
                record_count: 0,
                ..good
            },
            GroupHeader {
                last_seq: 4,
                ..good
            },
            GroupHeader {
                record_count: 2,
                ..good
            },
            GroupHeader {
                payload_len: 3,
                ..good
            },
        ];
        for h in bad {
            assert!(
                matches!(
                    decode_group_header(&h.encode_unchecked(&payload)),
                    Err(GroupEnd::Garbage(_))
                ),
                "{h:?}"
            );
        }
        let mut b = good.encode(&payload);
        b[3] = 0x80;
        assert!(matches!(decode_group_header(&b), Err(GroupEnd::Garbage(_))));
        let mut b = good.encode(&payload);
        b[2] = 3;
        assert!(matches!(decode_group_header(&b), Err(GroupEnd::Garbage(_))));
        assert_eq!(decode_group_header(&[0u8; 36]), Err(GroupEnd::Zeroed));
        assert_eq!(decode_group_header(&[0u8; 35]), Err(GroupEnd::EndOfData));
        // CRC valid, records inconsistent with the header: Corrupt, not end of log.
        let lying = GroupHeader {
            last_seq: 6,
            ..good
        };
        let mut file = lying.encode_unchecked(&payload).to_vec();
        file.extend_from_slice(&payload);
        assert!(scan_groups(&file).unwrap_err().is_corrupt());
    }

    impl GroupHeader {
        fn encode_unchecked(&self, payload: &[u8]) -> [u8; GROUP_HEADER_SIZE] {
            let mut h = [0u8; GROUP_HEADER_SIZE];
            h[0..2].copy_from_slice(&LOCAL_LOG_MAGIC);
            h[2] = LOCAL_LOG_VERSION;
            h[3] = u8::from(self.padded);
            h[4..8].copy_from_slice(&self.generation.to_le_bytes());
            h[8..16].copy_from_slice(&self.first_seq.to_le_bytes());
            h[16..24].copy_from_slice(&self.last_seq.to_le_bytes());
            h[24..28].copy_from_slice(&self.payload_len.to_le_bytes());
            h[28..32].copy_from_slice(&self.record_count.to_le_bytes());
            let crc = crc32c::crc32c_append(crc32c::crc32c(&h[..CRC_AT]), payload);
            h[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
            h
        }
    }

    /// Regression (mutation tests): with a header that `decode_group_header` never saw,
    /// `record_count` sized the records vector (`u32::MAX` × 32 bytes: the process aborted).
    #[test]
    fn records_decoder_does_not_trust_record_count_for_allocation() {
        let h = GroupHeader {
            generation: 1,
            first_seq: 1,
            last_seq: 1,
            payload_len: 0,
            record_count: u32::MAX,
            padded: false,
        };
        assert!(decode_group_records(&h, &Bytes::new())
            .unwrap_err()
            .is_corrupt());
    }

    #[test]
    fn lone_small_record_block_is_mostly_zeros() {
        // (The zlib level 1 figure is checked in the engine crate, which has flate2.)
        let mut block = Vec::new();
        push_group(
            &mut block,
            1,
            123_456,
            &[put(b"key:0042", b"val:0042")],
            true,
        );
        assert_eq!(block.len(), 4096);
        // 36 header + 4 record + 9 op + 16 user bytes; the rest is zeros.
        let used = block.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        assert_eq!(used, 65);
    }

    proptest! {
        #[test]
        fn decoding_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600), off in 0u64..700, gen in any::<u32>()) {
            let _ = check_group(&data, off, gen);
            let _ = decode_group_header(&data);
            let _ = scan_groups(&data);
        }

        #[test]
        fn mutated_groups_never_panic(flip in 0usize..120, bit in 0u8..8) {
            let mut file = Vec::new();
            push_group(&mut file, 4, 1, &[put(b"key", b"value"), put(b"k2", b"")], false);
            push_group(&mut file, 4, 3, &[put(b"key3", b"v3")], false);
            let at = flip % file.len();
            file[at] ^= 1 << bit;
            // Either a clean prefix or a Corrupt error; never a panic, never a wrong record.
            if let Ok((groups, _, _)) = scan_groups(&file) {
                for g in &groups {
                    for r in &g.records {
                        prop_assert!(r.first_seq <= 3);
                    }
                }
            }
        }

        #[test]
        fn random_groups_round_trip(sizes in proptest::collection::vec((1usize..4, 0usize..300), 1..30), padded in any::<bool>()) {
            let mut file = Vec::new();
            let mut seq = 1;
            let mut expected = Vec::new();
            for (i, (ops, vlen)) in sizes.iter().enumerate() {
                let rec: Rec = (0..*ops).map(|j| (ValueKind::Put, format!("{i}-{j}").into_bytes(), vec![i as u8; *vlen])).collect();
                expected.extend(seq..seq + *ops as u64);
                seq = push_group(&mut file, 1, seq, &[rec], padded) + 1;
            }
            file.resize(align_up(file.len() as u64) as usize + 4096, 0xAA);
            let (groups, _, end) = scan_groups(&file).unwrap();
            prop_assert_eq!(seqs(&groups), expected);
            prop_assert!(matches!(end, GroupEnd::Garbage(_)));
        }
    }
}
