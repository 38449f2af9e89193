//! Format versions: WAL 2, SST 2 and local-log 2 added expiring puts
//! ([`ValueKind::PutExpiring`]). Files of version 1 (written before, never holding one) are
//! still read; a version from the future is refused; an expiring put too short to hold its
//! expiry is corrupt in every format.

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use silt_format::local_log::{encode_group, encode_local_record, scan_groups, GROUP_HEADER_SIZE};
use silt_format::sst::{Footer, SstBuilder, SstFile, SstOptions};
use silt_format::wal::{decode_segment, encode_record, encode_segment, WalSegmentHeader};
use silt_format::{encode_expiring, FormatError, ValueKind};

const AT: u64 = 1_796_083_200_000;

/// Rewrites the WAL header's version and re-seals its CRC.
fn wal_with_version(seg: &[u8], version: u16) -> Bytes {
    let mut v = seg.to_vec();
    v[8..10].copy_from_slice(&version.to_le_bytes());
    let crc_at = silt_format::wal::WAL_HEADER_SIZE - 4;
    let crc = crc32c::crc32c(&v[..crc_at]);
    v[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    Bytes::from(v)
}

fn wal_segment(ops: &[(ValueKind, &[u8], &[u8])]) -> Bytes {
    let mut body = Vec::new();
    encode_record(&mut body, 1, ops.iter().copied());
    let header = WalSegmentHeader {
        writer_epoch: 1,
        first_seq: 1,
        last_seq: ops.len() as u64,
        record_count: 1,
        body_len: 0,
    };
    encode_segment(&header, &body)
}

#[test]
fn wal_reads_version_1_and_2_and_refuses_3() -> Result<()> {
    let stored = encode_expiring(AT, b"v");
    let seg = wal_segment(&[
        (ValueKind::Put, b"a", b"1"),
        (ValueKind::PutExpiring, b"b", &stored),
    ]);
    ensure!(
        u16::from_le_bytes([seg[8], seg[9]]) == 2,
        "writes version 2"
    );
    let d = decode_segment(seg.clone())?;
    ensure!(d.records[0].ops[1].kind == ValueKind::PutExpiring);
    ensure!(d.records[0].ops[1].value == stored);

    let v1 = wal_with_version(&wal_segment(&[(ValueKind::Put, b"a", b"1")]), 1);
    ensure!(decode_segment(v1)?.records[0].ops[0].value == "1");
    let v3 = wal_with_version(&seg, 3);
    match decode_segment(v3) {
        Err(FormatError::UnsupportedVersion { version: 3, .. }) => Ok(()),
        other => anyhow::bail!("version 3 decoded as {other:?}"),
    }
}

#[test]
fn an_expiring_put_shorter_than_its_expiry_is_corrupt_in_the_wal() -> Result<()> {
    let seg = wal_segment(&[(ValueKind::PutExpiring, b"b", &[0u8; 7])]);
    let e = decode_segment(seg)
        .err()
        .context("a 7-byte expiring value decoded")?;
    ensure!(e.is_corrupt(), "{e}");
    let seg = wal_segment(&[(ValueKind::PutExpiring, b"b", &[0u8; 8])]);
    ensure!(
        decode_segment(seg).is_ok(),
        "an empty value with its expiry is valid"
    );
    Ok(())
}

fn sst(entries: &[(&[u8], ValueKind, &[u8])]) -> Result<Bytes> {
    let mut b = SstBuilder::new(SstOptions::default());
    for (i, (k, kind, v)) in entries.iter().enumerate() {
        b.add(k, 10 - i as u64, *kind, v)?;
    }
    Ok(b.finish()?.0)
}

/// Rewrites the footer's version and re-seals its CRC.
fn sst_with_version(data: &[u8], version: u16) -> Result<Bytes> {
    let mut v = data.to_vec();
    let at = v.len() - Footer::SIZE;
    let mut footer = Footer::decode(&v[at..], v.len() as u64)?;
    footer.format_version = version;
    v[at..].copy_from_slice(&footer.encode());
    Ok(Bytes::from(v))
}

#[test]
fn sst_reads_version_1_and_2_and_refuses_3() -> Result<()> {
    let stored = encode_expiring(AT, b"v");
    let data = sst(&[
        (b"a", ValueKind::Put, b"1"),
        (b"b", ValueKind::PutExpiring, &stored),
    ])?;
    let f = SstFile::open(data.clone())?;
    let e = f.get(b"b", u64::MAX)?.context("b")?;
    ensure!(e.kind == ValueKind::PutExpiring && e.expires_at() == Some(AT));

    let v1 = sst_with_version(&sst(&[(b"a", ValueKind::Put, b"1")])?, 1)?;
    let f = SstFile::open(v1)?;
    ensure!(f.get(b"a", u64::MAX)?.context("a")?.value == "1");
    match SstFile::open(sst_with_version(&data, 3)?) {
        Err(FormatError::UnsupportedVersion { version: 3, .. }) => {}
        other => anyhow::bail!("version 3 opened as {:?}", other.map(|_| ())),
    }
    // An expiring put too short for its expiry is corrupt when its block is read.
    let bad = sst(&[(b"b", ValueKind::PutExpiring, &[1u8; 5])])?;
    let read = SstFile::open(bad).and_then(|f| f.get(b"b", u64::MAX));
    ensure!(
        read.as_ref().is_err_and(FormatError::is_corrupt),
        "{read:?}"
    );
    Ok(())
}

fn local_group(ops: &[(ValueKind, &[u8], &[u8])], version: u8) -> Vec<u8> {
    let mut payload = Vec::new();
    encode_local_record(&mut payload, ops.iter().copied());
    let mut out = Vec::new();
    encode_group(&mut out, 1, 1, ops.len() as u64, 1, &payload, true);
    out[2] = version;
    let crc_at = GROUP_HEADER_SIZE - 4;
    // The header CRC covers the header before it and the payload.
    let mut h = crc32c::crc32c(&out[..crc_at]);
    h = crc32c::crc32c_append(h, &payload);
    out[crc_at..crc_at + 4].copy_from_slice(&h.to_le_bytes());
    out
}

#[test]
fn local_log_reads_version_1_and_2_and_stops_at_3() -> Result<()> {
    let stored = encode_expiring(AT, b"v");
    let ops: [(ValueKind, &[u8], &[u8]); 2] = [
        (ValueKind::Put, b"a", b"1"),
        (ValueKind::PutExpiring, b"b", &stored),
    ];
    let (groups, ..) = scan_groups(&local_group(&ops, 2))?;
    ensure!(groups.len() == 1, "version 2: {} groups", groups.len());
    ensure!(groups[0].records[0].ops[1].value == stored);
    let (groups, ..) = scan_groups(&local_group(&ops[..1], 1))?;
    ensure!(groups.len() == 1, "version 1: {} groups", groups.len());
    let (groups, ..) = scan_groups(&local_group(&ops, 3))?;
    ensure!(groups.is_empty(), "a version-3 group was read");
    let short: [(ValueKind, &[u8], &[u8]); 1] = [(ValueKind::PutExpiring, b"b", &[0u8; 3])];
    ensure!(scan_groups(&local_group(&short, 2)).is_err_and(|e| e.is_corrupt()));
    Ok(())
}
