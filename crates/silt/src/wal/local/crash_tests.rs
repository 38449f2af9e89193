//! Crash test: a child process (this test binary, re-executed) commits records from
//! several tasks and prints `ACK <seq>` after each `wait` returns; the parent kills it with
//! SIGKILL after a seeded random number of acks, then checks that `LocalLog::open` returns
//! every acknowledged sequence number and no hole. Rounds reuse the directory (recovery,
//! resume, file switches, recycling, sparse and packed alternating).
//!
//! (It lives in the library's tests because the local log is not exported yet; it moves
//! to `tests/local_log_crash.rs` once the crate re-exports `LocalLog`.)

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use silt_format::{SeqNo, ValueKind};

use super::{LocalLog, LocalLogMode, LocalLogSettings};

const CHILD_ENV: &str = "SILT_LOCAL_LOG_CRASH_CHILD";
const CHILD_TEST: &str = "wal::local::crash_tests::crash_child";

fn child_settings(dir: PathBuf, mode: &str) -> LocalLogSettings {
    LocalLogSettings {
        dir,
        // Small files: many switches and recyclings per round.
        file_bytes: 64 << 10,
        mode: if mode == "packed" {
            LocalLogMode::Packed
        } else {
            LocalLogMode::Sparse
        },
        ..LocalLogSettings::default()
    }
}

/// The child: runs only when the parent sets `CHILD_ENV` (`<dir>|<mode>`).
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (dir, mode) = spec.split_once('|').expect("spec is dir|mode");
    let settings = child_settings(PathBuf::from(dir), mode);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (log, recovered) = LocalLog::open(&settings).expect("open");
        let last = recovered
            .last()
            .map_or(0, |r| r.first_seq + r.ops.len() as u64 - 1);
        // Pretend the remote WAL covers the older half of what was recovered.
        let covered = last / 2;
        log.remote_covered(covered);
        println!("COVERED {covered}");
        let seq = Arc::new(parking_lot::Mutex::new(last + 1));
        let mut tasks = Vec::new();
        for t in 0..4u64 {
            let (log, seq) = (log.clone(), Arc::clone(&seq));
            tasks.push(tokio::spawn(async move {
                let mut i = 0u64;
                loop {
                    i += 1;
                    // Batches of 1..=3 ops, values from 8 bytes to ~5 KiB.
                    let ops = 1 + (i + t) % 3;
                    let vlen = 8 + ((i * 37 + t * 101) % 5000) as usize * usize::from(i % 4 == 0);
                    let (ticket, first) = {
                        let mut next = seq.lock();
                        let first = *next;
                        let values: Vec<Vec<u8>> = (0..ops)
                            .map(|j| {
                                let mut v = (first + j).to_le_bytes().to_vec();
                                v.resize(vlen, 0x5a);
                                v
                            })
                            .collect();
                        let ticket = log
                            .enqueue(
                                first,
                                values
                                    .iter()
                                    .map(|v| (ValueKind::Put, &b"key"[..], v.as_slice())),
                            )
                            .expect("enqueue");
                        *next += ops;
                        (ticket, first)
                    };
                    // Some records are never waited for (Buffered durability).
                    if i % 5 == 0 {
                        continue;
                    }
                    log.wait(ticket).await.expect("wait");
                    println!("ACK {} {}", first, ticket.seq());
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[test]
fn local_log_survives_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current exe");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5117_0003);
    let mut all_acked: Vec<SeqNo> = Vec::new();
    let mut covered_max = 0;
    for round in 0..10 {
        let mode = if round % 3 == 2 { "packed" } else { "sparse" };
        let kill_after = rng.random_range(1..400usize);
        let mut child = Command::new(&exe)
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{}|{mode}", dir.path().display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let mut acks = 0;
        let mut killed = false;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read child output");
            // libtest prints "test <name> ... " without a newline before the child's output.
            if let Some(rest) = line.find("ACK ").map(|i| &line[i + 4..]) {
                let (first, last) = rest.split_once(' ').expect("ACK first last");
                let (first, last): (SeqNo, SeqNo) =
                    (first.parse().expect("seq"), last.parse().expect("seq"));
                all_acked.extend(first..=last);
                acks += 1;
                if acks == kill_after && !killed {
                    child.kill().expect("kill");
                    killed = true;
                }
            } else if let Some(c) = line.find("COVERED ").map(|i| &line[i + 8..]) {
                covered_max = covered_max.max(c.parse::<SeqNo>().expect("covered"));
            }
        }
        let status = child.wait().expect("wait child");
        assert!(
            killed,
            "round {round}: child exited ({status}) after {acks} acks"
        );

        let (log, recovered) =
            LocalLog::open(&child_settings(dir.path().to_path_buf(), mode)).expect("recover");
        drop(log);
        let seqs: Vec<SeqNo> = recovered
            .iter()
            .flat_map(|r| (0..r.ops.len() as u64).map(move |i| r.first_seq + i))
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "round {round}: hole in recovered seqs"
        );
        for r in &recovered {
            for (i, op) in r.ops.iter().enumerate() {
                assert_eq!(&op.value[..8], &(r.first_seq + i as u64).to_le_bytes());
            }
        }
        let (lo, hi) = (
            seqs.first().copied().unwrap_or(1),
            seqs.last().copied().unwrap_or(0),
        );
        for &s in all_acked.iter().filter(|&&s| s > covered_max) {
            assert!(
                (lo..=hi).contains(&s),
                "round {round}: acked seq {s} lost (recovered {lo}..={hi}, covered {covered_max})"
            );
        }
        assert!(
            lo <= covered_max + 1,
            "round {round}: recovered from {lo}, covered {covered_max}"
        );
        eprintln!(
            "round {round} ({mode}): killed after {acks} acks, recovered {lo}..={hi}, covered {covered_max}"
        );
    }
}
