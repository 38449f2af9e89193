//! Every decoder must return an error, never panic, on arbitrary input.

use bytes::Bytes;
use proptest::prelude::*;

use crate::block::{decode_block_frame, Block, BlockBuilder};
use crate::bloom::BloomFilter;
use crate::key::ValueKind;
use crate::manifest::{decode_manifest, encode_manifest, Manifest};
use crate::sst::{decode_props, Footer, IndexBlock, SstBuilder, SstFile, SstOptions};
use crate::wal::{
    decode_segment, decode_segment_header, encode_record, encode_segment, WalSegmentHeader,
};

fn exercise_all(data: &[u8], file_len: u64) {
    let b = Bytes::copy_from_slice(data);
    if let Ok(block) = Block::decode(b.clone()) {
        block.iter().for_each(drop);
        block.iter_from(b"k", 3).for_each(drop);
    }
    let _ = decode_block_frame(data);
    if let Ok(f) = BloomFilter::decode(b.clone()) {
        f.may_contain(b"k");
    }
    let _ = Footer::decode(data, file_len);
    let _ = Footer::decode(data, data.len() as u64);
    if let Ok(i) = IndexBlock::decode(b.clone()) {
        i.find(b"k", 1);
    }
    let _ = decode_props(b.clone());
    if let Ok(f) = SstFile::open(b.clone()) {
        f.iter().for_each(drop);
        let _ = f.get(b"k", u64::MAX);
    }
    let _ = decode_segment_header(data);
    let _ = decode_segment(b);
    let _ = decode_manifest(data);
}

fn valid_sst() -> Vec<u8> {
    let mut b = SstBuilder::new(SstOptions {
        block_bytes: 64,
        ..SstOptions::default()
    });
    for i in 0u32..20 {
        b.add(
            format!("k{i:02}").as_bytes(),
            100 - u64::from(i),
            ValueKind::Put,
            b"value",
        )
        .unwrap();
    }
    b.finish().unwrap().0.to_vec()
}

fn valid_wal() -> Vec<u8> {
    let mut body = Vec::new();
    encode_record(&mut body, 1, [(ValueKind::Put, &b"k"[..], &b"v"[..])]);
    encode_record(&mut body, 2, [(ValueKind::Delete, &b"k"[..], &b""[..])]);
    let h = WalSegmentHeader {
        writer_epoch: 1,
        first_seq: 1,
        last_seq: 2,
        record_count: 2,
        body_len: 0,
    };
    encode_segment(&h, &body).to_vec()
}

fn valid_block() -> Vec<u8> {
    let mut b = BlockBuilder::new(2);
    for i in 0u8..6 {
        b.add(&[b'k', i], 9, ValueKind::Put, &[i; 3]);
    }
    b.finish()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512),
                                   file_len in any::<u64>()) {
        exercise_all(&data, file_len);
    }

    #[test]
    fn mutated_valid_inputs_never_panic(which in 0usize..4,
                                        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
                                        cut in any::<usize>()) {
        let mut data = match which {
            0 => valid_sst(),
            1 => valid_wal(),
            2 => valid_block(),
            _ => encode_manifest(&Manifest::default()),
        };
        for (at, v) in edits {
            let n = data.len();
            data[at % n] = v;
        }
        exercise_all(&data, data.len() as u64);
        let keep = cut % (data.len() + 1);
        exercise_all(&data[..keep], keep as u64);
    }
}
