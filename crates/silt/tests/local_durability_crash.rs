//! `Durability::Local` through the engine survives kill -9: a child process writes with
//! Local durability while the remote WAL lags far behind (slow PUT budget, long linger), so
//! acknowledged writes often exist only in the local log when the child is killed. After
//! each kill, every acknowledged write must be readable and every writer task's keys must
//! form a gap-free prefix (no sequence hole), including an unacknowledged Buffered writer.
//!
//! A second variant puts 1-40 ms of latency on every store request and lets the remote WAL
//! upload often, many segments at once: they land out of order, so kills leave WAL gaps
//! that the local log must fill.
//!
//! The test binary re-executes itself as the child (`--exact local_child --nocapture`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use silt::{Db, Durability, LocalLogSettings, Settings, WriteOptions};

const CHILD_ENV: &str = "SILT_LOCAL_CHILD";
const DIR_ENV: &str = "SILT_LOCAL_DIR";
const ROUND_ENV: &str = "SILT_LOCAL_ROUND";
const LATENCY_ENV: &str = "SILT_LOCAL_LATENCY";
const TASKS: u64 = 4;
const ROUNDS: u64 = 6;

fn settings(dir: &std::path::Path, latency: Option<&str>) -> Settings {
    let mut s = Settings::small_for_tests();
    s.memtable_bytes = 16 * 1024;
    if latency.is_some() {
        // Frequent, overlapping uploads on a slow store.
        s.wal.max_puts_per_sec = 200.0;
        s.wal.put_burst = 8;
        s.wal.max_inflight_uploads = 8;
        s.wal.flush_interval = Duration::from_millis(5);
    } else {
        // The remote WAL lags: one PUT per two seconds, long linger.
        s.wal.max_puts_per_sec = 0.5;
        s.wal.put_burst = 1;
        s.wal.flush_interval = Duration::from_secs(5);
    }
    s.local_log = Some(LocalLogSettings {
        dir: dir.join("local-log"),
        file_bytes: 256 * 1024,
        ..LocalLogSettings::default()
    });
    s
}

#[test]
fn local_child() -> Result<()> {
    if std::env::var_os(CHILD_ENV).is_none() {
        return Ok(());
    }
    let dir = std::path::PathBuf::from(
        std::env::var(DIR_ENV).with_context(|| format!("reading {DIR_ENV}"))?,
    );
    let round = std::env::var(ROUND_ENV).with_context(|| format!("reading {ROUND_ENV}"))?;
    let round: u64 = round
        .parse()
        .with_context(|| format!("parsing {ROUND_ENV}={round:?}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the runtime")?;
    rt.block_on(async move {
        let url = format!("file://{}", dir.join("store").display());
        let latency = std::env::var(LATENCY_ENV).ok();
        let store_latency: Option<silt::objstore::LatencySpec> = latency
            .as_deref()
            .map(|l| {
                l.parse()
                    .with_context(|| format!("parsing {LATENCY_ENV}={l:?}"))
            })
            .transpose()?;
        let db = Arc::new(
            silt::DbBuilder::from_url(&url)
                .with_context(|| format!("parsing the store URL {url}"))?
                .settings(settings(&dir, latency.as_deref()))
                .store_latency(store_latency)
                .open()
                .await
                .with_context(|| format!("round {round}: open"))?,
        );
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let db = Arc::clone(&db);
            tasks.push(tokio::spawn(async move {
                // Task 3 writes Buffered and never acknowledges: it may lose a suffix only.
                let durability = if t == 3 {
                    Durability::Buffered
                } else {
                    Durability::Local
                };
                let opts = WriteOptions::with_durability(durability);
                for c in 1u64.. {
                    let key = format!("r{round}-t{t}-c{c:08}");
                    db.put_with(&key, b"v", &opts)
                        .await
                        .with_context(|| format!("put_with {key}"))?;
                    if durability == Durability::Local {
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ACK {key}")
                            .with_context(|| format!("printing the ack of {key}"))?;
                        out.flush().context("flushing stdout")?;
                    }
                    if t == 3 {
                        tokio::task::yield_now().await;
                    }
                }
                Ok::<(), anyhow::Error>(())
            }));
        }
        for t in tasks {
            t.await.context("a writer task panicked")??;
        }
        Ok::<(), anyhow::Error>(())
    })
}

fn run_child(
    dir: &std::path::Path,
    latency: Option<&str>,
    round: u64,
    kill_after: usize,
) -> Result<Vec<String>> {
    let mut cmd = Command::new(std::env::current_exe().context("finding the test binary")?);
    match latency {
        Some(l) => cmd.env(LATENCY_ENV, l),
        None => cmd.env_remove(LATENCY_ENV),
    };
    let mut child = cmd
        .args(["--exact", "local_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env(DIR_ENV, dir)
        .env(ROUND_ENV, round.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("round {round}: spawning the child"))?;
    let mut acks = Vec::new();
    let stdout = child
        .stdout
        .take()
        .context("the child's stdout is not piped")?;
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.with_context(|| format!("round {round}: reading the child's output"))?;
        if let Some(k) = line.strip_prefix("ACK ") {
            acks.push(k.to_owned());
            if acks.len() >= kill_after {
                child
                    .kill()
                    .with_context(|| format!("round {round}: killing the child"))?;
                break;
            }
        }
    }
    for line in lines {
        match line {
            Ok(l) => {
                if let Some(k) = l.strip_prefix("ACK ") {
                    acks.push(k.to_owned());
                }
            }
            Err(_) => break,
        }
    }
    let _ = child.wait();
    assert!(
        acks.len() >= kill_after,
        "child stopped early after {} acks",
        acks.len()
    );
    Ok(acks)
}

#[test]
fn local_writes_survive_kill_9_without_holes() -> Result<()> {
    let local_only_rounds = kill_rounds(None, ROUNDS)?;
    assert!(
        local_only_rounds > 0,
        "no round depended on the local log: the test would not notice it missing"
    );
    Ok(())
}

#[test]
fn local_writes_survive_kill_9_with_out_of_order_uploads() -> Result<()> {
    kill_rounds(Some("1ms..40ms"), 4)?;
    Ok(())
}

/// Kill a child `rounds` times and verify after each; returns how many rounds had
/// acknowledged writes only the local log held.
fn kill_rounds(latency: Option<&str>, rounds: u64) -> Result<usize> {
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let seed: u64 = std::env::var("SILT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let mut state = seed;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (state >> 33) as usize
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the runtime")?;
    let mut local_only_rounds = 0;
    for round in 0..rounds {
        let kill_after = 20 + next() % 300;
        let acks = run_child(dir.path(), latency, round, kill_after)?;
        rt.block_on(async {
            let url = format!("file://{}", dir.path().join("store").display());
            // Before reopening: how much of this round reached the object store?
            let remote_only = {
                let mut s = Settings::small_for_tests();
                s.local_log = None;
                let ro = silt::DbBuilder::from_url(&url)
                    .with_context(|| format!("parsing the store URL {url}"))?
                    .settings(s)
                    .read_only()
                    .open()
                    .await
                    .with_context(|| format!("round {round}: read-only open"))?;
                let n = ro
                    .scan_prefix(format!("r{round}-"))
                    .with_context(|| format!("round {round}: read-only scan_prefix r{round}-"))?
                    .collect(usize::MAX)
                    .await
                    .with_context(|| format!("round {round}: read-only scan_prefix r{round}-"))?
                    .len();
                n
            };
            eprintln!(
                "round {round}: {} acks, {remote_only} remote-only; reopening",
                acks.len()
            );
            let db = Db::open(&url, settings(dir.path(), latency))
                .await
                .with_context(|| format!("seed {seed} round {round}: reopen"))?;
            let got: Vec<String> = db
                .scan_prefix(format!("r{round}-"))
                .with_context(|| format!("round {round}: scan_prefix r{round}-"))?
                .collect(usize::MAX)
                .await
                .with_context(|| format!("round {round}: scan_prefix r{round}-"))?
                .into_iter()
                .map(|(k, _)| String::from_utf8(k.to_vec()).context("a key is not UTF-8"))
                .collect::<Result<_>>()?;
            if got.len() > remote_only {
                local_only_rounds += 1;
            }
            for k in &acks {
                assert!(
                    got.contains(k),
                    "seed {seed} round {round}: acknowledged {k} lost"
                );
            }
            // Per task, recovered counters are exactly 1..=max: no hole.
            let mut per_task: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            for k in &got {
                let (task, c) = k
                    .rsplit_once("-c")
                    .with_context(|| format!("a key outside the workload: {k}"))?;
                per_task
                    .entry(task.to_owned())
                    .or_default()
                    .push(c.parse().with_context(|| format!("the counter of {k}"))?);
            }
            for (task, mut cs) in per_task {
                cs.sort_unstable();
                let expect: Vec<u64> = (1..=cs.len() as u64).collect();
                assert_eq!(cs, expect, "seed {seed} round {round}: hole in {task}");
            }
            db.close()
                .await
                .with_context(|| format!("round {round}: close after the check"))?;
            Ok::<(), anyhow::Error>(())
        })?;
    }
    Ok(local_only_rounds)
}
