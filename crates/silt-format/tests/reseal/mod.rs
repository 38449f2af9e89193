//! Checksum fix-ups ("re-sealing") for every Silt format, shared by the mutation tests
//! (`tests/mutation.rs`) and the cargo-fuzz targets (`fuzz/`, which include this file
//! by path). Each function recomputes the CRC32Cs of a possibly damaged input where its
//! own (possibly damaged) length and offset fields say they are, so that a decoder's
//! checksum comparison passes and its structural checks see the damage. Inputs too
//! short to hold a checksum are left alone.

#![allow(dead_code)]

use silt_format::block::{decode_block_frame, BLOCK_TRAILER_SIZE};
use silt_format::local_log::{FLAG_PADDED, GROUP_HEADER_SIZE, LOCAL_BLOCK_SIZE};
use silt_format::manifest::MANIFEST_HEADER_SIZE;
use silt_format::sst::{BlockHandle, Footer, IndexBlock};
use silt_format::wal::{WAL_HEADER_SIZE, WAL_TRAILER_SIZE};

const WAL_HEADER_CRC_AT: usize = WAL_HEADER_SIZE - 4;
const WAL_BODY_LEN_AT: usize = WAL_HEADER_CRC_AT - 8;
const WAL_RECORD_COUNT_AT: usize = WAL_BODY_LEN_AT - 4;
const WAL_FIRST_SEQ_AT: usize = 8 + 2 + 8;
const WAL_LAST_SEQ_AT: usize = WAL_FIRST_SEQ_AT + 8;
const GROUP_CRC_AT: usize = GROUP_HEADER_SIZE - 4;

/// Recomputes the CRC of the SST footer in the last [`Footer::SIZE`] bytes of `tail`
/// (over its first 58 bytes).
pub fn reseal_footer(tail: &mut [u8]) {
    if let Some(s) = tail.len().checked_sub(Footer::SIZE) {
        let crc = crc32c::crc32c(&tail[s..s + 58]);
        tail[s + 58..].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Recomputes a manifest's payload CRC; with `fix_len`, first sets `payload_len` to the
/// actual payload length.
pub fn reseal_manifest(m: &mut [u8], fix_len: bool) {
    if m.len() >= MANIFEST_HEADER_SIZE {
        if fix_len {
            let n = (m.len() - MANIFEST_HEADER_SIZE) as u64;
            write_le(m, 10, 4, n);
        }
        let crc = crc32c::crc32c(&m[MANIFEST_HEADER_SIZE..]);
        m[14..18].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Reads `width` (≤ 8) bytes little-endian at `at`.
pub fn read_le(data: &[u8], at: usize, width: usize) -> u64 {
    let mut b = [0u8; 8];
    b[..width].copy_from_slice(&data[at..at + width]);
    u64::from_le_bytes(b)
}

/// Writes the low `width` bytes of `v` little-endian at `at`.
pub fn write_le(data: &mut [u8], at: usize, width: usize, v: u64) {
    data[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
}

/// Recomputes the CRC in the last 4 bytes of a frame; with `fix_len`, also makes the
/// declared length of an uncompressed frame match its payload.
pub fn reseal_frame(frame: &mut [u8], fix_len: bool) {
    let Some(p) = frame.len().checked_sub(BLOCK_TRAILER_SIZE) else {
        return;
    };
    if fix_len && frame[p + 4] == 0 {
        write_le(frame, p, 4, p as u64);
    }
    let crc_at = frame.len() - 4;
    let crc = crc32c::crc32c(&frame[..crc_at]);
    frame[crc_at..].copy_from_slice(&crc.to_le_bytes());
}

/// The frame of `file` at `h`, if it lies inside.
pub fn frame_at(file: &[u8], h: BlockHandle) -> Option<&[u8]> {
    let end = h.offset.checked_add(h.len)?;
    file.get(usize::try_from(h.offset).ok()?..usize::try_from(end).ok()?)
}

/// The frame of `file` at `h`, mutably, if it lies inside.
pub fn frame_at_mut(file: &mut [u8], h: BlockHandle) -> Option<&mut [u8]> {
    let end = h.offset.checked_add(h.len)?;
    file.get_mut(usize::try_from(h.offset).ok()?..usize::try_from(end).ok()?)
}

/// The three metadata handles of the (possibly mutated) footer at the end of `file`.
pub fn footer_handles(file: &[u8]) -> Option<[BlockHandle; 3]> {
    let s = file.len().checked_sub(Footer::SIZE)?;
    let h = |i: usize| BlockHandle {
        offset: read_le(file, s + 16 * i, 8),
        len: read_le(file, s + 16 * i + 8, 8),
    };
    Some([h(0), h(1), h(2)])
}

/// Re-seals every checksum of a mutated SST where its (mutated) footer and index say the
/// frames are: data frames, then the metadata frames, then the footer.
pub fn reseal_sst(file: &mut [u8], fix_len: bool) {
    let Some(handles) = footer_handles(file) else {
        return;
    };
    for h in handles {
        if let Some(f) = frame_at_mut(file, h) {
            reseal_frame(f, fix_len);
        }
    }
    let data: Vec<BlockHandle> = frame_at(file, handles[2])
        .and_then(|f| decode_block_frame(f).ok())
        .and_then(|raw| IndexBlock::decode(raw).ok())
        .map(|i| i.entries().iter().map(|e| e.handle).collect())
        .unwrap_or_default();
    for h in data {
        if let Some(f) = frame_at_mut(file, h) {
            reseal_frame(f, fix_len);
        }
    }
    for h in handles {
        if let Some(f) = frame_at_mut(file, h) {
            reseal_frame(f, fix_len);
        }
    }
    reseal_footer(file);
}

/// Recomputes a WAL segment header's CRC (over its first 46 bytes).
pub fn reseal_wal_header(seg: &mut [u8]) {
    if seg.len() >= WAL_HEADER_SIZE {
        let crc = crc32c::crc32c(&seg[..WAL_HEADER_CRC_AT]);
        seg[WAL_HEADER_CRC_AT..WAL_HEADER_SIZE].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Re-seals a mutated segment: each record's CRC where the (mutated) lengths put it,
/// then the body CRC and the header CRC. `level` 1 also sets `body_len` to the actual
/// body; level 2 also sets `record_count`, `first_seq` and `last_seq` from the records.
pub fn reseal_wal(seg: &mut [u8], level: usize) {
    if seg.len() < WAL_HEADER_SIZE + WAL_TRAILER_SIZE {
        reseal_wal_header(seg);
        return;
    }
    let body_end = seg.len() - WAL_TRAILER_SIZE;
    if level >= 1 {
        write_le(seg, WAL_BODY_LEN_AT, 8, (body_end - WAL_HEADER_SIZE) as u64);
    }
    let body = &mut seg[WAL_HEADER_SIZE..body_end];
    let mut pos = 0;
    let (mut count, mut first, mut last) = (0u64, None, None);
    while pos + 4 <= body.len() {
        let len = read_le(body, pos, 4) as usize;
        let Some(end) = (pos + 4).checked_add(len).filter(|&e| e <= body.len()) else {
            break;
        };
        if len < 16 {
            break;
        }
        let crc = crc32c::crc32c(&body[pos + 4..end - 4]);
        body[end - 4..end].copy_from_slice(&crc.to_le_bytes());
        let s = read_le(body, pos + 4, 8);
        let ops = read_le(body, pos + 12, 4);
        if ops > 0 {
            first.get_or_insert(s);
            last = Some(s.wrapping_add(ops - 1));
        }
        count += 1;
        pos = end;
    }
    let crc = crc32c::crc32c(body);
    seg[body_end..].copy_from_slice(&crc.to_le_bytes());
    if level >= 2 {
        write_le(seg, WAL_RECORD_COUNT_AT, 4, count);
        if let (Some(f), Some(l)) = (first, last) {
            write_le(seg, WAL_FIRST_SEQ_AT, 8, f);
            write_le(seg, WAL_LAST_SEQ_AT, 8, l);
        }
    }
    reseal_wal_header(seg);
}

/// Re-seals every group a scan would visit: walking from offset 0 with the (mutated)
/// headers' lengths and flags, recompute each CRC whose payload fits.
pub fn reseal_local_log(file: &mut [u8]) {
    let mut off = 0usize;
    while off + GROUP_HEADER_SIZE <= file.len() {
        let h = &file[off..off + GROUP_HEADER_SIZE];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let payload_len = read_le(h, 24, 4) as usize;
        let padded = h[3] & FLAG_PADDED != 0;
        let start = off + GROUP_HEADER_SIZE;
        let Some(end) = start.checked_add(payload_len).filter(|&e| e <= file.len()) else {
            break;
        };
        let crc = crc32c::crc32c_append(
            crc32c::crc32c(&file[off..off + GROUP_CRC_AT]),
            &file[start..end],
        );
        file[off + GROUP_CRC_AT..start].copy_from_slice(&crc.to_le_bytes());
        off = if padded {
            end.div_ceil(LOCAL_BLOCK_SIZE) * LOCAL_BLOCK_SIZE
        } else {
            end
        };
    }
}
