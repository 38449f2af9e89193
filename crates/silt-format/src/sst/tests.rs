use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::block::decode_block_frame;
use crate::compress::Compression;
use crate::key::{Entry, SeqNo, ValueKind};
use crate::FormatError;

fn e(key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) -> Entry {
    Entry {
        key: Bytes::copy_from_slice(key),
        seq,
        kind,
        value: Bytes::copy_from_slice(value),
    }
}

fn build(entries: &[Entry], opts: SstOptions) -> (Bytes, SstProps) {
    let mut b = SstBuilder::new(opts);
    assert!(b.is_empty());
    for x in entries {
        b.add(&x.key, x.seq, x.kind, &x.value).unwrap();
    }
    assert!(!b.is_empty());
    b.finish().unwrap()
}

fn small_opts(c: Compression) -> SstOptions {
    SstOptions {
        block_bytes: 256,
        restart_interval: 4,
        compression: c,
        bloom_bits_per_key: 10,
    }
}

/// Keys with several versions, tombstones, empty values and one value larger
/// than a block.
fn sample() -> Vec<Entry> {
    let mut out = Vec::new();
    for i in 0u64..200 {
        let key = format!("k{:04}", i * 3);
        for v in 0..=(i % 3) {
            let seq = 10_000 - i * 5 - v * 2;
            let kind = if (i + v) % 7 == 3 {
                ValueKind::Delete
            } else {
                ValueKind::Put
            };
            let value = match (kind, i % 5) {
                (ValueKind::Delete, _) | (_, 0) => Vec::new(),
                _ if i == 42 => vec![b'B'; 5000],
                _ => format!("v{i}.{v}").into_bytes(),
            };
            out.push(e(key.as_bytes(), seq, kind, &value));
        }
    }
    out
}

fn expected_get(entries: &[Entry], key: &[u8], seq: SeqNo) -> Option<Entry> {
    entries
        .iter()
        .find(|x| &x.key[..] == key && x.seq <= seq)
        .cloned()
}

fn check_file(entries: &[Entry], bytes: Bytes, props: &SstProps) -> SstFile {
    let f = SstFile::open(bytes).unwrap();
    assert_eq!(&f.props, props);
    let all: Vec<Entry> = f.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(all, entries);
    for x in entries {
        for s in [x.seq, x.seq + 1, x.seq.saturating_sub(1), u64::MAX, 0] {
            assert_eq!(f.get(&x.key, s).unwrap(), expected_get(entries, &x.key, s));
        }
        let mut absent = x.key.to_vec();
        absent.push(b'!');
        assert_eq!(f.get(&absent, u64::MAX).unwrap(), None);
    }
    f
}

#[test]
fn round_trip_each_compression() {
    let entries = sample();
    for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let (bytes, props) = build(&entries, small_opts(c));
        assert_eq!(props.entries, entries.len() as u64);
        assert_eq!(
            props.tombstones,
            entries
                .iter()
                .filter(|x| x.kind == ValueKind::Delete)
                .count() as u64
        );
        assert_eq!(props.smallest_key, b"k0000");
        assert_eq!(props.largest_key, b"k0597");
        assert_eq!(props.min_seq, entries.iter().map(|x| x.seq).min().unwrap());
        assert_eq!(props.max_seq, 10_000);
        assert_eq!(
            props.raw_value_bytes,
            entries.iter().map(|x| x.value.len() as u64).sum::<u64>()
        );
        assert!(props.data_blocks > 10);
        let f = check_file(&entries, bytes, &props);
        assert_eq!(f.index.entries().len() as u64, props.data_blocks);
        assert!(f.read_block(props.data_blocks as usize).is_err());
        assert!(f.filter.size_bytes() > 0);
    }
}

#[test]
fn estimated_size_tracks_uncompressed_size() {
    let mut b = SstBuilder::new(small_opts(Compression::None));
    for x in sample() {
        b.add(&x.key, x.seq, x.kind, &x.value).unwrap();
    }
    let est = b.estimated_size();
    let (bytes, _) = b.finish().unwrap();
    let diff = est.abs_diff(bytes.len());
    assert!(
        diff < bytes.len() / 20,
        "estimate {est} vs actual {}",
        bytes.len()
    );
}

#[test]
fn default_options_and_single_entry() {
    let entries = vec![e(b"only", 1, ValueKind::Put, b"v")];
    let (bytes, props) = build(&entries, SstOptions::default());
    assert_eq!(props.data_blocks, 1);
    check_file(&entries, bytes, &props);
}

#[test]
fn no_bloom_filter() {
    let entries = sample();
    let opts = SstOptions {
        bloom_bits_per_key: 0,
        ..small_opts(Compression::Lz4)
    };
    let (bytes, props) = build(&entries, opts);
    let f = check_file(&entries, bytes, &props);
    assert_eq!(f.filter.size_bytes(), 0);
}

#[test]
fn out_of_order_is_invalid_input() {
    let mut b = SstBuilder::new(SstOptions::default());
    b.add(b"b", 5, ValueKind::Put, b"x").unwrap();
    for (k, s) in [(&b"b"[..], 5), (b"b", 6), (b"a", 1), (b"", 100)] {
        assert!(matches!(
            b.add(k, s, ValueKind::Put, b""),
            Err(FormatError::InvalidInput(_))
        ));
    }
    b.add(b"b", 4, ValueKind::Delete, b"").unwrap();
    b.add(b"c", 9, ValueKind::Put, b"").unwrap();
    assert!(b
        .add(&vec![0; MAX_KEY_LEN + 1], 1, ValueKind::Put, b"")
        .is_err());
}

#[test]
fn empty_finish_is_invalid_input() {
    let b = SstBuilder::new(SstOptions::default());
    assert!(matches!(b.finish(), Err(FormatError::InvalidInput(_))));
}

#[test]
fn footer_snapshot_and_ranged_metadata_read() {
    let entries = vec![
        e(b"a", 2, ValueKind::Put, b"1"),
        e(b"b", 1, ValueKind::Delete, b""),
    ];
    let (bytes, _) = build(&entries, SstOptions::default());
    let len = bytes.len() as u64;
    let footer = Footer::decode(&bytes[bytes.len() - Footer::SIZE..], len).unwrap();
    assert_eq!(footer.format_version, SST_FORMAT_VERSION);
    assert_eq!(Footer::SIZE, 62);
    // The engine reads [meta_start, len) once and decodes frames from it.
    let meta = &bytes[footer.meta_start() as usize..];
    let rel = |h: BlockHandle| {
        let s = (h.offset - footer.meta_start()) as usize;
        &meta[s..s + h.len as usize]
    };
    let props = decode_props(decode_block_frame(rel(footer.props)).unwrap()).unwrap();
    assert_eq!(props.entries, 2);
    let index = IndexBlock::decode(decode_block_frame(rel(footer.index)).unwrap()).unwrap();
    assert_eq!(index.find(b"a", 5), Some(0));
    assert_eq!(index.find(b"b", 0), None);
    assert!(index.size_bytes() > 0);

    let f = Footer {
        filter: BlockHandle {
            offset: 0x10,
            len: 0x20,
        },
        props: BlockHandle {
            offset: 0x30,
            len: 0x0a,
        },
        index: BlockHandle {
            offset: 0x3a,
            len: 0x0b,
        },
        format_version: 1,
    };
    let hex = crate::hex::encode(&f.encode());
    assert_eq!(
        &hex[..116],
        concat!(
            "1000000000000000",
            "2000000000000000",
            "3000000000000000",
            "0a00000000000000",
            "3a00000000000000",
            "0b00000000000000",
            "0100",
            "53494c5453535400"
        )
    );
    assert_eq!(Footer::decode(&f.encode(), 0x45 + 62).unwrap(), f);
    assert!(Footer::decode(&f.encode(), 0x46 + 62).is_err());
}

fn is_err_kind<T>(r: &Result<T, FormatError>) -> bool {
    matches!(
        r,
        Err(FormatError::Corrupt { .. } | FormatError::UnsupportedVersion { .. })
    )
}

fn open_and_scan(bytes: Bytes) -> Result<Vec<Entry>, FormatError> {
    let f = SstFile::open(bytes)?;
    f.iter().collect()
}

#[test]
fn every_byte_flip_and_truncation_fails() {
    let entries: Vec<Entry> = sample().into_iter().take(40).collect();
    for c in [Compression::None, Compression::Lz4] {
        let (bytes, _) = build(&entries, small_opts(c));
        let len = bytes.len() as u64;
        let tail = bytes.len() - Footer::SIZE;
        for i in 0..bytes.len() {
            let mut bad = bytes.to_vec();
            bad[i] ^= 0x04;
            if i >= tail {
                assert!(
                    is_err_kind(&Footer::decode(&bad[tail..], len)),
                    "footer byte {i}"
                );
            }
            assert!(is_err_kind(&open_and_scan(Bytes::from(bad))), "byte {i}");
        }
        for l in 0..bytes.len() {
            assert!(is_err_kind(&SstFile::open(bytes.slice(..l))), "len {l}");
        }
    }
}

#[test]
fn newer_version_is_unsupported() {
    let f = Footer {
        filter: BlockHandle { offset: 0, len: 9 },
        props: BlockHandle { offset: 9, len: 9 },
        index: BlockHandle { offset: 18, len: 9 },
        format_version: 3,
    };
    assert!(matches!(
        Footer::decode(&f.encode(), 27 + 62),
        Err(FormatError::UnsupportedVersion { version: 3, .. })
    ));
}

#[test]
fn props_binary_and_json() {
    let p = SstProps {
        entries: 5,
        tombstones: 2,
        data_blocks: 1,
        smallest_key: vec![0x00, 0xff],
        largest_key: b"zz".to_vec(),
        min_seq: 3,
        max_seq: 8,
        raw_key_bytes: 10,
        raw_value_bytes: 20,
    };
    let raw = encode_props(&p);
    assert_eq!(decode_props(Bytes::from(raw.clone())).unwrap(), p);
    for l in 0..raw.len() {
        assert!(decode_props(Bytes::copy_from_slice(&raw[..l])).is_err());
    }
    let json = serde_json::to_string(&p).unwrap();
    assert!(
        json.contains(r#""smallest_key":"00ff","largest_key":"7a7a""#),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<SstProps>(&json).unwrap(), p);
    assert!(serde_json::from_str::<SstProps>(r#"{"smallest_key":"0g"}"#).is_err());
}

/// A raw index block of `n` entries sharing one `key_len`-byte key (seqs descending),
/// with a single restart point: `n` × `key_len` decoded bytes from
/// `key_len + 37 n` stored ones.
fn shared_key_index(key_len: usize, n: u64) -> Vec<u8> {
    let mut raw = Vec::new();
    let handle = BlockHandle { offset: 0, len: 9 }.encode();
    for seq in (0..n).rev() {
        let (shared, unshared) = if raw.is_empty() {
            (0, key_len)
        } else {
            (key_len, 0)
        };
        raw.extend_from_slice(&(shared as u32).to_le_bytes());
        raw.extend_from_slice(&(unshared as u32).to_le_bytes());
        raw.extend_from_slice(&16u32.to_le_bytes());
        raw.extend_from_slice(&seq.to_le_bytes());
        raw.push(ValueKind::Put as u8);
        raw.resize(raw.len() + unshared, b'k');
        raw.extend_from_slice(&handle);
    }
    raw.extend_from_slice(&0u32.to_le_bytes());
    raw.extend_from_slice(&1u32.to_le_bytes());
    raw
}

/// Regression (mutation tests): such an index decoded to entries × key bytes, quadratic
/// in its size (an 11.9 KB lz4 frame of 2000 entries sharing a 64 KiB key allocated
/// 131 MB). More key bytes than 16 × the raw size is now `Corrupt`.
#[test]
fn index_decoding_more_keys_than_restart_interval_allows_is_corrupt() {
    let ok = shared_key_index(100, 16);
    assert_eq!(
        IndexBlock::decode(Bytes::from(ok)).unwrap().entries().len(),
        16
    );
    let bad = shared_key_index(1000, 40);
    let err = IndexBlock::decode(Bytes::from(bad)).unwrap_err();
    assert!(
        err.is_corrupt() && err.to_string().contains("restart interval"),
        "{err}"
    );
}

/// The writer's own worst case stays accepted: blocks whose last keys share one long
/// prefix, 16 index entries per restart point, each key about as long as the run.
#[test]
fn index_at_the_writer_amplification_limit_opens() {
    let prefix = vec![b'p'; 4096];
    let mut entries = Vec::new();
    for i in 0u8..48 {
        let mut key = prefix.clone();
        key.push(i);
        entries.push(e(&key, 1, ValueKind::Put, b"v"));
    }
    let opts = SstOptions {
        block_bytes: 1,
        ..small_opts(Compression::Lz4)
    };
    let (bytes, props) = build(&entries, opts);
    let file = check_file(&entries, bytes, &props);
    let keys: usize = file.index.entries().iter().map(|e| e.last_key.len()).sum();
    assert!(
        keys > 12 * file.index.size_bytes(),
        "{keys} vs {}",
        file.index.size_bytes()
    );
}

#[test]
fn options_json_defaults() {
    let o: SstOptions = serde_json::from_str(r#"{"compression":"zstd"}"#).unwrap();
    assert_eq!(o.compression, Compression::Zstd);
    assert_eq!(o.block_bytes, 4096);
    assert_eq!(o.restart_interval, 16);
    assert_eq!(o.bloom_bits_per_key, 10);
}

/// seq -> (`is_delete`, value)
type Versions = BTreeMap<u64, (bool, Vec<u8>)>;

fn entries_strategy() -> impl Strategy<Value = Vec<Entry>> {
    let versions = proptest::collection::btree_map(
        any::<u64>(),
        (
            any::<bool>(),
            prop_oneof![
                3 => proptest::collection::vec(any::<u8>(), 0..24),
                1 => Just(Vec::new()),
                1 => proptest::collection::vec(any::<u8>(), 600..1200),
            ],
        ),
        1..4,
    );
    proptest::collection::btree_map(proptest::collection::vec(0u8..8, 0..8), versions, 1..80)
        .prop_map(|m: BTreeMap<Vec<u8>, Versions>| {
            let mut out = Vec::new();
            for (k, vs) in m {
                for (seq, (del, v)) in vs.into_iter().rev() {
                    let kind = if del {
                        ValueKind::Delete
                    } else {
                        ValueKind::Put
                    };
                    let v = if del { Vec::new() } else { v };
                    out.push(e(&k, seq, kind, &v));
                }
            }
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sst_round_trip_prop(entries in entries_strategy(), block_bytes in 32usize..600,
                           ri in 1usize..6, c in 0u8..3) {
        let opts = SstOptions {
            block_bytes,
            restart_interval: ri,
            compression: Compression::from_byte(c).unwrap(),
            bloom_bits_per_key: 10,
        };
        let (bytes, props) = build(&entries, opts);
        check_file(&entries, bytes, &props);
    }
}
