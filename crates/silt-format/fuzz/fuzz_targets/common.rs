//! What every fuzz target does with its input: re-seal the checksums (with the fix-ups
//! of the mutation tests, so libFuzzer's mutations reach the structural checks instead
//! of stopping at a CRC), then decode and use the result. Decoders must return errors,
//! never panic; run with `-malloc_limit_mb` to catch oversized allocations.

#![allow(dead_code)]

#[path = "../../tests/reseal/mod.rs"]
mod reseal;

use bytes::Bytes;
use silt_format::block::{decode_block_frame, Block};
use silt_format::bloom::BloomFilter;
use silt_format::local_log::{check_group, decode_group_header, decode_group_records, scan_groups};
use silt_format::manifest::decode_manifest;
use silt_format::sst::{decode_props, Footer, IndexBlock, SstFile};
use silt_format::wal::{decode_segment, decode_segment_header};

const PROBES: &[(&[u8], u64)] = &[(b"", 0), (b"k", 3), (b"k07", u64::MAX), (b"\xff", 1)];

/// The first byte picks a variant (which fix-up level to apply); the rest is the input.
fn split(data: &[u8]) -> (u8, Vec<u8>) {
    match data.split_first() {
        Some((&b, rest)) => (b, rest.to_vec()),
        None => (0, Vec::new()),
    }
}

fn use_block(b: &Block) {
    for e in b.iter() {
        if e.is_err() {
            break;
        }
    }
    for (k, s) in PROBES {
        b.iter_from(k, *s).take(4).for_each(drop);
    }
}

fn framed(data: &[u8]) -> Option<Bytes> {
    let (v, mut f) = split(data);
    reseal::reseal_frame(&mut f, v & 1 == 1);
    decode_block_frame(&f).ok()
}

pub fn block(data: &[u8]) {
    if let Ok(b) = Block::decode(Bytes::copy_from_slice(data)) {
        use_block(&b);
    }
}

pub fn block_frame(data: &[u8]) {
    if let Some(raw) = framed(data) {
        if let Ok(b) = Block::decode(raw) {
            use_block(&b);
        }
    }
}

pub fn sst_footer(data: &[u8]) {
    let Some((len, tail)) = data.split_at_checked(8) else {
        return;
    };
    let file_len = u64::from_le_bytes(len.try_into().unwrap_or_default());
    let mut tail = tail.to_vec();
    reseal::reseal_footer(&mut tail);
    let _ = Footer::decode(&tail, file_len);
}

pub fn sst_index(data: &[u8]) {
    if let Some(raw) = framed(data) {
        if let Ok(i) = IndexBlock::decode(raw) {
            for (k, s) in PROBES {
                let _ = i.find(k, *s);
            }
        }
    }
}

pub fn bloom(data: &[u8]) {
    if let Some(raw) = framed(data) {
        if let Ok(f) = BloomFilter::decode(raw) {
            for (k, _) in PROBES {
                let _ = f.may_contain(k);
            }
        }
    }
}

pub fn sst_props(data: &[u8]) {
    if let Some(raw) = framed(data) {
        let _ = decode_props(raw);
    }
}

pub fn sst_file(data: &[u8]) {
    let (v, mut f) = split(data);
    reseal::reseal_sst(&mut f, v & 1 == 1);
    let Ok(file) = SstFile::open(Bytes::from(f)) else {
        return;
    };
    for e in file.iter() {
        if e.is_err() {
            break;
        }
    }
    for (k, s) in PROBES {
        let _ = file.get(k, *s);
    }
    for e in file.index.entries() {
        let _ = file.get(&e.last_key, e.last_seq);
    }
    for i in 0..=file.index.entries().len() {
        if let Ok(b) = file.read_block(i) {
            use_block(&b);
        }
    }
}

pub fn wal_header(data: &[u8]) {
    let mut h = data.to_vec();
    reseal::reseal_wal_header(&mut h);
    let _ = decode_segment_header(&h);
}

pub fn wal_segment(data: &[u8]) {
    let (v, mut s) = split(data);
    reseal::reseal_wal(&mut s, usize::from(v % 3));
    let _ = decode_segment(Bytes::from(s));
}

pub fn manifest(data: &[u8]) {
    let (v, mut m) = split(data);
    reseal::reseal_manifest(&mut m, v & 1 == 1);
    let _ = decode_manifest(&m);
}

pub fn local_log(data: &[u8]) {
    let mut f = data.to_vec();
    reseal::reseal_local_log(&mut f);
    let _ = decode_group_header(&f);
    let mut off = 0u64;
    for _ in 0..64 {
        let Ok(g) = check_group(&f, off, 0) else {
            break;
        };
        let start = g.payload_offset as usize;
        let payload = Bytes::copy_from_slice(&f[start..start + g.header.payload_len as usize]);
        let _ = decode_group_records(&g.header, &payload);
        if g.next_offset <= off {
            break;
        }
        off = g.next_offset;
    }
    let _ = scan_groups(&f);
}
