use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use proptest::prelude::*;
use silt_format::local_log::{check_group, GroupEnd, GROUP_HEADER_SIZE};
use silt_format::wal::WalRecord;
use silt_format::{SeqNo, ValueKind};

use super::writer::file_name;
use super::*;

fn settings(dir: &Path, file_bytes: u64, mode: LocalLogMode) -> LocalLogSettings {
    LocalLogSettings {
        dir: dir.to_path_buf(),
        file_bytes,
        mode,
        ..LocalLogSettings::default()
    }
}

fn open(s: &LocalLogSettings) -> (LocalLog, Vec<WalRecord>) {
    LocalLog::open(s).unwrap()
}

fn seqs(records: &[WalRecord]) -> Vec<SeqNo> {
    records
        .iter()
        .flat_map(|r| (0..r.ops.len() as u64).map(move |i| r.first_seq + i))
        .collect()
}

/// Value of op `seq`: its seq, then `len - 8` filler bytes.
fn value(seq: SeqNo, len: usize) -> Vec<u8> {
    let mut v = seq.to_le_bytes().to_vec();
    v.resize(len.max(8), (seq % 251) as u8);
    v
}

/// Commits one record of `ops` ops at `first` and waits; returns the next seq.
async fn commit(log: &LocalLog, first: SeqNo, ops: usize, value_len: usize) -> SeqNo {
    let values: Vec<Vec<u8>> = (0..ops as u64)
        .map(|i| value(first + i, value_len))
        .collect();
    let ticket = log
        .enqueue(
            first,
            values
                .iter()
                .map(|v| (ValueKind::Put, &b"key"[..], v.as_slice())),
        )
        .unwrap();
    assert_eq!(ticket.seq(), first + ops as u64 - 1);
    log.wait(ticket).await.unwrap();
    first + ops as u64
}

/// Every recovered op carries its own seq in its value.
fn check_values(records: &[WalRecord]) {
    for r in records {
        for (i, op) in r.ops.iter().enumerate() {
            assert_eq!(&op.value[..8], &(r.first_seq + i as u64).to_le_bytes());
        }
    }
}

fn read_file(dir: &Path, index: u64) -> Vec<u8> {
    std::fs::read(dir.join(file_name(index))).unwrap()
}

#[test]
fn settings_defaults_and_validation() {
    let s: LocalLogSettings = serde_json::from_str(r#"{"dir": "/x"}"#).unwrap();
    assert_eq!(s.file_bytes, 64 << 20);
    assert_eq!(s.mode, LocalLogMode::Sparse);
    let s: LocalLogSettings = serde_json::from_str(r#"{"mode": "packed"}"#).unwrap();
    assert_eq!(s.mode, LocalLogMode::Packed);
    assert!(serde_json::from_str::<LocalLogSettings>(r#"{"bogus": 1}"#).is_err());
    s.validate().unwrap();
    for bad in [4096, 10_000, 2 << 30] {
        let s = LocalLogSettings {
            file_bytes: bad,
            ..LocalLogSettings::default()
        };
        assert_eq!(
            s.validate().unwrap_err().kind(),
            crate::ErrorKind::InvalidInput
        );
    }
}

#[tokio::test]
async fn commits_survive_reopen_and_files_are_preallocated() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 64 << 10, LocalLogMode::Sparse);
    let (log, recovered) = open(&s);
    assert!(recovered.is_empty());
    // The first file exists at open, full size, written with zeros.
    assert_eq!(read_file(dir.path(), 0).len(), 64 << 10);
    let mut next = 1;
    for i in 0..5 {
        next = commit(&log, next, 1 + i % 3, 10).await;
    }
    assert_eq!(log.durable_seq(), next - 1);
    drop(log);
    let (log, recovered) = open(&s);
    assert_eq!(seqs(&recovered), (1..next).collect::<Vec<_>>());
    check_values(&recovered);
    assert_eq!(recovered[0].ops[0].key, &b"key"[..]);
    // Writing resumes after the recovered records (a new generation).
    let next2 = commit(&log, next, 2, 10).await;
    drop(log);
    let (_log, recovered) = open(&s);
    assert_eq!(seqs(&recovered), (1..next2).collect::<Vec<_>>());
}

#[tokio::test]
async fn sparse_groups_are_block_aligned_and_padded() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 64 << 10, LocalLogMode::Sparse);
    let (log, _) = open(&s);
    let mut next = 1;
    next = commit(&log, next, 1, 8).await;
    next = commit(&log, next, 1, 6000).await; // spans two blocks
    next = commit(&log, next, 1, 8).await;
    let m = log.metrics();
    assert_eq!(m.blocks_written, 4);
    assert_eq!(m.syncs, 3);
    assert_eq!(m.bytes_written, 4 * 4096);
    let data = read_file(dir.path(), 0);
    let g0 = check_group(&data, 0, 0).unwrap();
    assert!(g0.header.padded);
    assert_eq!(g0.next_offset, 4096);
    // Zero padding after the first small group.
    assert!(data[g0.header.group_len() as usize..4096]
        .iter()
        .all(|&b| b == 0));
    let g1 = check_group(&data, 4096, 0).unwrap();
    assert_eq!(g1.next_offset, 3 * 4096);
    let g2 = check_group(&data, 3 * 4096, 0).unwrap();
    assert_eq!(g2.header.first_seq, next - 1);
    assert_eq!(check_group(&data, 4 * 4096, 0), Err(GroupEnd::Zeroed));
}

#[tokio::test]
async fn packed_groups_are_back_to_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 64 << 10, LocalLogMode::Packed);
    let (log, _) = open(&s);
    let mut next = 1;
    for _ in 0..100 {
        next = commit(&log, next, 1, 8).await;
    }
    let m = log.metrics();
    // Each commit rewrites the tail block (one block each, the same block many times; two
    // when the group crosses a block boundary).
    let blocks = m.blocks_written;
    assert!((100..=104).contains(&blocks), "{blocks}");
    let data = read_file(dir.path(), 0);
    let mut off = 0;
    for i in 0..100u64 {
        let g = check_group(&data, off, 0).unwrap();
        assert!(!g.header.padded);
        assert_eq!(g.header.first_seq, i + 1);
        assert_eq!(g.next_offset, off + g.header.group_len());
        off = g.next_offset;
    }
    assert!(
        off < 4 * 4096,
        "100 small groups fit in a few blocks, used {off}"
    );
    drop(log);
    let (log, recovered) = open(&s);
    assert_eq!(seqs(&recovered), (1..next).collect::<Vec<_>>());
    // Resume in the middle of a block.
    let next2 = commit(&log, next, 3, 8).await;
    drop(log);
    let (_, recovered) = open(&s);
    assert_eq!(seqs(&recovered), (1..next2).collect::<Vec<_>>());
    check_values(&recovered);
}

#[tokio::test]
async fn torn_group_is_the_end_and_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 64 << 10, LocalLogMode::Sparse);
    let (log, _) = open(&s);
    let mut next = 1;
    for _ in 0..3 {
        next = commit(&log, next, 1, 8).await;
    }
    // A fourth group of 3 blocks of which only the middle one reached the disk, and a
    // fifth whose header block did but not its second block.
    next = commit(&log, next, 1, 9000).await;
    next = commit(&log, next, 1, 5000).await;
    drop(log);
    let path = dir.path().join(file_name(0));
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&[0u8; 4096], 3 * 4096).unwrap();
    f.write_all_at(&[0u8; 4096], 5 * 4096).unwrap();
    f.write_all_at(&[0u8; 4096], 7 * 4096).unwrap();
    drop(f);
    let (log, recovered) = open(&s);
    assert_eq!(seqs(&recovered), vec![1, 2, 3]);
    // New writes go where the torn group was, in a new generation.
    let n = commit(&log, 4, 1, 8).await;
    let n = commit(&log, n, 1, 8).await;
    drop(log);
    let (_, recovered) = open(&s);
    assert_eq!(seqs(&recovered), (1..n).collect::<Vec<_>>());
    check_values(&recovered);
    assert_eq!(next, 6);
}

#[tokio::test]
async fn crc_mismatch_ends_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 64 << 10, LocalLogMode::Sparse);
    let (log, _) = open(&s);
    let mut next = 1;
    for _ in 0..4 {
        next = commit(&log, next, 2, 8).await;
    }
    drop(log);
    let path = dir.path().join(file_name(0));
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    // Flip one payload byte of the third group.
    f.write_all_at(&[0xEE], 2 * 4096 + GROUP_HEADER_SIZE as u64 + 20)
        .unwrap();
    drop(f);
    let (_, recovered) = open(&s);
    assert_eq!(seqs(&recovered), vec![1, 2, 3, 4]);
    assert!(next > 5);
}

#[tokio::test]
async fn files_switch_recycle_and_recover_in_order() {
    let dir = tempfile::tempdir().unwrap();
    // 4 blocks per file: 4 sparse commits per file.
    let s = settings(dir.path(), 16 << 10, LocalLogMode::Sparse);
    let (log, _) = open(&s);
    let mut next = 1;
    for _ in 0..12 {
        next = commit(&log, next, 1, 8).await;
    }
    let m = log.metrics();
    assert_eq!(m.files_created, 3);
    assert_eq!(m.files_recycled, 0);
    // The remote WAL covers the first two files: the next switches reuse them.
    log.remote_covered(8);
    for _ in 0..8 {
        next = commit(&log, next, 1, 8).await;
    }
    let m = log.metrics();
    assert_eq!(m.files_created, 3);
    assert_eq!(m.files_recycled, 2);
    drop(log);
    // File 0 was reused for seqs 13..=16, file 1 for 17..=20; file 2 holds 9..=12.
    let (log, recovered) = open(&s);
    assert_eq!(seqs(&recovered), (9..next).collect::<Vec<_>>());
    check_values(&recovered);
    drop(log);

    // A recycled file whose new life is shorter than the old: the old blocks beyond the
    // write point are stale.
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 16 << 10, LocalLogMode::Sparse);
    let (log, _) = open(&s);
    let mut next = 1;
    for _ in 0..8 {
        next = commit(&log, next, 1, 8).await;
    }
    log.remote_covered(4);
    next = commit(&log, next, 1, 8).await; // file 0 recycled, one block of its new life
    drop(log);
    let data = read_file(dir.path(), 0);
    let old = check_group(&data, 4096, 0).unwrap();
    assert_eq!(old.header.first_seq, 2, "old life still there");
    let (log, recovered) = open(&s);
    assert_eq!(seqs(&recovered), (5..next).collect::<Vec<_>>());
    // Continue in file 0 after a reopen: old blocks keep reading as stale.
    next = commit(&log, next, 1, 8).await;
    drop(log);
    let data = read_file(dir.path(), 0);
    let g = check_group(&data, 4096, 0).unwrap();
    let min = g.header.generation;
    assert!(matches!(
        check_group(&data, 2 * 4096, min),
        Err(GroupEnd::Stale { .. })
    ));
    let (_, recovered) = open(&s);
    assert_eq!(seqs(&recovered), (5..next).collect::<Vec<_>>());
}

#[tokio::test]
async fn spare_files_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 8 << 10, LocalLogMode::Sparse);
    let (log, _) = open(&s);
    let mut next = 1;
    for _ in 0..20 {
        next = commit(&log, next, 1, 8).await;
    }
    assert_eq!(log.metrics().files_created, 10);
    log.remote_covered(next - 1);
    for _ in 0..4 {
        next = commit(&log, next, 1, 8).await;
    }
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(files <= 2 + 1 + writer::MAX_SPARE_FILES, "{files} files");
    drop(log);
    let (_, recovered) = open(&s);
    assert_eq!(*seqs(&recovered).last().unwrap(), next - 1);
}

#[tokio::test]
async fn record_larger_than_a_file_gets_a_grown_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 8 << 10, LocalLogMode::Packed);
    let (log, _) = open(&s);
    let mut next = commit(&log, 1, 1, 8).await;
    next = commit(&log, next, 3, 20_000).await;
    next = commit(&log, next, 1, 8).await;
    drop(log);
    let (_, recovered) = open(&s);
    assert_eq!(seqs(&recovered), (1..next).collect::<Vec<_>>());
    check_values(&recovered);
    assert_eq!(recovered[1].ops[2].value.len(), 20_000);
}

#[tokio::test]
async fn unwaited_records_go_with_the_next_group() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 64 << 10, LocalLogMode::Sparse);
    let (log, _) = open(&s);
    for seq in 1..=3u64 {
        let v = value(seq, 8);
        log.enqueue(seq, [(ValueKind::Put, &b"k"[..], v.as_slice())])
            .unwrap();
    }
    assert!(log.metrics().pending_bytes > 0);
    commit(&log, 4, 1, 8).await;
    let m = log.metrics();
    assert_eq!(m.groups, 1);
    assert_eq!(m.commits, 4);
    assert_eq!(m.pending_bytes, 0);
    // flush() writes records nobody waits for.
    let v = value(5, 8);
    log.enqueue(5, [(ValueKind::Delete, &b"k"[..], v.as_slice())])
        .unwrap();
    log.flush().await.unwrap();
    log.flush().await.unwrap();
    assert_eq!(log.durable_seq(), 5);
    drop(log);
    let (_, recovered) = open(&s);
    assert_eq!(seqs(&recovered), vec![1, 2, 3, 4, 5]);
    assert_eq!(recovered.len(), 5);
    assert_eq!(recovered[4].ops[0].kind, ValueKind::Delete);
    assert!(recovered[4].ops[0].value.is_empty());
}

#[tokio::test]
async fn sequence_rules() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 64 << 10, LocalLogMode::Sparse);
    let (log, _) = open(&s);
    // Any start on an empty log; then consecutive only.
    let next = commit(&log, 100, 2, 8).await;
    let v = value(0, 8);
    let op = || [(ValueKind::Put, &b"k"[..], v.as_slice())];
    assert!(log.enqueue(next + 1, op()).is_err());
    assert!(log.enqueue(next - 1, op()).is_err());
    assert!(log.enqueue(next, std::iter::empty()).is_err());
    assert!(log.wait(CommitTicket { seq: next + 5 }).await.is_err());
    log.wait(CommitTicket { seq: 50 }).await.unwrap();
    drop(log);
    // After a reopen the first record may skip forward (the database had more seqs from
    // the remote WAL); recovery then returns the run after the gap.
    let (log, recovered) = open(&s);
    assert_eq!(seqs(&recovered), vec![100, 101]);
    assert!(log.enqueue(101, op()).is_err());
    commit(&log, 200, 1, 8).await;
    drop(log);
    let (_, recovered) = open(&s);
    assert_eq!(seqs(&recovered), vec![200]);
}

#[tokio::test]
async fn mode_switch_between_opens() {
    let dir = tempfile::tempdir().unwrap();
    let packed = settings(dir.path(), 32 << 10, LocalLogMode::Packed);
    let sparse = settings(dir.path(), 32 << 10, LocalLogMode::Sparse);
    let mut next = 1;
    for round in 0..6 {
        let s = if round % 2 == 0 { &packed } else { &sparse };
        let (log, recovered) = open(s);
        assert_eq!(seqs(&recovered), (1..next).collect::<Vec<_>>());
        for i in 0..5 {
            next = commit(&log, next, 1 + i % 2, 30 * i).await;
        }
    }
    let (_, recovered) = open(&sparse);
    assert_eq!(seqs(&recovered), (1..next).collect::<Vec<_>>());
    check_values(&recovered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_committers_share_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 1 << 20, LocalLogMode::Sparse);
    let (log, _) = open(&s);
    let seq = Arc::new(parking_lot::Mutex::new(1u64));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (log, seq) = (log.clone(), Arc::clone(&seq));
        tasks.spawn(async move {
            for _ in 0..20 {
                let ticket = {
                    let mut next = seq.lock();
                    let v = value(*next, 16);
                    let t = log
                        .enqueue(*next, [(ValueKind::Put, &b"k"[..], v.as_slice())])
                        .unwrap();
                    *next += 1;
                    t
                };
                log.wait(ticket).await.unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let m = log.metrics();
    let commits = m.commits;
    let syncs = m.syncs;
    assert_eq!(commits, 320);
    assert!(syncs < commits, "{syncs} syncs for {commits} commits");
    // Sparse: one group = one header + its records, padded once.
    assert_eq!(m.groups, syncs);
    assert_eq!(m.blocks_written, syncs);
    drop(log);
    let (_, recovered) = open(&s);
    assert_eq!(seqs(&recovered), (1..=320).collect::<Vec<_>>());
    check_values(&recovered);
}

#[tokio::test]
async fn write_failure_poisons_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 64 << 10, LocalLogMode::Sparse);
    let (log, _) = open(&s);
    let next = commit(&log, 1, 1, 8).await;
    {
        // Swap the active file for a read-only handle: the next pwrite fails.
        let mut w = log.inner.writer.lock();
        w.active.file = std::fs::File::open(&w.active.path).unwrap();
    }
    let v = value(next, 8);
    let t = log
        .enqueue(next, [(ValueKind::Put, &b"k"[..], v.as_slice())])
        .unwrap();
    let err = log.wait(t).await.unwrap_err();
    assert_eq!(
        err.kind(),
        crate::ErrorKind::Closed(crate::CloseReason::Poisoned),
        "{err}"
    );
    assert!(err.to_string().contains("pwrite"), "{err}");
    assert!(log
        .enqueue(next + 1, [(ValueKind::Put, &b"k"[..], v.as_slice())])
        .is_err());
    assert!(log.wait(t).await.is_err());
    assert!(log.flush().await.is_err());
    drop(log);
    let (_, recovered) = open(&s);
    assert_eq!(seqs(&recovered), vec![1]);
}

#[tokio::test]
async fn the_observer_sees_every_block_written() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [LocalLogMode::Sparse, LocalLogMode::Packed] {
        let s = settings(&dir.path().join(format!("{mode:?}")), 64 << 10, mode);
        let blocks = Arc::new(parking_lot::Mutex::new(Vec::<Vec<u8>>::new()));
        let sink = Arc::clone(&blocks);
        let observer: BlockObserver = Arc::new(move |b: &[u8]| sink.lock().push(b.to_vec()));
        let (log, _) = LocalLog::open_with_observer(&s, Some(observer)).unwrap();
        let mut next = 1;
        next = commit(&log, next, 1, 8).await;
        next = commit(&log, next, 1, 6000).await; // spans two blocks
        commit(&log, next, 1, 8).await;
        let m = log.metrics();
        let blocks = blocks.lock();
        assert_eq!(blocks.len() as u64, m.blocks_written, "{mode:?}");
        assert!(blocks.iter().all(|b| b.len() == 4096));
        // The first block holds the first group, as written to the file.
        let g = check_group(&blocks[0], 0, 0).unwrap();
        assert_eq!(g.header.first_seq, 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn random_commits_recover_exactly(
        commits in proptest::collection::vec((1usize..4, 0usize..3000, any::<bool>()), 1..40),
        packed in any::<bool>(),
        file_kib in 8u64..48,
        cover_every in 0usize..10,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let mode = if packed { LocalLogMode::Packed } else { LocalLogMode::Sparse };
            let s = settings(dir.path(), (file_kib / 4 * 4).max(8) << 10, mode);
            let (log, _) = open(&s);
            let mut next = 1;
            let mut covered = 0;
            let mut tickets = Vec::new();
            for (i, (ops, vlen, wait)) in commits.iter().enumerate() {
                let values: Vec<Vec<u8>> = (0..*ops as u64).map(|j| value(next + j, *vlen)).collect();
                let t = log.enqueue(next, values.iter().map(|v| (ValueKind::Put, &b"key"[..], v.as_slice()))).unwrap();
                next += *ops as u64;
                tickets.push(t);
                if *wait {
                    log.wait(t).await.unwrap();
                }
                if cover_every > 0 && i % cover_every == 0 {
                    covered = log.durable_seq() / 2;
                    log.remote_covered(covered);
                }
            }
            log.flush().await.unwrap();
            drop(log);
            let (_, recovered) = open(&s);
            let got = seqs(&recovered);
            // Exactly a contiguous run ending at the last commit, holding every uncovered seq.
            prop_assert_eq!(got.last().copied(), Some(next - 1));
            prop_assert!(got.windows(2).all(|w| w[1] == w[0] + 1));
            prop_assert!(got[0] <= covered + 1);
            check_values(&recovered);
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_locked_directory_is_refused_before_any_other_io() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 64 << 10, LocalLogMode::Sparse);
    let (log, _) = open(&s);
    let next = commit(&log, 1, 2, 8).await;
    // A leftover temporary file, which recovery deletes: a refused open must not get that
    // far.
    let tmp = dir.path().join(format!("{}.tmp", file_name(7)));
    std::fs::write(&tmp, b"x").unwrap();
    // A clone keeps the lock after the original handle is gone.
    let clone = log.clone();
    drop(log);
    let err = LocalLog::open(&s).unwrap_err();
    assert!(matches!(err, Error::InvalidSettings(_)), "{err}");
    assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
    let msg = err.to_string();
    assert!(msg.contains("is in use by another process"), "{msg}");
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    assert!(tmp.exists(), "the refused open ran recovery");
    // The holder goes on unaffected.
    let next = commit(&clone, next, 1, 8).await;
    drop(clone);
    // Released with the last handle; the lock file is not a log file.
    let (_log, recovered) = open(&s);
    assert!(!tmp.exists());
    assert!(dir.path().join(LOCK_FILE_NAME).exists());
    assert_eq!(seqs(&recovered), (1..next).collect::<Vec<_>>());
    check_values(&recovered);
}

const LOCK_CHILD_ENV: &str = "SILT_LOCAL_LOG_LOCK_CHILD";

/// Child of `another_process_holding_the_lock_is_refused`: opens the log in the directory
/// named by `LOCK_CHILD_ENV`, says `LOCKED`, and holds the log until its stdin closes.
#[test]
fn lock_holder_child() {
    let Ok(dir) = std::env::var(LOCK_CHILD_ENV) else {
        return;
    };
    let s = settings(Path::new(&dir), 64 << 10, LocalLogMode::Sparse);
    let (_log, _) = open(&s);
    println!("LOCKED");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut rest);
}

#[test]
fn another_process_holding_the_lock_is_refused() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 64 << 10, LocalLogMode::Sparse);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "wal::local::tests::lock_holder_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LOCK_CHILD_ENV, dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(std::result::Result::ok);
    // libtest prints "test <name> ... " without a newline before the child's output.
    let locked = lines.by_ref().any(|l| l.contains("LOCKED"));
    assert!(locked, "the child did not open the log");
    let err = LocalLog::open(&s).unwrap_err();
    assert!(
        err.to_string().contains("is in use by another process"),
        "{err}"
    );
    drop(child.stdin.take());
    // Read the rest, so the child never writes to a closed pipe.
    lines.for_each(drop);
    assert!(child.wait().unwrap().success());
    // The lock died with the child's descriptor.
    let (_log, recovered) = open(&s);
    assert!(recovered.is_empty());
}

#[tokio::test]
async fn close_syncs_what_is_pending_and_releases_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 64 << 10, LocalLogMode::Sparse);
    let (log, _) = open(&s);
    let clone = log.clone();
    let mut tickets = Vec::new();
    for seq in 1..=3u64 {
        let v = value(seq, 8);
        tickets.push(
            log.enqueue(seq, [(ValueKind::Put, &b"k"[..], v.as_slice())])
                .unwrap(),
        );
    }
    log.close().await.unwrap();
    assert_eq!(log.durable_seq(), 3);
    // A record made durable before the close still waits successfully; anything new fails.
    clone.wait(tickets[1]).await.unwrap();
    let v = value(4, 8);
    let e = clone
        .enqueue(4, [(ValueKind::Put, &b"k"[..], v.as_slice())])
        .unwrap_err();
    assert_eq!(
        e.kind(),
        crate::ErrorKind::Closed(crate::CloseReason::Clean),
        "{e}"
    );
    log.close().await.unwrap();
    // Released although clones live on.
    let (_reopened, recovered) = open(&s);
    assert_eq!(seqs(&recovered), vec![1, 2, 3]);
}

/// Enqueues one put of `value_len` bytes at `seq` with nobody waiting.
fn enqueue_unwaited(log: &LocalLog, seq: SeqNo, value_len: usize) -> CommitTicket {
    let v = value(seq, value_len);
    log.enqueue(seq, [(ValueKind::Put, &b"k"[..], v.as_slice())])
        .unwrap()
}

#[tokio::test]
async fn pending_bytes_stay_bounded_without_waiters() {
    let dir = tempfile::tempdir().unwrap();
    let max = 16 << 10;
    let s = LocalLogSettings {
        max_pending_bytes: max,
        ..settings(dir.path(), 1 << 20, LocalLogMode::Sparse)
    };
    let (log, _) = open(&s);
    let record = silt_format::local_log::local_record_encoded_len([(1, 1000)]) as u64;
    let mut crossed = 0;
    // Only Remote/Buffered-style records: nobody ever calls wait or flush.
    let fill = async {
        for seq in 1..=400u64 {
            log.reserve().await.unwrap();
            enqueue_unwaited(&log, seq, 1000);
            let pending = log.metrics().pending_bytes;
            assert!(
                pending < max as u64 + record,
                "{pending} pending bytes at {seq}"
            );
            if pending >= max as u64 {
                crossed = seq;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), fill)
        .await
        .expect("reserve never saw the pending records drained");
    assert!(crossed > 0);
    assert!(log.metrics().background_drains >= 2);
    // The drains publish their progress like any group commit.
    let mut rx = log.inner.progress.subscribe();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        rx.wait_for(|p| p.durable >= crossed),
    )
    .await
    .expect("the pending records were never written")
    .unwrap();
    // Dropped without a flush: what the drains wrote is recovered.
    drop(rx);
    drop(log);
    let (_log, recovered) = open(&s);
    let got = seqs(&recovered);
    assert_eq!(got, (1..=got.len() as u64).collect::<Vec<_>>());
    assert!(got.len() as u64 >= crossed, "{} < {crossed}", got.len());
    check_values(&recovered);
}

#[tokio::test]
async fn flush_covers_the_group_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalLogSettings {
        max_pending_bytes: 4096,
        ..settings(dir.path(), 1 << 20, LocalLogMode::Sparse)
    };
    // The first block written holds its writer (after the pwrite, before the fdatasync)
    // until the test lets it go.
    let (reached_tx, reached_rx) = std::sync::mpsc::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let held = std::sync::atomic::AtomicBool::new(false);
    let (reached_tx, go_rx) = (
        parking_lot::Mutex::new(reached_tx),
        parking_lot::Mutex::new(go_rx),
    );
    let observer: BlockObserver = Arc::new(move |_block: &[u8]| {
        if !held.swap(true, Ordering::SeqCst) {
            let _ = reached_tx.lock().send(());
            let _ = go_rx.lock().recv();
        }
    });
    let (log, _) = LocalLog::open_with_observer(&s, Some(observer)).unwrap();
    // Over the bound: a background group takes the record at once.
    let t = enqueue_unwaited(&log, 1, 5000);
    reached_rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("no background group was started");
    assert_eq!(log.metrics().pending_bytes, 0);
    // Nothing is pending, but the record is not durable: flush must wait for it.
    assert!(
        futures::FutureExt::now_or_never(log.flush()).is_none(),
        "flush returned while the record's group was still being written"
    );
    go_tx.send(()).unwrap();
    log.flush().await.unwrap();
    assert_eq!(log.durable_seq(), t.seq());
}

#[tokio::test]
async fn a_big_group_does_not_keep_its_io_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 1 << 20, LocalLogMode::Sparse);
    let (log, _) = open(&s);
    commit(&log, 1, 1, 3 << 20).await;
    assert!(log.inner.writer.lock().io.capacity() <= 1 << 20);
    commit(&log, 2, 1, 100).await;
    assert!(
        log.inner.writer.lock().io.capacity() > 0,
        "small groups keep theirs"
    );
}
