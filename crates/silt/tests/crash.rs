//! Crash test with a real process: the test binary re-executes itself as a writer child
//! (`child_writer`), which prints `ACK <key> <value>` after every acknowledged write; the
//! parent kills it with SIGKILL after a seeded random number of acks, then checks that every
//! acknowledged write survived recovery. Several rounds reuse the same directory, so
//! recovery after recovery (and replay over earlier SSTs and WAL) is covered.
//!
//! A fifth task writes `Buffered` and never waits: each write a new key, so after every
//! recovery the keys of that task present from a round must be a prefix of what it wrote
//! (a crash loses a suffix of `Buffered` writes, never leaves a hole).
//!
//! Four variants: a local directory; the same behind a store latency of 1-40 ms per
//! request (uploads overlap and land out of order, so kills leave WAL gaps); under injected
//! store faults (errors and lost responses); and the local S3 server (`SILT_TEST_S3_URL`,
//! required when `SILT_REQUIRE_S3=1`).
//!
//! Works under `cargo test` and `cargo nextest` alike: both accept
//! `--exact child_writer --nocapture` and run just that test in the child.
//! Seed: `SILT_CRASH_SEED` (default fixed); printed on failure.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::Rng;

use anyhow::{Context, Result};
use silt::objstore::{FaultSpec, LatencySpec};
use silt::{Db, DbBuilder, Durability, Settings, WriteBatch, WriteOptions};

const CHILD_ENV: &str = "SILT_CRASH_CHILD";
const URL_ENV: &str = "SILT_CRASH_URL";
const LATENCY_ENV: &str = "SILT_CRASH_LATENCY";
const FAULTS_ENV: &str = "SILT_CRASH_FAULTS";
const ROUND_ENV: &str = "SILT_CRASH_ROUND";
const ROUNDS: u64 = 5;
const TASKS: u64 = 4;
/// Keys per task: small, so keys are overwritten many times.
const KEYS_PER_TASK: u64 = 40;

fn settings() -> Settings {
    let mut s = Settings::small_for_tests();
    // Small memtables so SST flushes (and replay-point moves) happen within a round.
    s.memtable_bytes = 8 * 1024;
    s.wal.segment_bytes = 2 * 1024;
    // Durable writes should not wait long on the PUT budget in this test.
    s.wal.max_puts_per_sec = 2_000.0;
    s.wal.put_burst = 8;
    s.wal.flush_interval = Duration::from_millis(5);
    // Many overlapping uploads: with store latency they land out of order.
    s.wal.max_inflight_uploads = 8;
    s
}

/// Values are `r<round>-t<task>-c<counter>`; a key belongs to one task, whose counter only
/// grows, so (round, counter) orders every write of a key.
fn parse_value(v: &[u8]) -> Result<(u64, u64)> {
    let parse = || -> Option<(u64, u64)> {
        let s = std::str::from_utf8(v).ok()?;
        let mut parts = s.split('-');
        let round = parts.next()?.strip_prefix('r')?.parse().ok()?;
        let _task = parts.next()?;
        let counter = parts.next()?.strip_prefix('c')?.parse().ok()?;
        Some((round, counter))
    };
    parse().with_context(|| format!("not a writer's value: {:?}", String::from_utf8_lossy(v)))
}

/// Key of the Buffered task's write number `counter` in `round`.
fn buffered_key(round: u64, counter: u64) -> String {
    format!("b-r{round:02}-c{counter:08}")
}

fn ack(key: &str, value: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ACK {key} {value}").with_context(|| format!("printing the ack of {key}"))?;
    out.flush().context("flushing stdout")?;
    Ok(())
}

/// The writer process. A no-op unless started by `crash_recovery_after_sigkill`.
#[test]
fn child_writer() -> Result<()> {
    if std::env::var_os(CHILD_ENV).is_none() {
        return Ok(());
    }
    let url = std::env::var(URL_ENV).with_context(|| format!("reading {URL_ENV}"))?;
    let latency: Option<LatencySpec> = std::env::var(LATENCY_ENV)
        .ok()
        .map(|l| {
            l.parse()
                .with_context(|| format!("parsing {LATENCY_ENV}={l:?}"))
        })
        .transpose()?;
    let faults: Option<FaultSpec> = std::env::var(FAULTS_ENV)
        .ok()
        .map(|f| {
            f.parse()
                .with_context(|| format!("parsing {FAULTS_ENV}={f:?}"))
        })
        .transpose()?;
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
        let db = Arc::new(
            DbBuilder::from_url(&url)
                .with_context(|| format!("parsing the store URL {url}"))?
                .settings(settings())
                .store_latency(latency)
                .store_faults(faults)
                .open()
                .await
                .context("open")?,
        );
        let mut tasks = Vec::new();
        // Buffered, never waited for: a new key per write.
        let buffered = Arc::clone(&db);
        tasks.push(tokio::spawn(async move {
            let opts = WriteOptions::with_durability(Durability::Buffered);
            for counter in 1u64.. {
                let value = format!("r{round}-t9-c{counter:08}");
                buffered
                    .put_with(buffered_key(round, counter), &value, &opts)
                    .await
                    .with_context(|| format!("put_with {}", buffered_key(round, counter)))?;
                // Leave the other tasks room (Buffered writes never wait otherwise).
                tokio::task::yield_now().await;
            }
            Ok::<(), anyhow::Error>(())
        }));
        for t in 0..TASKS {
            let db = Arc::clone(&db);
            tasks.push(tokio::spawn(async move {
                for counter in 1u64.. {
                    let value = format!("r{round}-t{t}-c{counter:08}");
                    let key = format!("t{t}-k{:03}", (counter * 7 + t) % KEYS_PER_TASK);
                    match counter % 10 {
                        // An atomic pair: both keys get the same value or neither does.
                        3 => {
                            let (a, b) = (format!("t{t}-pair-a"), format!("t{t}-pair-b"));
                            let mut batch = WriteBatch::new();
                            batch.put(&a, &value).put(&b, &value);
                            db.write(batch)
                                .await
                                .with_context(|| format!("write the pair {a}, {b}"))?;
                            ack(&a, &value)?;
                            ack(&b, &value)?;
                        }
                        // Buffered, made durable by an explicit flush before acking.
                        7 if t == 0 => {
                            let opts = WriteOptions::with_durability(Durability::Buffered);
                            db.put_with(&key, &value, &opts)
                                .await
                                .with_context(|| format!("put_with {key}"))?;
                            db.flush()
                                .await
                                .with_context(|| format!("flush after put_with {key}"))?;
                            ack(&key, &value)?;
                        }
                        // Unacknowledged buffered writes: may be lost, must not corrupt.
                        9 if t == 1 => {
                            let opts = WriteOptions::with_durability(Durability::Buffered);
                            db.put_with(&key, &value, &opts)
                                .await
                                .with_context(|| format!("put_with {key}"))?;
                        }
                        _ => {
                            db.put(&key, &value)
                                .await
                                .with_context(|| format!("put {key}"))?;
                            ack(&key, &value)?;
                        }
                    }
                    if t == 2 && counter % 50 == 0 {
                        db.flush_memtables().await.context("flush_memtables")?;
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

/// Run one child until it has acknowledged `kill_after` writes, SIGKILL it, and return every
/// acknowledgement it printed (including any already in the pipe at the kill).
/// `store` holds the child's store options: `(LATENCY_ENV | FAULTS_ENV, spec)`.
fn run_child(
    url: &str,
    store: &[(&str, &str)],
    round: u64,
    kill_after: u64,
) -> Result<Vec<(String, String)>> {
    let exe = std::env::current_exe().context("finding the test binary")?;
    let mut cmd = Command::new(exe);
    cmd.env_remove(LATENCY_ENV).env_remove(FAULTS_ENV);
    for (k, v) in store {
        cmd.env(k, v);
    }
    let mut child = cmd
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env(URL_ENV, url)
        .env(ROUND_ENV, round.to_string())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("round {round}: spawning the child writer"))?;
    let stdout = child
        .stdout
        .take()
        .context("the child's stdout is not piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut acks = Vec::new();
    let mut killed = false;
    for line in lines.by_ref() {
        let line = line.with_context(|| format!("round {round}: reading the child's output"))?;
        let Some(rest) = line.strip_prefix("ACK ") else {
            continue;
        };
        let (k, v) = rest
            .split_once(' ')
            .with_context(|| format!("round {round}: a malformed ack {line:?}"))?;
        acks.push((k.to_owned(), v.to_owned()));
        if acks.len() as u64 >= kill_after {
            child
                .kill()
                .with_context(|| format!("round {round}: killing the child"))?;
            killed = true;
            break;
        }
    }
    // Whatever was printed before the kill is acknowledged too.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix("ACK ") {
            if let Some((k, v)) = rest.split_once(' ') {
                acks.push((k.to_owned(), v.to_owned()));
            }
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("round {round}: waiting for the child"))?;
    assert!(
        killed,
        "round {round}: child exited ({status}) after only {} acks",
        acks.len()
    );
    Ok(acks)
}

/// What the parent knows after each round.
#[derive(Default)]
struct Known {
    /// Newest acknowledged (round, counter) per key.
    acked: BTreeMap<String, (u64, u64)>,
    /// Buffered writes of each round that survived its recovery (a prefix, by counter).
    buffered: BTreeMap<u64, u64>,
}

async fn verify(url: &str, known: &mut Known, round: u64, seed: u64) -> Result<()> {
    let ctx = format!("seed {seed} round {round}");
    let acked = &known.acked;
    let db = Db::open(url, settings())
        .await
        .with_context(|| format!("{ctx}: recovery failed"))?;
    for (key, want) in acked {
        let got = db
            .get(key)
            .await
            .with_context(|| format!("{ctx}: get {key}"))?;
        let got = got.unwrap_or_else(|| {
            panic!("seed {seed} round {round}: acknowledged key {key} ({want:?}) is missing")
        });
        let got = parse_value(&got).with_context(|| format!("{ctx}: key {key}"))?;
        assert!(
            got >= *want,
            "seed {seed} round {round}: key {key} went back from {want:?} to {got:?}"
        );
    }
    // Batches are atomic across crashes.
    for t in 0..TASKS {
        let a = db
            .get(format!("t{t}-pair-a"))
            .await
            .with_context(|| format!("{ctx}: get t{t}-pair-a"))?;
        let b = db
            .get(format!("t{t}-pair-b"))
            .await
            .with_context(|| format!("{ctx}: get t{t}-pair-b"))?;
        assert_eq!(a, b, "seed {seed} round {round}: torn batch of task {t}");
    }
    // Every stored value is one the writers produced, and the scan agrees with gets.
    let all = db
        .scan::<&str>(..)
        .with_context(|| format!("{ctx}: full scan"))?
        .collect(usize::MAX)
        .await
        .with_context(|| format!("{ctx}: full scan"))?;
    for (k, v) in &all {
        let (r, _) = parse_value(v).with_context(|| format!("{ctx}: key {k:?}"))?;
        assert!(r <= round, "key {k:?} has a value from the future");
        assert_eq!(
            db.get(k)
                .await
                .with_context(|| format!("{ctx}: get {k:?}"))?
                .as_ref(),
            Some(v)
        );
    }
    // Buffered losses are a suffix: this round's Buffered keys are 1..=n, and earlier
    // rounds keep exactly what survived their own recovery.
    for r in 1..=round {
        let prefix = format!("b-r{r:02}-");
        let counters: Vec<u64> = all
            .iter()
            .filter_map(|(k, _)| {
                std::str::from_utf8(k)
                    .ok()?
                    .strip_prefix(&prefix)
                    .map(str::to_owned)
            })
            .map(|c| {
                c.strip_prefix('c')
                    .and_then(|n| n.parse().ok())
                    .with_context(|| format!("{ctx}: a malformed Buffered key {prefix}{c}"))
            })
            .collect::<Result<_>>()?;
        let n = counters.len() as u64;
        assert!(
            counters.iter().copied().eq(1..=n),
            "seed {seed} round {round}: Buffered writes of round {r} have a hole: {} present, \
             highest {:?}",
            n,
            counters.last()
        );
        let survived = *known.buffered.entry(r).or_insert(n);
        assert_eq!(
            survived, n,
            "seed {seed} round {round}: round {r} had {survived} Buffered writes after its \
             recovery, now {n}"
        );
    }
    db.close()
        .await
        .with_context(|| format!("{ctx}: close after the check"))?;
    Ok(())
}

/// Kill a child writer `rounds` times against the store at `url`, verifying after each.
async fn crash_rounds(
    url: &str,
    store: &'static [(&'static str, &'static str)],
    rounds: u64,
) -> Result<()> {
    let seed = std::env::var("SILT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5117_c4a5_u64);
    let mut rng = Rng(seed);
    let mut known = Known::default();
    for round in 1..=rounds {
        let kill_after = rng.range(20, 400);
        let u = url.to_owned();
        let acks = tokio::task::spawn_blocking(move || run_child(&u, store, round, kill_after))
            .await
            .context("the child runner panicked")??;
        assert!(acks.len() as u64 >= kill_after);
        for (k, v) in acks {
            let parsed = parse_value(v.as_bytes()).with_context(|| format!("the ack of {k}"))?;
            let e = known.acked.entry(k).or_insert(parsed);
            *e = (*e).max(parsed);
        }
        verify(url, &mut known, round, seed).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_recovery_after_sigkill() -> Result<()> {
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    crash_rounds(&format!("file://{}", dir.path().display()), &[], ROUNDS).await?;
    // The directory really went through SST flushes and WAL replays.
    let ssts = std::fs::read_dir(dir.path().join("sst"))
        .with_context(|| format!("listing {}", dir.path().join("sst").display()))?
        .count();
    assert!(ssts > 0, "no SST was ever flushed");
    Ok(())
}

/// Uploads that overlap and land out of order: a kill leaves WAL gaps behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_recovery_with_store_latency() -> Result<()> {
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    crash_rounds(
        &format!("file://{}", dir.path().display()),
        &[(LATENCY_ENV, "1ms..40ms")],
        6,
    )
    .await?;
    Ok(())
}

/// Kills under injected store faults: 5% of requests fail, 2% of PUTs lose their response
/// after the store applied them, on top of 1-10 ms of latency. Recovery (without faults)
/// must still find every acknowledged write and Buffered losses must stay a suffix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_recovery_under_store_faults() -> Result<()> {
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    crash_rounds(
        &format!("file://{}", dir.path().display()),
        &[
            (LATENCY_ENV, "1ms..10ms"),
            (FAULTS_ENV, "all=0.05,lost=0.02"),
        ],
        4,
    )
    .await?;
    Ok(())
}

/// The same against the local S3 server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_recovery_on_s3() -> Result<()> {
    let Some(base) = common::s3_base_url("crash_recovery_on_s3") else {
        return Ok(());
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_nanos();
    let url = format!("{base}/crash-{nanos}");
    crash_rounds(&url, &[], 3).await?;
    Ok(())
}
