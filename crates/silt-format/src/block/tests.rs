use std::cmp::Ordering;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::compress::Compression;
use crate::key::{cmp_internal, Entry, SeqNo, ValueKind};
use crate::FormatError;

fn entry(key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) -> Entry {
    Entry {
        key: Bytes::copy_from_slice(key),
        seq,
        kind,
        value: if kind == ValueKind::Delete {
            Bytes::new()
        } else {
            Bytes::copy_from_slice(value)
        },
    }
}

/// ~300 entries: shared prefixes, 1-3 seqs per key, tombstones, empty values.
fn sample_entries() -> Vec<Entry> {
    let mut out = Vec::new();
    for i in 0u64..120 {
        let key = format!("user/{:05}/k", i * 7);
        let versions = 1 + (i % 3);
        for v in 0..versions {
            let seq = 1000 - i * 4 - v;
            let kind = if (i + v) % 5 == 0 {
                ValueKind::Delete
            } else {
                ValueKind::Put
            };
            let value = if i % 4 == 1 {
                Vec::new()
            } else {
                format!("value-{i}-{v}")
                    .repeat((i % 6) as usize)
                    .into_bytes()
            };
            out.push(entry(key.as_bytes(), seq, kind, &value));
        }
    }
    out
}

fn build(entries: &[Entry], restart_interval: usize) -> Block {
    let mut b = BlockBuilder::new(restart_interval);
    for e in entries {
        b.add(&e.key, e.seq, e.kind, &e.value);
    }
    assert_eq!(b.len(), entries.len());
    let est = b.estimated_size();
    let raw = b.finish();
    assert_eq!(raw.len(), est);
    assert!(b.is_empty());
    Block::decode(Bytes::from(raw)).unwrap()
}

fn collect(it: BlockIter) -> Vec<Entry> {
    it.collect::<Result<Vec<_>, _>>().unwrap()
}

#[test]
fn round_trip_various_restart_intervals() {
    let entries = sample_entries();
    for ri in [0, 1, 2, 3, 16, 1000] {
        let block = build(&entries, ri);
        assert_eq!(collect(block.iter()), entries, "restart interval {ri}");
        let expected_restarts = entries.len().div_ceil(ri.max(1));
        assert_eq!(block.num_restarts(), expected_restarts);
    }
}

#[test]
fn iter_from_every_key_and_between() {
    let entries = sample_entries();
    let mut targets: Vec<(Vec<u8>, SeqNo)> =
        vec![(vec![], 0), (vec![], u64::MAX), (b"zzz".to_vec(), 0)];
    for e in &entries {
        let k = e.key.to_vec();
        targets.push((k.clone(), e.seq));
        targets.push((k.clone(), e.seq + 1));
        targets.push((k.clone(), e.seq - 1));
        targets.push((k.clone(), 0));
        targets.push((k.clone(), u64::MAX));
        let mut after = k.clone();
        after.push(0);
        targets.push((after, u64::MAX));
        let mut before = k.clone();
        before.pop();
        targets.push((before, 0));
    }
    for ri in [1, 3, 16] {
        let block = build(&entries, ri);
        for (k, s) in &targets {
            let start =
                entries.partition_point(|e| cmp_internal(&e.key, e.seq, k, *s) == Ordering::Less);
            assert_eq!(
                collect(block.iter_from(k, *s)),
                entries[start..],
                "target {:?}@{s}, ri {ri}",
                String::from_utf8_lossy(k)
            );
        }
    }
}

#[test]
fn empty_block() {
    let mut b = BlockBuilder::new(16);
    assert!(b.is_empty());
    let raw = b.finish();
    assert_eq!(raw, vec![0, 0, 0, 0]);
    let block = Block::decode(Bytes::from(raw)).unwrap();
    assert_eq!(block.iter().count(), 0);
    assert_eq!(block.iter_from(b"a", 1).count(), 0);
}

#[test]
fn delete_value_is_dropped() {
    let mut b = BlockBuilder::new(16);
    b.add(b"k", 1, ValueKind::Delete, b"ignored");
    let block = Block::decode(Bytes::from(b.finish())).unwrap();
    assert_eq!(
        collect(block.iter()),
        vec![entry(b"k", 1, ValueKind::Delete, b"")]
    );
}

#[test]
fn block_snapshot() {
    let mut b = BlockBuilder::new(16);
    b.add(b"ab", 5, ValueKind::Put, b"x");
    b.add(b"ac", 4, ValueKind::Delete, b"");
    let hex = crate::hex::encode(&b.finish());
    let expected = concat!(
        "00000000",
        "02000000",
        "01000000",
        "0500000000000000",
        "01",
        "6162",
        "78",
        "01000000",
        "01000000",
        "00000000",
        "0400000000000000",
        "00",
        "63",
        "00000000",
        "01000000",
    );
    assert_eq!(hex, expected);
}

fn assert_corrupt<T: std::fmt::Debug>(r: Result<T, FormatError>) {
    match r {
        Err(FormatError::Corrupt { .. }) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn corrupt_raw_blocks_are_rejected() {
    let mut b = BlockBuilder::new(16);
    b.add(b"ab", 5, ValueKind::Put, b"x");
    b.add(b"ac", 4, ValueKind::Delete, b"");
    let good = b.finish();

    // Unknown kind byte.
    let mut bad = good.clone();
    bad[20] = 7;
    let block = Block::decode(Bytes::from(bad)).unwrap();
    let items: Vec<_> = block.iter().collect();
    assert_eq!(items.len(), 1, "iteration stops after the error");
    assert_corrupt(items.into_iter().next().unwrap());

    // Shared prefix longer than the previous key.
    let mut bad = good.clone();
    bad[24] = 9;
    let block = Block::decode(Bytes::from(bad)).unwrap();
    assert!(block.iter().any(|r| r.is_err()));

    // Out of order: second key "aa" < "ab".
    let mut bad = good.clone();
    bad[24 + 21] = b'a';
    let block = Block::decode(Bytes::from(bad)).unwrap();
    assert!(block.iter().any(|r| r.is_err()));

    // Restart count too large / restart not at 0 / no restarts with data.
    for (at, val) in [
        (good.len() - 4, 200u8),
        (good.len() - 8, 3),
        (good.len() - 4, 0),
    ] {
        let mut bad = good.clone();
        bad[at] = val;
        assert_corrupt(Block::decode(Bytes::from(bad)));
    }
    assert_corrupt(Block::decode(Bytes::from_static(b"abc")));

    // Value length running past the entries.
    let mut bad = good.clone();
    bad[8] = 0xff;
    let block = Block::decode(Bytes::from(bad)).unwrap();
    assert_corrupt(block.iter().next().unwrap());
    assert!(block.iter_from(b"ab", 5).next().unwrap().is_err());
}

fn frame_samples() -> Vec<Vec<u8>> {
    let mut b = BlockBuilder::new(16);
    for e in sample_entries() {
        b.add(&e.key, e.seq, e.kind, &e.value);
    }
    let compressible = b.finish();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let incompressible: Vec<u8> = (0..3000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    vec![compressible, incompressible, Vec::new(), b"x".to_vec()]
}

#[test]
fn frame_round_trip_each_compression() {
    for raw in frame_samples() {
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let frame = encode_block_frame(&raw, c);
            let payload_len = frame.len() - BLOCK_TRAILER_SIZE;
            let byte = frame[payload_len + 4];
            if c == Compression::None || raw.len() < 100 {
                assert_eq!(byte, 0);
                assert_eq!(payload_len, raw.len());
            } else if raw.len() > 5000 {
                assert_eq!(byte, c.to_byte(), "compressible data stays compressed");
                assert!(payload_len < raw.len() / 2);
            }
            let back = decode_block_frame(&frame).unwrap();
            assert_eq!(&back[..], &raw[..]);
        }
    }
    // Incompressible input falls back to no compression.
    let raw = &frame_samples()[1];
    let frame = encode_block_frame(raw, Compression::Lz4);
    assert_eq!(frame[frame.len() - 5], 0);
}

#[test]
fn frame_snapshot() {
    let frame = encode_block_frame(b"hello", Compression::Lz4);
    // "hello" does not shrink under lz4, so it is stored raw.
    assert_eq!(crate::hex::encode(&frame), "68656c6c6f0500000000e79247fa");
}

#[test]
fn frame_single_byte_flips_and_truncations_fail() {
    for raw in frame_samples().into_iter().take(2) {
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let frame = encode_block_frame(&raw, c);
            for i in 0..frame.len() {
                let mut bad = frame.clone();
                bad[i] ^= 0x01;
                assert_corrupt(decode_block_frame(&bad));
            }
            for len in 0..frame.len() {
                assert_corrupt(decode_block_frame(&frame[..len]));
            }
        }
    }
}

/// Frames with a valid CRC but a lying header or garbage payload.
fn reframe(payload: &[u8], ulen: u32, comp: u8) -> Vec<u8> {
    let mut f = payload.to_vec();
    f.extend_from_slice(&ulen.to_le_bytes());
    f.push(comp);
    let crc = crc32c::crc32c(&f);
    f.extend_from_slice(&crc.to_le_bytes());
    f
}

#[test]
fn frame_lying_lengths_fail() {
    let raw = &frame_samples()[0];
    let lz = lz4_flex::block::compress(raw);
    let zs = zstd::bulk::compress(raw, 3).unwrap();
    let n = raw.len() as u32;
    for (payload, comp) in [(&lz, 1u8), (&zs, 2u8), (raw, 0u8)] {
        for ulen in [0, n - 1, n + 1, u32::MAX, (MAX_BLOCK_SIZE + 1) as u32] {
            assert_corrupt(decode_block_frame(&reframe(payload, ulen, comp)));
        }
        assert_eq!(
            &decode_block_frame(&reframe(payload, n, comp)).unwrap()[..],
            &raw[..]
        );
    }
    assert_corrupt(decode_block_frame(&reframe(b"abc", 3, 9)));
}

/// Regression (mutation tests): a zstd claim no payload of that size can meet is
/// rejected before anything is allocated, like the lz4 one.
#[test]
fn zstd_impossible_length_is_rejected() {
    // A 10-byte frame: magic, no content size, window log 10, one raw block "x".
    let tiny = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00, 0x09, 0x00, 0x00, b'x'];
    assert_eq!(
        &decode_block_frame(&reframe(&tiny, 1, 2)).unwrap()[..],
        b"x"
    );
    let err = decode_block_frame(&reframe(&tiny, 10 * 32768 + 1, 2)).unwrap_err();
    assert!(err.to_string().contains("impossible"), "{err}");
    // Within the ratio but not what the frame holds: still Corrupt.
    assert_corrupt(decode_block_frame(&reframe(&tiny, 10 * 32768, 2)));
    assert_corrupt(decode_block_frame(&reframe(&tiny, 0, 2)));
}

/// Regression (mutation tests): a frame header declaring a 128 MiB window (window
/// descriptor 0x88) for a 1-byte block. The streaming decoder reserved a window buffer
/// of that size (C heap, 128 MiB of address space for 10 input bytes); the one-shot
/// decoder needs none and decodes it.
#[test]
fn zstd_large_declared_window_decodes_one_shot() {
    let big_window = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x88, 0x09, 0x00, 0x00, b'x'];
    assert_eq!(
        &decode_block_frame(&reframe(&big_window, 1, 2)).unwrap()[..],
        b"x"
    );
    // Two frames back to back decode as their concatenation, as before.
    let mut two = big_window.to_vec();
    two.extend_from_slice(&big_window);
    assert_eq!(
        &decode_block_frame(&reframe(&two, 2, 2)).unwrap()[..],
        b"xx"
    );
    assert_corrupt(decode_block_frame(&reframe(&two, 1, 2)));
}

proptest! {
    #[test]
    fn frame_with_valid_crc_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..300),
                                        ulen in 0u32..5000, comp in 0u8..4) {
        let _ = decode_block_frame(&reframe(&payload, ulen, comp));
    }

    #[test]
    fn raw_block_garbage_never_panics(mut raw in proptest::collection::vec(any::<u8>(), 0..400),
                                      restarts in 0u32..4) {
        // Give the trailer a plausible restart count so decode often succeeds.
        let n = raw.len();
        if n >= 4 && restarts > 0 {
            raw[n - 4..].copy_from_slice(&restarts.to_le_bytes());
        }
        if let Ok(block) = Block::decode(Bytes::from(raw)) {
            block.iter().for_each(drop);
            block.iter_from(b"m", 7).for_each(drop);
        }
    }

    #[test]
    fn block_round_trip_prop(keys in proptest::collection::btree_map(
            proptest::collection::vec(0u8..4, 0..6),
            proptest::collection::vec(any::<u8>(), 0..20), 0..60),
        ri in 1usize..20, seqs in 1u64..4) {
        let mut entries = Vec::new();
        for (k, v) in &keys {
            for s in (0..seqs).rev() {
                entries.push(entry(k, s, ValueKind::Put, v));
            }
        }
        let block = build(&entries, ri);
        prop_assert_eq!(collect(block.iter()), entries.clone());
        for (i, e) in entries.iter().enumerate() {
            prop_assert_eq!(collect(block.iter_from(&e.key, e.seq)), entries[i..].to_vec());
        }
    }
}
