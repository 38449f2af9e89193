use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::key::{SeqNo, ValueKind};
use crate::FormatError;

type Batch = Vec<(ValueKind, Vec<u8>, Vec<u8>)>;

/// Encodes batches with consecutive seqs starting at `first_seq`.
fn build(epoch: u64, first_seq: SeqNo, batches: &[Batch]) -> (Bytes, Vec<WalRecord>) {
    let mut body = Vec::new();
    let mut seq = first_seq;
    let mut expected = Vec::new();
    for batch in batches {
        let n = encode_record(
            &mut body,
            seq,
            batch
                .iter()
                .map(|(k, key, v)| (*k, key.as_slice(), v.as_slice())),
        );
        let lens = batch
            .iter()
            .map(|(k, key, v)| (key.len(), if *k == ValueKind::Delete { 0 } else { v.len() }));
        assert_eq!(n, record_encoded_len(lens));
        expected.push(WalRecord {
            first_seq: seq,
            ops: batch
                .iter()
                .map(|(k, key, v)| WalOp {
                    kind: *k,
                    key: Bytes::copy_from_slice(key),
                    value: if *k == ValueKind::Delete {
                        Bytes::new()
                    } else {
                        Bytes::copy_from_slice(v)
                    },
                })
                .collect(),
        });
        seq += batch.len() as u64;
    }
    let header = WalSegmentHeader {
        writer_epoch: epoch,
        first_seq,
        last_seq: seq - 1,
        record_count: batches.len() as u32,
        body_len: body.len() as u64,
    };
    (encode_segment(&header, &body), expected)
}

fn sample() -> Bytes {
    let batches: Vec<Batch> = vec![
        vec![(ValueKind::Put, b"alpha".to_vec(), b"1".to_vec())],
        vec![
            (ValueKind::Delete, b"beta".to_vec(), b"dropped".to_vec()),
            (ValueKind::Put, b"".to_vec(), b"".to_vec()),
            (ValueKind::Put, b"gamma".to_vec(), vec![7; 300]),
        ],
    ];
    build(3, 100, &batches).0
}

#[test]
fn segment_round_trip() {
    let batches: Vec<Batch> = vec![
        vec![(ValueKind::Put, b"a".to_vec(), b"x".to_vec())],
        vec![
            (ValueKind::Delete, b"b".to_vec(), b"ignored".to_vec()),
            (ValueKind::Put, b"c".to_vec(), Vec::new()),
        ],
    ];
    let (bytes, expected) = build(9, 41, &batches);
    let seg = decode_segment(bytes.clone()).unwrap();
    assert_eq!(seg.records, expected);
    assert_eq!(
        seg.header,
        WalSegmentHeader {
            writer_epoch: 9,
            first_seq: 41,
            last_seq: 43,
            record_count: 2,
            body_len: (bytes.len() - WAL_HEADER_SIZE - WAL_TRAILER_SIZE) as u64,
        }
    );
    assert_eq!(
        decode_segment_header(&bytes[..WAL_HEADER_SIZE]).unwrap(),
        seg.header
    );
}

#[test]
fn empty_fencing_segment() {
    let header = WalSegmentHeader {
        writer_epoch: 7,
        first_seq: 10,
        last_seq: 9,
        record_count: 0,
        body_len: 0,
    };
    let bytes = encode_segment(&header, &[]);
    assert_eq!(bytes.len(), WAL_HEADER_SIZE + WAL_TRAILER_SIZE);
    let seg = decode_segment(bytes).unwrap();
    assert_eq!(seg.header, header);
    assert!(seg.records.is_empty());
}

#[test]
fn segment_snapshot() {
    let mut body = Vec::new();
    encode_record(&mut body, 5, [(ValueKind::Put, &b"k"[..], &b"v"[..])]);
    let header = WalSegmentHeader {
        writer_epoch: 1,
        first_seq: 5,
        last_seq: 5,
        record_count: 1,
        body_len: 0,
    };
    let expected = concat!(
        "53494c5457414c00",
        "0200",
        "0100000000000000",
        "0500000000000000",
        "0500000000000000",
        "01000000",
        "1f00000000000000",
        "88aa7d79",
        "1b000000",
        "0500000000000000",
        "01000000",
        "01",
        "01000000",
        "01000000",
        "6b",
        "76",
        "7218bc4a",
        "109f0561",
    );
    assert_eq!(
        crate::hex::encode(&encode_segment(&header, &body)),
        expected
    );
}

fn assert_err<T: std::fmt::Debug>(r: Result<T, FormatError>) {
    match r {
        Err(FormatError::Corrupt { .. } | FormatError::UnsupportedVersion { .. }) => {}
        other => panic!("expected Corrupt/UnsupportedVersion, got {other:?}"),
    }
}

#[test]
fn every_byte_flip_and_truncation_fails() {
    let bytes = sample();
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80] {
            let mut bad = bytes.to_vec();
            bad[i] ^= mask;
            assert_err(decode_segment(Bytes::from(bad)));
        }
    }
    for len in 0..bytes.len() {
        assert_err(decode_segment(bytes.slice(..len)));
    }
    for len in 0..WAL_HEADER_SIZE {
        assert_err(decode_segment_header(&bytes[..len]));
    }
}

/// Re-seals a header after editing it, so only semantic checks can fail.
fn reseal(bytes: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut b = bytes.to_vec();
    edit(&mut b);
    let crc = crc32c::crc32c(&b[..WAL_HEADER_SIZE - 4]);
    b[WAL_HEADER_SIZE - 4..WAL_HEADER_SIZE].copy_from_slice(&crc.to_le_bytes());
    Bytes::from(b)
}

#[test]
fn header_inconsistencies_are_corrupt() {
    let bytes = sample();
    let cases: Vec<(usize, Vec<u8>)> = vec![
        (18, 99u64.to_le_bytes().to_vec()),  // first_seq
        (26, 104u64.to_le_bytes().to_vec()), // last_seq
        (34, 3u32.to_le_bytes().to_vec()),   // record_count
        (38, 10u64.to_le_bytes().to_vec()),  // body_len
    ];
    for (at, val) in cases {
        let bad = reseal(&bytes, |b| b[at..at + val.len()].copy_from_slice(&val));
        match decode_segment(bad) {
            Err(FormatError::Corrupt { .. }) => {}
            other => panic!("field at {at}: {other:?}"),
        }
    }
    let v3 = reseal(&bytes, |b| b[8] = 3);
    assert!(matches!(
        decode_segment(v3),
        Err(FormatError::UnsupportedVersion { version: 3, .. })
    ));
}

#[test]
fn overlapping_records_are_corrupt() {
    let mut body = Vec::new();
    encode_record(
        &mut body,
        10,
        [
            (ValueKind::Put, &b"a"[..], &b""[..]),
            (ValueKind::Put, &b"b"[..], &b""[..]),
        ],
    );
    encode_record(&mut body, 11, [(ValueKind::Put, &b"c"[..], &b""[..])]);
    let header = WalSegmentHeader {
        writer_epoch: 1,
        first_seq: 10,
        last_seq: 11,
        record_count: 2,
        body_len: 0,
    };
    assert_err(decode_segment(encode_segment(&header, &body)));
}

fn op() -> impl Strategy<Value = (ValueKind, Vec<u8>, Vec<u8>)> {
    (
        prop_oneof![Just(ValueKind::Put), Just(ValueKind::Delete)],
        proptest::collection::vec(any::<u8>(), 0..12),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
}

proptest! {
    #[test]
    fn segment_round_trip_prop(batches in proptest::collection::vec(
            proptest::collection::vec(op(), 1..6), 1..8),
        first_seq in 1u64..u64::MAX / 2, epoch in any::<u64>()) {
        let (bytes, expected) = build(epoch, first_seq, &batches);
        let seg = decode_segment(bytes).unwrap();
        prop_assert_eq!(seg.records, expected);
        prop_assert_eq!(seg.header.writer_epoch, epoch);
    }
}

#[test]
fn record_limits_are_checked_from_sizes() {
    assert!(record_fits(MAX_RECORD_BYTES as usize, 1));
    assert!(!record_fits(MAX_RECORD_BYTES as usize + 1, 1));
    assert!(!record_fits(100, MAX_RECORD_OPS as usize + 1));
    // 65 ops sharing a 64 MiB value: over 4 GiB, computed without encoding anything.
    let len = record_encoded_len(std::iter::repeat_n((3, 64 << 20), 65));
    assert_eq!(
        len,
        RECORD_OVERHEAD + 65 * (OP_HEADER_SIZE + 3 + (64 << 20))
    );
    assert!(!record_fits(len, 65));
    // Absurd sizes saturate instead of overflowing.
    assert_eq!(record_encoded_len([(usize::MAX, 1), (1, 1)]), usize::MAX);
}
