//! Mutation tests that get past the checksums.
//!
//! `src/fuzz_tests.rs` feeds arbitrary and mutated bytes to the decoders, but a mutated
//! input almost always stops at a CRC32C check. Here every mutated input is *re-sealed*
//! first: a fix-up function per format recomputes each checksum it covers (and, in some
//! cases, the declared lengths), so the decoder's checksum passes and the structural
//! checks behind it see the damage. Frame and SST targets also mutate one level down
//! (the raw block behind a frame; one SST component: a data block, the filter, props,
//! index, or the list of blocks itself) and re-encode it with valid framing; the WAL
//! fix-up can also rewrite the header's length, record count and seq span to match.
//!
//! Decoders covered: `Block::decode` (+ iteration and seeks), `decode_block_frame`,
//! `Footer::decode`, `IndexBlock::decode`, `BloomFilter::decode`, `decode_props`,
//! `SstFile::open` (+ `iter`, `get`, `read_block`), `decode_segment_header`,
//! `decode_segment` (which reaches `decode_record`/`decode_ops`), `decode_manifest`,
//! `decode_group_header`, `check_group`, `decode_group_records` and `scan_groups`.
//!
//! Mutations: bit flips; bytes set to 0, 0xff, 0x7f, 0x80, ±1; `u32`/`u64` fields set to
//! 0, 1, 0x7f.., 0x80.., MAX, their value ± 1, the input length ± 1 or the remaining
//! length ± 1; truncation; extension; insertion; duplication, removal and copying of
//! chunks; for manifests, JSON tokens spliced in.
//!
//! # What is checked
//! 1. No panic. A panic is caught only to print the reproduction data, then the test
//!    fails.
//! 2. Bounded allocation. This binary's `#[global_allocator]` counts, on the decoding
//!    thread only and only while a decode runs, the peak of live bytes and the largest
//!    single request. Both must stay within the bound of that decoder, a multiple of the
//!    input length plus [`SLACK`] (error messages and small fixed structures):
//!
//!    | decoder | bound (peak live bytes) | why |
//!    |---|---|---|
//!    | `Block::decode` + iter/seek | 3 × len | no copy of the block; the iterator's key buffer (≤ len, doubling → 2 ×) and one entry's key copy (≤ len) |
//!    | `decode_block_frame` | declared size | compression 0: the payload copy; lz4/zstd: `uncompressed_len`, and only when the reader's caps accept it (≤ 128 MiB, lz4 ≤ 255 × payload + 16, zstd ≤ 32768 × payload); a rejected claim allocates nothing |
//!    | `Footer::decode`, `BloomFilter::decode` | 0 | they copy nothing |
//!    | `decode_props` | 1 × raw | the two keys |
//!    | `IndexBlock::decode` + find | 23 × raw | retained keys ≤ 16 × raw (capped by the decoder: restart interval 16), entries 56 B per ≥ 37 encoded bytes with doubling (≈ 3 ×), the iteration (3 ×), one spare |
//!    | `SstFile::open` | frame bounds of filter + 2 × props + 24 × index | the rows above |
//!    | `SstFile` iter / get / `read_block` | 3 × (largest data frame's declared size) | one block at a time |
//!    | `decode_segment_header`, `decode_group_header`, `check_group` | 0 | |
//!    | `decode_segment` | 10 × len | a `WalOp` is 72 B per ≥ 9 encoded bytes (8 ×), a `WalRecord` 32 B per ≥ 20 bytes (1.6 ×) |
//!    | `decode_group_records` | 11 × len | ops 8 ×, records 32 B per ≥ 13 bytes (2.5 ×) |
//!    | `scan_groups` | 12 × len | the payload copies (1 ×) + the records |
//!    | `decode_manifest` | 128 × len | `serde_json` builds a `Value` tree for unknown `extra` fields: `{"":0},` (7 bytes) in an array becomes a 32-byte `Value` plus a ~632-byte B-tree leaf (~100 ×); see `manifest_worst_case_amplification` |
//!
//!    libzstd's own context is allocated by C `malloc`, which this allocator does not see.
//! 3. The mutations reach past the checksums: each target prints how many inputs were
//!    accepted, stopped at a checksum, or rejected by a structural check, and asserts
//!    that most were not stopped at a checksum.
//!
//! # Modes
//! * Short (default, CI): 8,000 to 20,000 inputs per decoder (about 150,000 in all),
//!   about 3 s in a debug build on 2 cores.
//! * Long: `SILT_LONG=1` runs 1,000,000 inputs per decoder; use a release build:
//!   `SILT_LONG=1 cargo nextest run -p silt-format --release --test mutation --no-capture`
//!   (or `cargo test -p silt-format --release --test mutation -- --nocapture`).
//!
//! Other knobs: `SILT_CASES=N` sets the number of inputs per decoder, `SILT_SEED=S`
//! the base seed (default fixed, so runs are deterministic), and `SILT_CASE=I` runs
//! only case `I` of that seed (to reproduce a failure, which prints seed, case, the
//! mutations applied and the input as hex). `SILT_FUZZ_CORPUS=dir` also writes each
//! decoder's valid seeds to `dir/<decoder>/` as a starting corpus for the cargo-fuzz
//! targets in `fuzz/` (same names; see `fuzz/README.md`).
//!
//! The checksum fix-ups live in `tests/reseal/mod.rs`, shared with those targets.

// The counting allocator is an `unsafe impl GlobalAlloc`, and its out-of-memory report
// reads the input through a raw pointer; nothing else here uses `unsafe`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use proptest::prelude::Rng;
use proptest::test_runner::{RngAlgorithm, TestRng};
use silt_format::block::{
    decode_block_frame, encode_block_frame, Block, BlockBuilder, BlockIter, BLOCK_TRAILER_SIZE,
    MAX_BLOCK_SIZE,
};
use silt_format::bloom::{BloomBuilder, BloomFilter};
use silt_format::local_log::{
    check_group, decode_group_header, decode_group_records, encode_group, encode_local_record,
    scan_groups, GroupEnd, GroupHeader, FLAG_PADDED, GROUP_HEADER_SIZE,
};
use silt_format::manifest::{
    decode_manifest, encode_manifest, Manifest, SortedRun, SstInfo, MANIFEST_HEADER_SIZE,
};
use silt_format::sst::{
    decode_props, BlockHandle, Footer, IndexBlock, SstBuilder, SstFile, SstOptions,
    SST_FORMAT_VERSION,
};
use silt_format::wal::{
    decode_segment, decode_segment_header, encode_record, encode_segment, WalSegmentHeader,
    WAL_HEADER_SIZE,
};
use silt_format::{Compression, ValueKind};

mod reseal;

use reseal::*;

// ---------------------------------------------------------------------------------------
// Counting allocator
// ---------------------------------------------------------------------------------------

/// Constant part of every bound: error messages (`format!`), a `Bytes` shared header,
/// small fixed vectors. Far below what an allocation from a corrupt length would ask.
const SLACK: usize = 64 << 10;

struct Counting;

#[global_allocator]
static GLOBAL: Counting = Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    /// The input being decoded (pointer, length) and its case seed, for the report
    /// printed if an allocation fails (the process then aborts).
    static CURRENT: Cell<(usize, usize, u64)> = const { Cell::new((0, 0, 0)) };
    /// (base seed, case index) of the input being decoded.
    static CASE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

fn record(delta: isize, request: usize) {
    let _ = TRACKING.try_with(|t| {
        if t.get() {
            let live = LIVE.get() + delta;
            LIVE.set(live);
            if live > PEAK.get() {
                PEAK.set(live);
            }
            if request > LARGEST.get() {
                LARGEST.set(request);
            }
        }
    });
}

/// Called when `System` cannot satisfy a request made during a decode: Rust aborts
/// right after, so say which input did it first.
fn report_failed_alloc(size: usize) {
    let Ok(true) = TRACKING.try_with(|t| t.replace(false)) else {
        return;
    };
    let (ptr, len, seed) = CURRENT.get();
    let (base, case) = CASE.get();
    eprintln!(
        "mutation test: an allocation of {size} bytes failed while decoding case {case} of base seed {base:#x} \
         (case seed {seed:#018x}); reproduce with SILT_SEED={base:#x} SILT_CASE={case}; input ({len} bytes):"
    );
    if ptr != 0 {
        // SAFETY: `ptr`/`len` describe the input slice the runner holds alive for the
        // whole decode (set in `Meter::measure`, cleared after it).
        let input = unsafe { std::slice::from_raw_parts(ptr as *const u8, len) };
        for b in input {
            eprint!("{b:02x}");
        }
        eprintln!();
    }
}

// SAFETY: every method forwards to `System` unchanged; the bookkeeping only touches
// const-initialised thread-local `Cell`s, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            report_failed_alloc(layout.size());
        } else {
            record(layout.size() as isize, layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            report_failed_alloc(layout.size());
        } else {
            record(layout.size() as isize, layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) };
        record(-(layout.size() as isize), 0);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            report_failed_alloc(new_size);
        } else {
            record(new_size as isize - layout.size() as isize, new_size);
        }
        p
    }
}

/// Measures the phases of one decode and remembers the first bound exceeded.
struct Meter<'a> {
    input: &'a [u8],
    seed: u64,
    violation: Option<String>,
    /// Largest peak / bound seen, in per mille, and that peak.
    worst_permille: usize,
    worst_peak: usize,
}

impl Meter<'_> {
    /// Runs `f` with allocation tracking on; its peak live bytes and largest single
    /// request must not exceed `bound`.
    fn measure<R>(&mut self, phase: &str, bound: usize, f: impl FnOnce() -> R) -> R {
        CURRENT.set((self.input.as_ptr() as usize, self.input.len(), self.seed));
        LIVE.set(0);
        PEAK.set(0);
        LARGEST.set(0);
        TRACKING.set(true);
        let out = f();
        TRACKING.set(false);
        CURRENT.set((0, 0, 0));
        let peak = PEAK.get().max(0) as usize;
        let largest = LARGEST.get();
        let used = peak.max(largest);
        let permille = used.saturating_mul(1000) / bound.max(1);
        if permille > self.worst_permille {
            self.worst_permille = permille;
            self.worst_peak = used;
        }
        if used > bound && self.violation.is_none() {
            self.violation = Some(format!(
                "{phase}: peak live {peak} bytes, largest request {largest} bytes, bound {bound} bytes"
            ));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// Deterministic randomness and the mutation engine
// ---------------------------------------------------------------------------------------

const DEFAULT_SEED: u64 = 0x5117_f0e2_a7c0_ffee;

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn rng_for(case_seed: u64) -> TestRng {
    let mut s = [0u8; 16];
    s[..8].copy_from_slice(&case_seed.to_le_bytes());
    s[8..].copy_from_slice(&splitmix(case_seed).to_le_bytes());
    TestRng::from_seed(RngAlgorithm::XorShift, &s)
}

/// A mutation context: the RNG and a log of what was done (printed on failure).
struct Ctx {
    rng: TestRng,
    log: String,
}

impl Ctx {
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.rng.next_u64() % n as u64) as usize
        }
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn byte(&mut self) -> u8 {
        self.rng.next_u64() as u8
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn note(&mut self, args: std::fmt::Arguments<'_>) {
        let _ = self.log.write_fmt(args);
        self.log.push_str("; ");
    }

    /// A position in `0..len`: uniform, or (half the time) the next offset at or after a
    /// uniform one whose `u32` looks like a length or offset (1..=len).
    fn position(&mut self, data: &[u8]) -> usize {
        let start = self.below(data.len());
        if self.chance(2) {
            let end = (start + 64).min(data.len().saturating_sub(3));
            for i in start..end {
                let v = u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
                if v >= 1 && v as usize <= data.len() {
                    return i;
                }
            }
        }
        start
    }
}

/// One random mutation of `data`.
fn mutate_once(cx: &mut Ctx, data: &mut Vec<u8>) {
    let len = data.len();
    if len == 0 {
        let n = 1 + cx.below(64);
        data.extend((0..n).map(|_| cx.byte()));
        cx.note(format_args!("fill {n} random bytes"));
        return;
    }
    match cx.below(12) {
        0 | 1 => {
            let at = cx.below(len);
            let bit = cx.below(8);
            data[at] ^= 1 << bit;
            cx.note(format_args!("flip bit {bit} of byte {at}"));
        }
        2 => {
            let at = cx.position(data);
            let cur = data[at];
            let v = *cx.pick(&[
                0,
                0xff,
                0x7f,
                0x80,
                1,
                2,
                cur.wrapping_add(1),
                cur.wrapping_sub(1),
            ]);
            data[at] = v;
            cx.note(format_args!("byte {at} = {v:#04x}"));
        }
        3..=5 => {
            let width = if cx.chance(3) { 8 } else { 4 };
            if len < width {
                data.push(cx.byte());
                return;
            }
            let at = cx.position(data).min(len - width);
            let cur = read_le(data, at, width);
            let max = if width == 8 {
                u64::MAX
            } else {
                u64::from(u32::MAX)
            };
            let half = max / 2;
            let (l, rest) = (len as u64, (len - at) as u64);
            let small = cx.rng.next_u64() % 64;
            let v = *cx.pick(&[
                0,
                1,
                half,
                half + 1,
                max,
                max - 1,
                cur.wrapping_add(1) & max,
                cur.wrapping_sub(1) & max,
                l,
                l + 1,
                l - 1,
                rest,
                rest + 1,
                rest - 1,
                small,
            ]);
            write_le(data, at, width, v);
            cx.note(format_args!(
                "u{} at {at} = {v:#x} (was {cur:#x})",
                width * 8
            ));
        }
        6 => {
            let keep = cx.below(len);
            data.truncate(keep);
            cx.note(format_args!("truncate to {keep}"));
        }
        7 => {
            let n = 1 + cx.below(32);
            let fill = cx.below(3);
            for _ in 0..n {
                let b = match fill {
                    0 => 0,
                    1 => 0xff,
                    _ => cx.byte(),
                };
                data.push(b);
            }
            cx.note(format_args!("extend by {n} (fill kind {fill})"));
        }
        8 => {
            let at = cx.below(len + 1);
            let n = 1 + cx.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| cx.byte()).collect();
            data.splice(at..at, bytes);
            cx.note(format_args!("insert {n} random bytes at {at}"));
        }
        9 => {
            let (a, n) = chunk(cx, len);
            let copy = data[a..a + n].to_vec();
            let at = cx.below(len + 1);
            data.splice(at..at, copy);
            cx.note(format_args!("duplicate {a}..{} at {at}", a + n));
        }
        10 => {
            let (a, n) = chunk(cx, len);
            data.drain(a..a + n);
            cx.note(format_args!("remove {a}..{}", a + n));
        }
        _ => {
            let (a, n) = chunk(cx, len);
            let copy = data[a..a + n].to_vec();
            let at = cx.below(len - n + 1);
            data[at..at + n].copy_from_slice(&copy);
            cx.note(format_args!("copy {a}..{} over {at}", a + n));
        }
    }
}

/// A chunk `(start, len)` of a `len`-byte input, mostly short.
fn chunk(cx: &mut Ctx, len: usize) -> (usize, usize) {
    let max = if cx.chance(4) { len } else { len.min(32) };
    let n = 1 + cx.below(max);
    (cx.below(len - n + 1), n)
}

/// One to five mutations (one half the time).
fn mutate(cx: &mut Ctx, data: &mut Vec<u8>) {
    let mut n = 1;
    while n < 5 && cx.chance(2) {
        n += 1;
    }
    for _ in 0..n {
        mutate_once(cx, data);
    }
}

fn hex(data: &[u8]) -> String {
    silt_format::hex::encode(data)
}

// ---------------------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------------------

/// How far a decode got.
enum Verdict {
    Accepted,
    Rejected(String),
}

impl<E: std::fmt::Display> From<Result<(), E>> for Verdict {
    fn from(r: Result<(), E>) -> Self {
        match r {
            Ok(()) => Verdict::Accepted,
            Err(e) => Verdict::Rejected(e.to_string()),
        }
    }
}

struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    short_cases: usize,
    /// Builds one mutated, re-sealed input from a valid seed.
    make: fn(&mut Ctx, &[u8]) -> Vec<u8>,
    /// Decodes it, measuring allocation with the meter.
    exercise: fn(&[u8], &mut Meter<'_>) -> Verdict,
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Fuzz targets whose input starts with a variant byte (which fix-up to apply).
const FUZZ_VARIANT_BYTE: &[&str] = &[
    "block_frame",
    "sst_index",
    "bloom",
    "sst_props",
    "sst_file",
    "wal_segment",
    "manifest",
];

/// With `SILT_FUZZ_CORPUS=dir`, writes the valid seeds of `t` to `dir/<name>/` in the
/// input format of the cargo-fuzz target of the same name (`fuzz/`).
fn write_fuzz_corpus(t: &Target) -> Result<()> {
    let Ok(dir) = std::env::var("SILT_FUZZ_CORPUS") else {
        return Ok(());
    };
    let dir = std::path::Path::new(&dir).join(t.name);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating the corpus directory {}", dir.display()))?;
    for (i, seed) in t.seeds.iter().enumerate() {
        let mut data = Vec::new();
        if FUZZ_VARIANT_BYTE.contains(&t.name) {
            data.push(1);
        }
        data.extend_from_slice(seed);
        let path = dir.join(format!("seed-{i:03}"));
        std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[expect(
    clippy::needless_pass_by_value,
    reason = "each test builds its target inline and hands it over"
)]
fn run(t: Target) -> Result<()> {
    write_fuzz_corpus(&t)?;
    let long = std::env::var("SILT_LONG").is_ok_and(|v| v == "1");
    let cases =
        env_u64("SILT_CASES").map_or(if long { 1_000_000 } else { t.short_cases }, |n| n as usize);
    let base = env_u64("SILT_SEED").unwrap_or(DEFAULT_SEED);
    let only = env_u64("SILT_CASE");
    assert!(!t.seeds.is_empty());
    let started = Instant::now();
    let (mut accepted, mut crc_stopped, mut rejected) = (0u64, 0u64, 0u64);
    let (mut worst_permille, mut worst_peak) = (0usize, 0usize);
    let mut by_check = std::collections::BTreeMap::new();
    let range = match only {
        Some(i) => i..i + 1,
        None => 0..cases as u64,
    };
    for case in range {
        let case_seed = splitmix(base ^ name_hash(t.name) ^ splitmix(case));
        CASE.set((base, case));
        let mut cx = Ctx {
            rng: rng_for(case_seed),
            log: String::new(),
        };
        let seed_input = &t.seeds[cx.below(t.seeds.len())];
        let input = (t.make)(&mut cx, seed_input);
        let mut meter = Meter {
            input: &input,
            seed: case_seed,
            violation: None,
            worst_permille: 0,
            worst_peak: 0,
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| (t.exercise)(&input, &mut meter)));
        TRACKING.set(false);
        let fail = |why: String| -> ! {
            panic!(
                "{name}: {why}\n  base seed {base:#x}, case {case} (case seed {case_seed:#018x}); reproduce with \
                 SILT_SEED={base:#x} SILT_CASE={case} cargo nextest run -p silt-format --test mutation {name}\n  \
                 mutations: {log}\n  input ({len} bytes): {hex}",
                name = t.name,
                log = cx.log,
                len = input.len(),
                hex = hex(&input),
            )
        };
        match outcome {
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| {
                        p.downcast_ref::<&str>()
                            .map(std::string::ToString::to_string)
                    })
                    .unwrap_or_default();
                fail(format!("decoder panicked: {msg}"));
            }
            Ok(v) => {
                if let Some(why) = meter.violation.take() {
                    fail(format!("allocation bound exceeded: {why}"));
                }
                match v {
                    Verdict::Accepted => accepted += 1,
                    Verdict::Rejected(e) if e.contains("checksum") => crc_stopped += 1,
                    Verdict::Rejected(e) => {
                        rejected += 1;
                        // "corrupt sst index: ..." -> "corrupt sst index"
                        let what = e.split(':').next().unwrap_or_default();
                        let what = what.trim_end_matches(|c: char| c.is_ascii_digit() || c == ' ');
                        *by_check.entry(what.to_string()).or_insert(0u64) += 1;
                    }
                }
            }
        }
        if meter.worst_permille > worst_permille {
            worst_permille = meter.worst_permille;
            worst_peak = meter.worst_peak;
        }
    }
    let total = (accepted + crc_stopped + rejected).max(1);
    let mut checks: Vec<(u64, String)> = by_check.into_iter().map(|(k, n)| (n, k)).collect();
    checks.sort_by(|a, b| b.cmp(a));
    let checks: Vec<String> = checks
        .iter()
        .take(8)
        .map(|(n, k)| format!("{k} {n}"))
        .collect();
    eprintln!(
        "{}: {} inputs in {:.2?}: {accepted} accepted, {rejected} rejected by a structural check, \
         {crc_stopped} stopped at a checksum ({:.1}%); worst allocation {worst_peak} bytes = {}.{}% of its bound",
        t.name,
        total,
        started.elapsed(),
        crc_stopped as f64 * 100.0 / total as f64,
        worst_permille / 10,
        worst_permille % 10,
    );
    eprintln!("  rejected by: {}", checks.join(", "));
    if only.is_none() && total >= 100 {
        assert!(
            crc_stopped * 5 <= total,
            "{}: {crc_stopped} of {total} inputs stopped at a checksum: the fix-up does not re-seal",
            t.name
        );
        assert!(
            rejected > 0,
            "{}: no input reached a structural check",
            t.name
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------

/// Keys and seqs that seeks and gets probe with, besides the ones found in the input.
const PROBES: &[(&[u8], u64)] = &[
    (b"", 0),
    (b"", u64::MAX),
    (b"k", 3),
    (b"k07", 93),
    (b"k07", u64::MAX),
    (b"key-0003", 7),
    (b"zz", 0),
    (b"\xff\xff", 1),
];

/// Drains an iterator of results, returning the first error.
fn walk<T, E>(it: impl Iterator<Item = Result<T, E>>) -> Result<usize, E> {
    let mut n = 0;
    for item in it {
        item?;
        n += 1;
    }
    Ok(n)
}

/// Iterates a block fully and seeks it at the probes and at its own first and last keys.
fn exercise_block(block: &Block) -> Result<(), String> {
    let mut first = None;
    let mut last = None;
    for e in block {
        let e = e.map_err(|e| e.to_string())?;
        if first.is_none() {
            first = Some((e.key.clone(), e.seq));
        }
        last = Some((e.key, e.seq));
    }
    let own = [first, last].into_iter().flatten();
    let mut seeks: Vec<(Bytes, u64)> = own.collect();
    seeks.extend(PROBES.iter().map(|(k, s)| (Bytes::from_static(k), *s)));
    for (k, s) in seeks {
        let it: BlockIter = block.iter_from(&k, s);
        walk(it.take(4)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// What `decode_block_frame` may allocate for `frame`: the payload copy (compression 0)
/// or `uncompressed_len` when the reader's caps let the claim through; nothing else.
fn frame_cap(frame: &[u8]) -> usize {
    let Some(p) = frame.len().checked_sub(BLOCK_TRAILER_SIZE) else {
        return 0;
    };
    let ulen = read_le(frame, p, 4) as usize;
    if ulen > MAX_BLOCK_SIZE {
        return 0;
    }
    match frame[p + 4] {
        0 => p,
        1 if ulen <= p * 255 + 16 => ulen,
        2 if ulen <= p * 32768 => ulen,
        _ => 0,
    }
}

fn compression_of(frame: &[u8]) -> Compression {
    match frame.get(frame.len().wrapping_sub(5)) {
        Some(1) => Compression::Lz4,
        Some(2) => Compression::Zstd,
        _ => Compression::None,
    }
}

/// A frame input: either its bytes mutated and re-sealed (CRC, and half the time the
/// declared length), or the raw block behind it mutated and framed again with the same
/// compression.
fn make_frame(cx: &mut Ctx, seed: &[u8]) -> Vec<u8> {
    if cx.chance(2) {
        let mut f = seed.to_vec();
        mutate(cx, &mut f);
        let fix_len = cx.chance(2);
        reseal_frame(&mut f, fix_len);
        cx.note(format_args!("reseal frame (fix_len {fix_len})"));
        f
    } else {
        let mut raw = decode_block_frame(seed).expect("seed frame").to_vec();
        mutate(cx, &mut raw);
        let c = compression_of(seed);
        cx.note(format_args!("reframe raw with {c:?}"));
        encode_block_frame(&raw, c)
    }
}

// ---------------------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------------------

type Ent = (Vec<u8>, u64, ValueKind, Vec<u8>);

fn ent(key: &[u8], seq: u64, kind: ValueKind, value: &[u8]) -> Ent {
    (key.to_vec(), seq, kind, value.to_vec())
}

fn entry_sets() -> Vec<Vec<Ent>> {
    use ValueKind::{Delete, Put};
    let numbered: Vec<Ent> = (0u32..20)
        .map(|i| {
            ent(
                format!("k{i:02}").as_bytes(),
                100 - u64::from(i),
                Put,
                b"value",
            )
        })
        .collect();
    let versions: Vec<Ent> = (0u64..12)
        .map(|i| {
            let kind = if i % 3 == 0 { Delete } else { Put };
            ent(b"key-0003", 50 - i, kind, &[i as u8; 4])
        })
        .chain((0u8..6).map(|i| ent(&[b'k', b'z', i], 9, Put, b"")))
        .collect();
    let repetitive: Vec<Ent> = (0u32..40)
        .map(|i| {
            ent(
                format!("key-{i:04}").as_bytes(),
                7,
                Put,
                &b"abcabcabcabcabcabcabcabcabcabcabc"[..(i % 30 + 3) as usize],
            )
        })
        .collect();
    let odd = vec![
        ent(b"", 3, Put, b"empty key"),
        ent(b"\0", u64::MAX, Delete, b""),
        ent(&[0xff; 40], 1, Put, &[0u8; 100]),
    ];
    vec![numbered, versions, repetitive, odd]
}

fn build_block(restart: usize, entries: &[Ent]) -> Vec<u8> {
    let mut b = BlockBuilder::new(restart);
    for (k, s, kind, v) in entries {
        b.add(k, *s, *kind, v);
    }
    b.finish()
}

fn block_seeds() -> Vec<Vec<u8>> {
    let mut out = vec![BlockBuilder::new(16).finish()];
    for set in entry_sets() {
        for restart in [1, 2, 16] {
            out.push(build_block(restart, &set));
        }
    }
    out
}

/// A valid ~300 KiB block of compressible entries.
fn big_block() -> Vec<u8> {
    let mut b = BlockBuilder::new(16);
    for i in 0u32..3000 {
        let v = format!("value {i} {}", "abcdefgh".repeat((i % 20) as usize));
        b.add(
            format!("key-{i:06}").as_bytes(),
            1,
            ValueKind::Put,
            v.as_bytes(),
        );
    }
    let raw = b.finish();
    assert!(raw.len() > 200_000);
    raw
}

fn build_sst(opts: SstOptions, entries: &[Ent]) -> Vec<u8> {
    let mut b = SstBuilder::new(opts);
    for (k, s, kind, v) in entries {
        b.add(k, *s, *kind, v).expect("seed entries are ordered");
    }
    b.finish().expect("non-empty").0.to_vec()
}

fn sst_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let sets = entry_sets();
    for (i, set) in sets.iter().enumerate() {
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
            out.push(build_sst(
                SstOptions {
                    block_bytes: if i == 2 { 256 } else { 64 },
                    restart_interval: 1 + i * 3,
                    compression,
                    bloom_bits_per_key: if i == 1 { 0 } else { 10 },
                },
                set,
            ));
        }
    }
    out.push(build_sst(SstOptions::default(), &sets[0][..1]));
    out
}

/// The frames of a valid SST: (filter, props, index, data frames).
fn sst_frames(file: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<Vec<u8>>) {
    let f = SstFile::open(Bytes::copy_from_slice(file)).expect("seed sst");
    let get = |h: BlockHandle| file[h.offset as usize..(h.offset + h.len) as usize].to_vec();
    let data = f.index.entries().iter().map(|e| get(e.handle)).collect();
    (
        get(f.footer.filter),
        get(f.footer.props),
        get(f.footer.index),
        data,
    )
}

/// A WAL record for the seeds: first seq and ops.
type WalRec<'a> = (u64, Vec<(ValueKind, &'a [u8], &'a [u8])>);

fn wal_seeds() -> Vec<Vec<u8>> {
    use ValueKind::{Delete, Put};
    let seg = |first: u64, recs: &[WalRec<'_>]| {
        let mut body = Vec::new();
        let mut last = first;
        for (s, ops) in recs {
            encode_record(&mut body, *s, ops.iter().copied());
            if !ops.is_empty() {
                last = s + ops.len() as u64 - 1;
            }
        }
        let h = WalSegmentHeader {
            writer_epoch: 7,
            first_seq: first,
            last_seq: last,
            record_count: recs.len() as u32,
            body_len: 0,
        };
        encode_segment(&h, &body).to_vec()
    };
    vec![
        seg(0, &[]),
        seg(
            1,
            &[(1, vec![(Put, b"k", b"v")]), (2, vec![(Delete, b"k", b"")])],
        ),
        seg(
            10,
            &[
                (
                    10,
                    vec![(Put, b"a", b"1"), (Put, b"b", b"22"), (Delete, b"c", b"")],
                ),
                (13, vec![]),
                (13, vec![(Put, b"", b""), (Put, &[0xff; 30], &[7; 50])]),
                (20, vec![(Put, b"key-0003", b"value")]),
            ],
        ),
    ]
}

fn manifest_seeds() -> Vec<Vec<u8>> {
    use silt_format::sst::SstProps;
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
    extra.insert("future".into(), serde_json::json!({"x": [1, 2], "s": "t"}));
    let full = Manifest {
        id: 12,
        writer_epoch: 3,
        writer_nonce: 0x5eed,
        wal_replay_from: 40,
        last_flushed_seq: 9,
        next_seq_hint: 15,
        l0: vec![
            SstInfo {
                id: "01J0000000000000000000000A".into(),
                size: 4096,
                props: props.clone(),
            },
            SstInfo::default(),
        ],
        runs: vec![SortedRun {
            id: 1,
            ssts: vec![SstInfo {
                id: "01J0000000000000000000000B".into(),
                size: 1 << 40,
                props,
            }],
        }],
        extra,
    };
    vec![
        encode_manifest(&Manifest::default()),
        encode_manifest(&full),
    ]
}

type Rec = Vec<(ValueKind, Vec<u8>, Vec<u8>)>;

/// Appends a local-log group of `recs` (ops take consecutive seqs from `first`).
fn push_group(file: &mut Vec<u8>, gen: u32, first: u64, recs: &[Rec], padded: bool) -> u64 {
    let mut payload = Vec::new();
    let mut ops = 0u64;
    for r in recs {
        let (_, c) = encode_local_record(
            &mut payload,
            r.iter()
                .map(|(k, key, v)| (*k, key.as_slice(), v.as_slice())),
        );
        ops += c as u64;
    }
    let last = first + ops - 1;
    encode_group(file, gen, first, last, recs.len() as u32, &payload, padded);
    last
}

fn local_log_seeds() -> Vec<Vec<u8>> {
    use ValueKind::{Delete, Put};
    let put = |k: &[u8], v: &[u8]| vec![(Put, k.to_vec(), v.to_vec())];
    let mut packed = Vec::new();
    let mut s = 1;
    for i in 0u32..6 {
        let recs = vec![
            put(&i.to_le_bytes(), b"value"),
            vec![
                (Put, b"b".to_vec(), b"2".to_vec()),
                (Delete, b"c".to_vec(), Vec::new()),
            ],
        ];
        s = push_group(&mut packed, 2, s, &recs, false) + 1;
    }
    packed.resize(packed.len() + 64, 0);
    let mut sparse = Vec::new();
    push_group(&mut sparse, 1, 5, &[put(b"k", b"v")], true);
    push_group(
        &mut sparse,
        1,
        6,
        &[put(b"k2", &[9; 300]), put(b"", b"")],
        true,
    );
    push_group(&mut sparse, 3, 100, &[put(b"new", b"y")], true);
    // A group straddling a block boundary in packed mode, then an older generation.
    let mut mixed = vec![0u8; 0];
    push_group(&mut mixed, 4, 1, &[put(b"x", &[1; 4070])], false);
    push_group(&mut mixed, 4, 2, &[put(b"y", b"z")], false);
    push_group(&mut mixed, 3, 9, &[put(b"old", b"o")], true);
    vec![packed, sparse, mixed]
}

// ---------------------------------------------------------------------------------------
// Block and frame targets
// ---------------------------------------------------------------------------------------

fn make_plain(cx: &mut Ctx, seed: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    mutate(cx, &mut d);
    d
}

fn ex_block(input: &[u8], m: &mut Meter<'_>) -> Verdict {
    let raw = Bytes::copy_from_slice(input);
    m.measure("Block::decode + iteration", 3 * input.len() + SLACK, || {
        let block = Block::decode(raw).map_err(|e| e.to_string())?;
        exercise_block(&block)
    })
    .into()
}

#[test]
fn block_decode() -> Result<()> {
    run(Target {
        name: "block",
        seeds: block_seeds(),
        short_cases: 20000,
        make: make_plain,
        exercise: ex_block,
    })
}

fn frame_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for raw in block_seeds() {
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            out.push(encode_block_frame(&raw, c));
        }
    }
    // Highly compressible: lz4 and zstd near their best ratios.
    let zeros = vec![0u8; 20_000];
    out.push(encode_block_frame(&zeros, Compression::Lz4));
    out.push(encode_block_frame(&zeros, Compression::Zstd));
    // Large enough (300 KiB) that a decoder over-allocating its output shows above SLACK.
    let big = big_block();
    out.push(encode_block_frame(&big, Compression::Lz4));
    out.push(encode_block_frame(&big, Compression::Zstd));
    assert!(out.iter().any(|f| compression_of(f) == Compression::Lz4));
    assert!(out.iter().any(|f| compression_of(f) == Compression::Zstd));
    out
}

fn ex_frame(input: &[u8], m: &mut Meter<'_>) -> Verdict {
    let raw = m.measure("decode_block_frame", frame_cap(input) + SLACK, || {
        decode_block_frame(input)
    });
    let raw = match raw {
        Ok(r) => r,
        Err(e) => return Verdict::Rejected(e.to_string()),
    };
    let len = raw.len();
    m.measure("Block::decode + iteration", 3 * len + SLACK, || {
        let block = Block::decode(raw).map_err(|e| e.to_string())?;
        exercise_block(&block)
    })
    .into()
}

#[test]
fn block_frame_decode() -> Result<()> {
    run(Target {
        name: "block_frame",
        seeds: frame_seeds(),
        short_cases: 12000,
        make: make_frame,
        exercise: ex_frame,
    })
}

// ---------------------------------------------------------------------------------------
// SST component targets
// ---------------------------------------------------------------------------------------

/// Footer inputs: `file_len u64 | tail`. The tail is mutated and its CRC re-sealed; the
/// file length is kept, or set to an interesting value.
fn footer_seeds() -> Vec<Vec<u8>> {
    sst_seeds()
        .iter()
        .map(|f| {
            let mut out = (f.len() as u64).to_le_bytes().to_vec();
            out.extend_from_slice(&f[f.len() - Footer::SIZE..]);
            out
        })
        .collect()
}

fn make_footer(cx: &mut Ctx, seed: &[u8]) -> Vec<u8> {
    let mut file_len = read_le(seed, 0, 8);
    let mut tail = seed[8..].to_vec();
    mutate(cx, &mut tail);
    reseal_footer(&mut tail);
    if cx.chance(4) {
        file_len = *cx.pick(&[
            0,
            1,
            Footer::SIZE as u64,
            Footer::SIZE as u64 - 1,
            file_len + 1,
            file_len - 1,
            u64::MAX,
            u64::MAX - 61,
        ]);
        cx.note(format_args!("file_len = {file_len}"));
    }
    let mut out = file_len.to_le_bytes().to_vec();
    out.extend_from_slice(&tail);
    out
}

fn ex_footer(input: &[u8], m: &mut Meter<'_>) -> Verdict {
    let file_len = read_le(input, 0, 8);
    let tail = &input[8..];
    m.measure("Footer::decode", SLACK, || {
        Footer::decode(tail, file_len).map(|f| {
            let _ = f.meta_start();
        })
    })
    .into()
}

#[test]
fn sst_footer_decode() -> Result<()> {
    run(Target {
        name: "sst_footer",
        seeds: footer_seeds(),
        short_cases: 20000,
        make: make_footer,
        exercise: ex_footer,
    })
}

fn ex_index(input: &[u8], m: &mut Meter<'_>) -> Verdict {
    let raw = match m.measure(
        "decode_block_frame (index)",
        frame_cap(input) + SLACK,
        || decode_block_frame(input),
    ) {
        Ok(r) => r,
        Err(e) => return Verdict::Rejected(e.to_string()),
    };
    let len = raw.len();
    m.measure("IndexBlock::decode + find", 23 * len + SLACK, || {
        let index = IndexBlock::decode(raw)?;
        for (k, s) in PROBES {
            let _ = index.find(k, *s);
        }
        for e in index.entries() {
            let _ = index.find(&e.last_key, e.last_seq);
        }
        let _ = index.size_bytes();
        Ok::<(), silt_format::FormatError>(())
    })
    .into()
}

#[test]
fn sst_index_decode() -> Result<()> {
    let mut seeds: Vec<Vec<u8>> = sst_seeds().iter().map(|f| sst_frames(f).2).collect();
    // A larger index: many one-entry blocks.
    let many: Vec<Ent> = (0u32..300)
        .map(|i| ent(format!("key-{i:05}").as_bytes(), 5, ValueKind::Put, b"v"))
        .collect();
    seeds.push(
        sst_frames(&build_sst(
            SstOptions {
                block_bytes: 1,
                ..SstOptions::default()
            },
            &many,
        ))
        .2,
    );
    run(Target {
        name: "sst_index",
        seeds,
        short_cases: 12000,
        make: make_frame,
        exercise: ex_index,
    })
}

/// An index block whose entries all share one long key (restart interval unbounded):
/// each 37-byte entry decodes to a full copy of the key. The decoder must refuse it
/// rather than materialise entries × key bytes.
#[test]
fn index_with_shared_long_keys_is_bounded() {
    // Entry 0 stores the 64 KiB key; entries 1.. share all of it (shared = len,
    // unshared = 0) with descending seqs; one restart point.
    let key_len = 64usize << 10;
    let handle = BlockHandle { offset: 0, len: 9 }.encode();
    let mut raw = Vec::new();
    for seq in (0..2000u64).rev() {
        let (shared, unshared) = if raw.is_empty() {
            (0, key_len)
        } else {
            (key_len, 0)
        };
        for v in [shared as u32, unshared as u32, 16] {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        raw.extend_from_slice(&seq.to_le_bytes());
        raw.push(ValueKind::Put as u8);
        raw.resize(raw.len() + unshared, b'k');
        raw.extend_from_slice(&handle);
    }
    raw.extend_from_slice(&0u32.to_le_bytes());
    raw.extend_from_slice(&1u32.to_le_bytes());
    let frame = encode_block_frame(&raw, Compression::Lz4);
    let mut meter = Meter {
        input: &frame,
        seed: 0,
        violation: None,
        worst_permille: 0,
        worst_peak: 0,
    };
    let v = ex_index(&frame, &mut meter);
    eprintln!(
        "index of {} raw bytes ({} framed): peak {} bytes",
        raw.len(),
        frame.len(),
        meter.worst_peak
    );
    assert!(meter.violation.is_none(), "{:?}", meter.violation);
    assert!(matches!(v, Verdict::Rejected(e) if e.contains("restart interval")));
}

fn ex_bloom(input: &[u8], m: &mut Meter<'_>) -> Verdict {
    let raw = match m.measure(
        "decode_block_frame (filter)",
        frame_cap(input) + SLACK,
        || decode_block_frame(input),
    ) {
        Ok(r) => r,
        Err(e) => return Verdict::Rejected(e.to_string()),
    };
    m.measure("BloomFilter::decode + may_contain", SLACK, || {
        let f = BloomFilter::decode(raw)?;
        for (k, _) in PROBES {
            let _ = f.may_contain(k);
        }
        let _ = f.may_contain(b"k07");
        let _ = f.size_bytes();
        Ok::<(), silt_format::FormatError>(())
    })
    .into()
}

#[test]
fn bloom_decode() -> Result<()> {
    let mut seeds: Vec<Vec<u8>> = sst_seeds().iter().map(|f| sst_frames(f).0).collect();
    let mut b = BloomBuilder::new(100);
    b.add_key(b"k07");
    seeds.push(encode_block_frame(&b.finish(), Compression::None));
    run(Target {
        name: "bloom",
        seeds,
        short_cases: 10000,
        make: make_frame,
        exercise: ex_bloom,
    })
}

fn ex_props(input: &[u8], m: &mut Meter<'_>) -> Verdict {
    let raw = match m.measure(
        "decode_block_frame (props)",
        frame_cap(input) + SLACK,
        || decode_block_frame(input),
    ) {
        Ok(r) => r,
        Err(e) => return Verdict::Rejected(e.to_string()),
    };
    let len = raw.len();
    m.measure("decode_props", len + SLACK, || decode_props(raw).map(drop))
        .into()
}

#[test]
fn sst_props_decode() -> Result<()> {
    run(Target {
        name: "sst_props",
        seeds: sst_seeds().iter().map(|f| sst_frames(f).1).collect(),
        short_cases: 10000,
        make: make_frame,
        exercise: ex_props,
    })
}

// ---------------------------------------------------------------------------------------
// Whole SST files
// ---------------------------------------------------------------------------------------

/// An SST taken apart: data blocks (raw, compression, last key, last seq), filter and
/// props raw, index compression.
struct SstParts {
    data: Vec<(Vec<u8>, Compression, Vec<u8>, u64)>,
    filter: Vec<u8>,
    props: Vec<u8>,
    index_compression: Compression,
}

fn sst_parts(file: &[u8]) -> SstParts {
    let f = SstFile::open(Bytes::copy_from_slice(file)).expect("seed sst");
    let raw = |fr: &[u8]| decode_block_frame(fr).expect("seed frame").to_vec();
    let (filter, props, index, data) = sst_frames(file);
    SstParts {
        data: data
            .iter()
            .zip(f.index.entries())
            .map(|(fr, e)| (raw(fr), compression_of(fr), e.last_key.to_vec(), e.last_seq))
            .collect(),
        filter: raw(&filter),
        props: raw(&props),
        index_compression: compression_of(&index),
    }
}

/// Builds the file for `parts`, with correct handles; `index_mutation` may damage the
/// raw index before it is framed.
fn assemble(parts: &SstParts, index_mutation: Option<&mut Ctx>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut index = BlockBuilder::new(16);
    for (raw, c, key, seq) in &parts.data {
        let frame = encode_block_frame(raw, *c);
        let h = BlockHandle {
            offset: out.len() as u64,
            len: frame.len() as u64,
        };
        out.extend_from_slice(&frame);
        index.add(key, *seq, ValueKind::Put, &h.encode());
    }
    let append = |out: &mut Vec<u8>, raw: &[u8], c: Compression| {
        let frame = encode_block_frame(raw, c);
        let h = BlockHandle {
            offset: out.len() as u64,
            len: frame.len() as u64,
        };
        out.extend_from_slice(&frame);
        h
    };
    let filter = append(&mut out, &parts.filter, Compression::None);
    let props = append(&mut out, &parts.props, Compression::None);
    let mut index_raw = index.finish();
    if let Some(cx) = index_mutation {
        cx.note(format_args!("index raw:"));
        mutate(cx, &mut index_raw);
    }
    let index = append(&mut out, &index_raw, parts.index_compression);
    out.extend_from_slice(
        &Footer {
            filter,
            props,
            index,
            format_version: SST_FORMAT_VERSION,
        }
        .encode(),
    );
    out
}

fn make_sst(cx: &mut Ctx, seed: &[u8]) -> Vec<u8> {
    if cx.chance(3) {
        let mut f = seed.to_vec();
        mutate(cx, &mut f);
        let fix_len = cx.chance(2);
        reseal_sst(&mut f, fix_len);
        cx.note(format_args!("reseal sst (fix_len {fix_len})"));
        return f;
    }
    let mut p = sst_parts(seed);
    let mut index_mutation = false;
    let steps = 1 + usize::from(cx.chance(3));
    for _ in 0..steps {
        match cx.below(10) {
            0..=2 => {
                let i = cx.below(p.data.len());
                cx.note(format_args!("data block {i} raw:"));
                mutate(cx, &mut p.data[i].0);
            }
            3 => {
                cx.note(format_args!("filter raw:"));
                mutate(cx, &mut p.filter);
            }
            4 => {
                cx.note(format_args!("props raw:"));
                mutate(cx, &mut p.props);
            }
            5 => index_mutation = true,
            6 if p.data.len() > 1 => {
                let i = cx.below(p.data.len());
                p.data.remove(i);
                cx.note(format_args!("drop data block {i}"));
            }
            6 | 7 => {
                let i = cx.below(p.data.len());
                let b = p.data[i].clone();
                p.data.insert(i, b);
                cx.note(format_args!("duplicate data block {i}"));
            }
            8 => {
                let (i, j) = (cx.below(p.data.len()), cx.below(p.data.len()));
                if cx.chance(2) {
                    p.data.swap(i, j);
                    cx.note(format_args!("swap data blocks {i} and {j}"));
                } else {
                    let raw = p.data[j].0.clone();
                    p.data[i].0 = raw;
                    cx.note(format_args!("data block {i} gets block {j}'s content"));
                }
            }
            _ => {
                let i = cx.below(p.data.len());
                let e = &mut p.data[i];
                if cx.chance(2) {
                    e.3 = *cx.pick(&[0, 1, e.3.wrapping_add(1), e.3.wrapping_sub(1), u64::MAX]);
                    cx.note(format_args!("index entry {i} seq = {}", e.3));
                } else {
                    let mut k = std::mem::take(&mut e.2);
                    cx.note(format_args!("index entry {i} key:"));
                    mutate(cx, &mut k);
                    p.data[i].2 = k;
                }
            }
        }
    }
    assemble(&p, index_mutation.then_some(cx))
}

fn ex_sst(input: &[u8], m: &mut Meter<'_>) -> Verdict {
    let data = Bytes::copy_from_slice(input);
    let caps = footer_handles(input).map_or(0, |[f, p, i]| {
        let cap = |h| frame_at(input, h).map_or(0, frame_cap);
        cap(f) + 2 * cap(p) + 24 * cap(i)
    });
    let file = match m.measure("SstFile::open", caps + SLACK, || SstFile::open(data)) {
        Ok(f) => f,
        Err(e) => return Verdict::Rejected(e.to_string()),
    };
    let largest = file
        .index
        .entries()
        .iter()
        .map(|e| frame_at(input, e.handle).map_or(0, frame_cap))
        .max()
        .unwrap_or(0);
    let bound = 3 * largest + SLACK;
    let iterated = m.measure("SstFile::iter", bound, || walk(file.iter()).map(drop));
    let mut keys: Vec<(Vec<u8>, u64)> = PROBES.iter().map(|(k, s)| (k.to_vec(), *s)).collect();
    keys.extend(
        file.index
            .entries()
            .iter()
            .map(|e| (e.last_key.to_vec(), e.last_seq)),
    );
    keys.push((file.props.smallest_key.clone(), u64::MAX));
    let got = m.measure("SstFile::get", bound, || {
        for (k, s) in &keys {
            file.get(k, *s)?;
        }
        Ok::<(), silt_format::FormatError>(())
    });
    let blocks = m.measure("SstFile::read_block", bound, || {
        for i in 0..=file.index.entries().len() {
            if let Ok(b) = file.read_block(i) {
                exercise_block(&b)?;
            }
        }
        Ok::<(), String>(())
    });
    iterated
        .map_err(|e| e.to_string())
        .and(got.map_err(|e| e.to_string()))
        .and(blocks)
        .into()
}

#[test]
fn sst_file_open_iter_get() -> Result<()> {
    run(Target {
        name: "sst_file",
        seeds: sst_seeds(),
        short_cases: 8000,
        make: make_sst,
        exercise: ex_sst,
    })
}

// ---------------------------------------------------------------------------------------
// WAL
// ---------------------------------------------------------------------------------------

fn make_wal_header(cx: &mut Ctx, seed: &[u8]) -> Vec<u8> {
    let mut h = seed[..WAL_HEADER_SIZE].to_vec();
    mutate(cx, &mut h);
    reseal_wal_header(&mut h);
    h
}

fn ex_wal_header(input: &[u8], m: &mut Meter<'_>) -> Verdict {
    m.measure("decode_segment_header", SLACK, || {
        decode_segment_header(input).map(drop)
    })
    .into()
}

#[test]
fn wal_segment_header_decode() -> Result<()> {
    run(Target {
        name: "wal_header",
        seeds: wal_seeds(),
        short_cases: 10000,
        make: make_wal_header,
        exercise: ex_wal_header,
    })
}

fn make_wal(cx: &mut Ctx, seed: &[u8]) -> Vec<u8> {
    let mut s = seed.to_vec();
    mutate(cx, &mut s);
    let level = cx.below(3);
    reseal_wal(&mut s, level);
    cx.note(format_args!("reseal wal (level {level})"));
    s
}

fn ex_wal(input: &[u8], m: &mut Meter<'_>) -> Verdict {
    let b = Bytes::copy_from_slice(input);
    m.measure("decode_segment", 10 * input.len() + SLACK, || {
        decode_segment(b).map(|seg| {
            let ops: usize = seg.records.iter().map(|r| r.ops.len()).sum();
            let _ = (seg.header, ops);
        })
    })
    .into()
}

#[test]
fn wal_segment_decode() -> Result<()> {
    run(Target {
        name: "wal_segment",
        seeds: wal_seeds(),
        short_cases: 20000,
        make: make_wal,
        exercise: ex_wal,
    })
}

// ---------------------------------------------------------------------------------------
// Manifest
// ---------------------------------------------------------------------------------------

const JSON_TOKENS: &[&str] = &[
    "null",
    "-1",
    "0",
    "1e400",
    "18446744073709551616",
    "\"zz\"",
    "\"6\"",
    "\"\\u0000\"",
    "[]",
    "{}",
    "[[[[[[[[",
    "\"extra\":{\"a\":[1,{}]},",
    "\"l0\":[{}],",
    "true",
    ",",
    ":",
    "\"",
];

fn make_manifest(cx: &mut Ctx, seed: &[u8]) -> Vec<u8> {
    let mut m = seed.to_vec();
    if cx.chance(3) && m.len() > MANIFEST_HEADER_SIZE {
        let at = MANIFEST_HEADER_SIZE + cx.below(m.len() - MANIFEST_HEADER_SIZE);
        let cut = cx.below(8).min(m.len() - at);
        let tok = *cx.pick(JSON_TOKENS);
        m.splice(at..at + cut, tok.bytes());
        cx.note(format_args!("splice {tok:?} over {at}..{}", at + cut));
    } else {
        mutate(cx, &mut m);
    }
    let fix_len = !cx.chance(4);
    reseal_manifest(&mut m, fix_len);
    m
}

fn ex_manifest(input: &[u8], m: &mut Meter<'_>) -> Verdict {
    m.measure("decode_manifest", 128 * input.len() + SLACK, || {
        decode_manifest(input).map(drop)
    })
    .into()
}

#[test]
fn manifest_decode() -> Result<()> {
    run(Target {
        name: "manifest",
        seeds: manifest_seeds(),
        short_cases: 12000,
        make: make_manifest,
        exercise: ex_manifest,
    })
}

/// The manifest bound above is set by `serde_json::Value` trees in `extra` and by
/// defaulted `SstInfo`s: measure the worst shapes found and check they meet it.
#[test]
fn manifest_worst_case_amplification() {
    const HEAD: &str = r#"{"id":0,"writer_epoch":0,"wal_replay_from":0,"last_flushed_seq":0,"next_seq_hint":0,"runs":[],"#;
    let shapes = [
        (
            "extra: [{\"\":0},...]",
            "\"l0\":[],\"extra\":{\"a\":[",
            "{\"\":0}",
            "]}}",
        ),
        (
            "extra: [[0],...]",
            "\"l0\":[],\"extra\":{\"a\":[",
            "[0]",
            "]}}",
        ),
        ("extra: [0,...]", "\"l0\":[],\"extra\":{\"a\":[", "0", "]}}"),
        (
            "extra: [\"\",...]",
            "\"l0\":[],\"extra\":{\"a\":[",
            "\"\"",
            "]}}",
        ),
        (
            "l0: [minimal SstInfo,...]",
            "\"l0\":[",
            r#"{"id":"","size":0,"props":{}}"#,
            "]}",
        ),
    ];
    for (name, open, item, close) in shapes {
        let mut json = format!("{HEAD}{open}");
        for i in 0..20_000 {
            if i > 0 {
                json.push(',');
            }
            json.push_str(item);
        }
        json.push_str(close);
        let mut obj = b"SILTMAN\0\x01\x00".to_vec();
        obj.extend_from_slice(&(json.len() as u32).to_le_bytes());
        obj.extend_from_slice(&crc32c::crc32c(json.as_bytes()).to_le_bytes());
        obj.extend_from_slice(json.as_bytes());
        let mut meter = Meter {
            input: &obj,
            seed: 0,
            violation: None,
            worst_permille: 0,
            worst_peak: 0,
        };
        let r = ex_manifest(&obj, &mut meter);
        if let Verdict::Rejected(e) = r {
            panic!("{name}: {e}");
        }
        eprintln!(
            "{name}: {} bytes -> peak {} bytes ({:.1} x)",
            obj.len(),
            meter.worst_peak,
            meter.worst_peak as f64 / obj.len() as f64
        );
        assert!(meter.violation.is_none(), "{name}: {:?}", meter.violation);
    }
}

// ---------------------------------------------------------------------------------------
// Local log
// ---------------------------------------------------------------------------------------

fn make_local_log(cx: &mut Ctx, seed: &[u8]) -> Vec<u8> {
    let mut f = seed.to_vec();
    mutate(cx, &mut f);
    reseal_local_log(&mut f);
    f
}

/// The header fields as stored, without `decode_group_header`'s checks.
fn raw_group_header(h: &[u8]) -> GroupHeader {
    GroupHeader {
        generation: read_le(h, 4, 4) as u32,
        first_seq: read_le(h, 8, 8),
        last_seq: read_le(h, 16, 8),
        payload_len: read_le(h, 24, 4) as u32,
        record_count: read_le(h, 28, 4) as u32,
        padded: h[3] & FLAG_PADDED != 0,
    }
}

fn ex_local_log(input: &[u8], m: &mut Meter<'_>) -> Verdict {
    let len = input.len();
    m.measure("decode_group_header", SLACK, || {
        let _ = decode_group_header(input);
    });
    // Every group a scan visits: header, bounds, CRC; then its records.
    let mut off = 0u64;
    let mut last_err = None;
    for _ in 0..64 {
        let g = m.measure("check_group", SLACK, || check_group(input, off, 0));
        let g = match g {
            Ok(g) => g,
            // A scan ends at zeros, the end of the data or an older generation: fine.
            Err(GroupEnd::EndOfData | GroupEnd::Zeroed | GroupEnd::Stale { .. }) => break,
            Err(e) => {
                last_err.get_or_insert(e.to_string());
                break;
            }
        };
        let start = g.payload_offset as usize;
        let payload = Bytes::copy_from_slice(&input[start..start + g.header.payload_len as usize]);
        let n = payload.len();
        if let Err(e) = m.measure("decode_group_records", 11 * n + SLACK, || {
            decode_group_records(&g.header, &payload)
        }) {
            last_err.get_or_insert(e.to_string());
        }
        if g.next_offset <= off {
            break;
        }
        off = g.next_offset;
    }
    // The records decoder must also survive a header that was never validated (its
    // fields are public): payload = whatever follows the header, same length as stored.
    if len >= GROUP_HEADER_SIZE {
        let h = raw_group_header(input);
        let end = (GROUP_HEADER_SIZE + h.payload_len as usize).min(len);
        let payload = Bytes::copy_from_slice(&input[GROUP_HEADER_SIZE..end]);
        let n = payload.len();
        let _ = m.measure("decode_group_records (raw header)", 11 * n + SLACK, || {
            decode_group_records(&h, &payload).map(drop)
        });
    }
    let scanned = m.measure("scan_groups", 12 * len + SLACK, || {
        scan_groups(input).map(drop)
    });
    match (scanned, last_err) {
        (Err(e), _) => Verdict::Rejected(e.to_string()),
        (Ok(()), Some(e)) => Verdict::Rejected(e),
        (Ok(()), None) => Verdict::Accepted,
    }
}

#[test]
fn local_log_group_decode() -> Result<()> {
    run(Target {
        name: "local_log",
        seeds: local_log_seeds(),
        short_cases: 12000,
        make: make_local_log,
        exercise: ex_local_log,
    })
}
