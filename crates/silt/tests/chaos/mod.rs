//! The chaos harness (issue "Ride out object-store faults", item 6), shared by the
//! `chaos_*.rs` scenarios, one scenario per file.
//!
//! A scenario runs a child process (the test binary re-executed as `--exact chaos_child`)
//! that writes with all three durabilities and reads at the same time, against a store that
//! fails under it: injected errors, lost PUT responses, timeouts and latency spikes through
//! `--store-faults`-style specs, an outage window per life, or a real S3 server process that
//! the test stops and starts. The parent SIGKILLs the child at a seeded point, reopens the
//! database (under faults too), checks it against what the child acknowledged, and starts
//! the next life on the same store.
//!
//! ## The workload (child)
//!
//! Six writer tasks, each owning its keys, each doing one operation at a time, numbered by
//! a per-task counter `c` (an operation's effect is a pure function of `(task, c)`, see
//! [`op`], so the parent can tell which operations could have produced a value):
//!
//! | task | durability | operations |
//! |---|---|---|
//! | 0 | Remote | puts; every tenth operation an atomic two-key batch |
//! | 1 | Remote | puts and deletes |
//! | 2 | Local (Remote without a local log) | puts and batches |
//! | 3 | Local (Remote without a local log) | puts and deletes |
//! | 4 | Buffered, then `Db::flush` before the ack | puts |
//! | 5 | Buffered, never acknowledged | a new key per write |
//!
//! Values are `r<life>-t<task>-c<counter>`. An acknowledged operation prints
//! `ACK <task> <counter>`; with `may_fail`, one that failed with `Unavailable` prints
//! `FAIL <task> <counter>` (its effect is unknown; task 5 retries the same write instead),
//! and a read that fails that way is skipped; any other error fails the child. Two
//! reader tasks check every get and scan against the writers' progress while they run: the
//! value read must come from an operation on that key no older than the newest one
//! acknowledged before the read began, and no newer than the newest one issued when it
//! ended. With paused time (`paused`), the child runs on tokio's paused clock: writers and
//! readers pace themselves with simulated sleeps, store latencies, backoffs, outages and
//! the WAL's linger all take simulated time, so a life spans minutes of simulated time in
//! about a second. The child prints `TIME <s>` each simulated second and its retry count.
//!
//! ## The checks (parent, after every kill)
//!
//! The reopened database must open (with the scenario's faults, minus the outage); then for
//! every key of tasks 0-4 the value must be the effect of an operation on it that is no
//! older than the newest acknowledged one (over all lives) and no newer than the last one
//! its task could have issued; nothing goes back from what the previous check saw (a
//! resurrected or twice-applied older write would); batches are never torn; task 5's keys of
//! each life are a gap-free prefix (Buffered losses are a suffix) that later recoveries
//! keep; the full scan agrees with gets and with range and prefix scans; no key outside the
//! workload appears.
//!
//! Seeded: `SILT_CHAOS_SEED` (printed on failure). `SILT_LONG=1` runs four times the lives.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

pub use crate::common::Rng;
use anyhow::{Context, Result};
use parking_lot::Mutex;
use silt::objstore::FaultSpec;
use silt::{
    Db, DbBuilder, Durability, ErrorKind, LocalLogSettings, Settings, WriteBatch, WriteOptions,
};

const CHILD_ENV: &str = "SILT_CHAOS_CHILD";
const URL_ENV: &str = "SILT_CHAOS_URL";
const DIR_ENV: &str = "SILT_CHAOS_DIR";
const LIFE_ENV: &str = "SILT_CHAOS_LIFE";
const FAULTS_ENV: &str = "SILT_CHAOS_FAULTS";
const PAUSED_ENV: &str = "SILT_CHAOS_PAUSED";
const LOCAL_ENV: &str = "SILT_CHAOS_LOCAL";
const DEADLINE_ENV: &str = "SILT_CHAOS_DEADLINE_MS";
const MAY_FAIL_ENV: &str = "SILT_CHAOS_MAY_FAIL";

/// Writer tasks whose operations are acknowledged (0-4), and the unacknowledged one.
const ACKED_TASKS: u64 = 5;
const BUFFERED_TASK: u64 = 5;
/// Keys per task: few, so every key is overwritten many times.
const KEYS_PER_TASK: u64 = 24;

/// Whether the long mode is on (`SILT_LONG=1`).
pub fn long_mode() -> bool {
    std::env::var("SILT_LONG").as_deref() == Ok("1")
}

/// The scenario's seed: `SILT_CHAOS_SEED`, or `default`.
pub fn seed(default: u64) -> u64 {
    std::env::var("SILT_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------
// The workload

fn durability(task: u64, local: bool) -> Durability {
    match task {
        2 | 3 if local => Durability::Local,
        0..=3 => Durability::Remote,
        _ => Durability::Buffered,
    }
}

fn has_batches(task: u64) -> bool {
    task == 0 || task == 2
}

fn has_deletes(task: u64) -> bool {
    task == 1 || task == 3
}

fn pair_keys(task: u64) -> [String; 2] {
    [format!("t{task}-pair-a"), format!("t{task}-pair-b")]
}

fn plain_key(task: u64, idx: u64) -> String {
    format!("t{task}-k{idx:03}")
}

/// Operation `counter` of `task`: the keys it writes and whether it deletes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub keys: Vec<String>,
    pub delete: bool,
}

pub fn op(task: u64, counter: u64) -> Op {
    if has_batches(task) && counter % 10 == 3 {
        return Op {
            keys: pair_keys(task).to_vec(),
            delete: false,
        };
    }
    Op {
        keys: vec![plain_key(task, (counter * 7 + task) % KEYS_PER_TASK)],
        delete: has_deletes(task) && counter % 5 == 4,
    }
}

fn value(life: u64, task: u64, counter: u64) -> String {
    format!("r{life}-t{task}-c{counter:08}")
}

/// `(life, task, counter)` of a value the workload wrote, or `None` for anything else.
pub fn parse_value(v: &[u8]) -> Option<(u64, u64, u64)> {
    let s = std::str::from_utf8(v).ok()?;
    let mut parts = s.split('-');
    let life = parts.next()?.strip_prefix('r')?.parse().ok()?;
    let task = parts.next()?.strip_prefix('t')?.parse().ok()?;
    let counter = parts.next()?.strip_prefix('c')?.parse().ok()?;
    parts.next().is_none().then_some((life, task, counter))
}

/// The keys tasks 0-4 can write, with their owning task.
fn universe() -> BTreeMap<String, u64> {
    let mut keys = BTreeMap::new();
    for t in 0..ACKED_TASKS {
        for i in 0..KEYS_PER_TASK {
            keys.insert(plain_key(t, i), t);
        }
        if has_batches(t) {
            for k in pair_keys(t) {
                keys.insert(k, t);
            }
        }
    }
    keys
}

fn buffered_key(life: u64, counter: u64) -> String {
    format!("b-r{life:03}-c{counter:08}")
}

fn parse_buffered_key(k: &[u8]) -> Option<(u64, u64)> {
    let s = std::str::from_utf8(k).ok()?.strip_prefix("b-r")?;
    let (life, c) = s.split_once("-c")?;
    Some((life.parse().ok()?, c.parse().ok()?))
}

/// How a life's database is configured; the same for the child and the parent's check.
#[derive(Debug, Clone)]
pub struct Config {
    pub url: String,
    /// Holds the local log when `local` is set.
    pub dir: PathBuf,
    pub local: bool,
    pub deadline: Duration,
}

pub fn settings(cfg: &Config) -> Settings {
    let mut s = Settings::small_for_tests();
    // Small memtables and segments: flushes, compactions and replay-point moves within a
    // life, and many WAL uploads.
    s.memtable_bytes = 16 * 1024;
    s.wal.segment_bytes = 4 * 1024;
    s.wal.max_puts_per_sec = 50.0;
    s.wal.put_burst = 4;
    s.wal.flush_interval = Duration::from_millis(20);
    s.wal.max_inflight_uploads = 4;
    s.gc.interval = Duration::from_secs(10);
    s.gc.grace = Duration::from_secs(20);
    s.store.retry.deadline = cfg.deadline;
    if cfg.local {
        s.local_log = Some(LocalLogSettings {
            dir: cfg.dir.join("local-log"),
            file_bytes: 256 * 1024,
            ..LocalLogSettings::default()
        });
    }
    s
}

/// The environment variable `name`, which the parent sets for the child.
fn env_var(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| format!("reading the environment variable {name}"))
}

fn env_config() -> Result<Config> {
    let deadline = env_var(DEADLINE_ENV)?;
    Ok(Config {
        url: env_var(URL_ENV)?,
        dir: PathBuf::from(env_var(DIR_ENV)?),
        local: std::env::var(LOCAL_ENV).as_deref() == Ok("1"),
        deadline: Duration::from_millis(
            deadline
                .parse()
                .with_context(|| format!("parsing {DEADLINE_ENV}={deadline:?}"))?,
        ),
    })
}

fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").with_context(|| format!("printing {line:?} to stdout"))?;
    out.flush().context("flushing stdout")?;
    Ok(())
}

/// Per task: the newest counter issued, the newest acknowledged, and the failed ones.
#[derive(Default)]
struct Progress {
    issued: AtomicU64,
    acked: AtomicU64,
    failed: Mutex<BTreeSet<u64>>,
}

/// The child process: runs the workload until it is killed. A no-op unless started by
/// [`Child::spawn`].
pub fn child_main() -> Result<()> {
    if std::env::var_os(CHILD_ENV).is_none() {
        return Ok(());
    }
    let paused = std::env::var(PAUSED_ENV).as_deref() == Ok("1");
    let rt = if paused {
        // Paused time needs the current-thread runtime; blocking file I/O runs on the
        // blocking pool, which holds the clock still while it works.
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .context("building the paused current-thread runtime")?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("building the multi-thread runtime")?
    };
    rt.block_on(child_workload())
}

async fn child_workload() -> Result<()> {
    let cfg = env_config()?;
    let life = env_var(LIFE_ENV)?;
    let life: u64 = life
        .parse()
        .with_context(|| format!("parsing {LIFE_ENV}={life:?}"))?;
    let faults: Option<FaultSpec> = std::env::var(FAULTS_ENV)
        .ok()
        .map(|f| {
            f.parse()
                .with_context(|| format!("parsing {FAULTS_ENV}={f:?}"))
        })
        .transpose()?;
    let may_fail = std::env::var(MAY_FAIL_ENV).as_deref() == Ok("1");
    let db = Arc::new(
        DbBuilder::from_url(&cfg.url)
            .with_context(|| format!("life {life}: parsing the store URL {}", cfg.url))?
            .settings(settings(&cfg))
            .store_faults(faults)
            .open()
            .await
            .with_context(|| format!("life {life}: open failed"))?,
    );
    let progress: Arc<Vec<Progress>> =
        Arc::new((0..=BUFFERED_TASK).map(|_| Progress::default()).collect());
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..=BUFFERED_TASK {
        let (db, progress, local) = (Arc::clone(&db), Arc::clone(&progress), cfg.local);
        tasks.spawn(writer(db, progress, t, life, local, may_fail));
    }
    for r in 0..2u64 {
        let (db, progress) = (Arc::clone(&db), Arc::clone(&progress));
        tasks.spawn(reader(db, progress, life, r, may_fail));
    }
    {
        let db = Arc::clone(&db);
        tasks.spawn(async move {
            let start = tokio::time::Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let m = db.metrics();
                say(&format!(
                    "TIME {} {} {}",
                    start.elapsed().as_secs(),
                    m.store_retries.total,
                    m.store_retries.gave_up
                ))?;
            }
        });
    }
    if let Some(r) = tasks.join_next().await {
        r.with_context(|| format!("life {life}: a workload task panicked"))?
            .with_context(|| format!("life {life}: a workload task failed"))?;
        panic!("life {life}: a workload task ended");
    }
    Ok(())
}

async fn writer(
    db: Arc<Db>,
    progress: Arc<Vec<Progress>>,
    task: u64,
    life: u64,
    local: bool,
    may_fail: bool,
) -> Result<()> {
    let p = &progress[task as usize];
    let mut rng = Rng(life * 1000 + task);
    let opts = WriteOptions::with_durability(durability(task, local));
    for counter in 1u64.. {
        // Paces the workload (simulated time under a paused clock).
        tokio::time::sleep(Duration::from_millis(rng.range(1, 30))).await;
        p.issued.store(counter, Ordering::SeqCst);
        if task == BUFFERED_TASK {
            // A Buffered write that waited too long for memtable space was not applied:
            // retry it, so this task's keys stay a gap-free sequence.
            loop {
                match db
                    .put_with(
                        buffered_key(life, counter),
                        value(life, task, counter),
                        &opts,
                    )
                    .await
                {
                    Ok(()) => break,
                    Err(e) if may_fail && e.kind() == ErrorKind::Unavailable => {}
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("life {life}: Buffered put of counter {counter} failed")
                        })
                    }
                }
            }
            continue;
        }
        let o = op(task, counter);
        let mut batch = WriteBatch::new();
        for k in &o.keys {
            if o.delete {
                batch.delete(k);
            } else {
                batch.put(k, value(life, task, counter));
            }
        }
        let mut result = db.write_with(batch, &opts).await;
        if result.is_ok() && task == 4 {
            result = db.flush().await;
        }
        match result {
            Ok(()) => {
                p.acked.store(counter, Ordering::SeqCst);
                say(&format!("ACK {task} {counter}"))?;
            }
            Err(e) if may_fail && e.kind() == ErrorKind::Unavailable => {
                p.failed.lock().insert(counter);
                say(&format!("FAIL {task} {counter}"))?;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("life {life}: task {task} operation {counter} failed")
                })
            }
        }
    }
    Ok(())
}

/// What a read of `key` (owned by `task`) may return, given the task's acknowledged
/// counter before the read and its issued counter after: the effect of one of the task's
/// operations on `key` between the newest acknowledged one (not counting failed ones) and
/// the newest issued. `None` lower bound: nothing acknowledged on `key` yet in this life,
/// so anything from an earlier life may show too.
fn check_read(
    life: u64,
    task: u64,
    key: &str,
    got: Option<&[u8]>,
    acked_before: u64,
    issued_after: u64,
    failed: &BTreeSet<u64>,
) -> Result<(), String> {
    let lo = (1..=acked_before)
        .rev()
        .find(|c| !failed.contains(c) && op(task, *c).keys.iter().any(|k| k == key));
    let ok = match got {
        Some(v) => match parse_value(v) {
            Some((l, t, c)) if t == task && l == life => {
                c <= issued_after
                    && lo.is_none_or(|lo| c >= lo)
                    && op(task, c).keys.iter().any(|k| k == key)
                    && !op(task, c).delete
            }
            Some((l, t, _)) if t == task && l < life => lo.is_none(),
            _ => false,
        },
        None => match lo {
            None => true,
            Some(lo) => (lo..=issued_after).any(|c| {
                let o = op(task, c);
                o.delete && o.keys.iter().any(|k| k == key)
            }),
        },
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "life {life}: read {key:?} = {:?}, but task {task} had acknowledged {acked_before} \
             (newest on this key: {lo:?}) and issued {issued_after}",
            got.map(String::from_utf8_lossy)
        ))
    }
}

/// With `may_fail`, a read that outlived the deadline fails with `Unavailable` and is
/// skipped; any other error fails the child.
async fn reader(
    db: Arc<Db>,
    progress: Arc<Vec<Progress>>,
    life: u64,
    id: u64,
    may_fail: bool,
) -> Result<()> {
    let mut rng = Rng(life * 1000 + 100 + id);
    let keys: Vec<(String, u64)> = universe().into_iter().collect();
    loop {
        tokio::time::sleep(Duration::from_millis(rng.range(1, 20))).await;
        let task = rng.range(0, ACKED_TASKS);
        let p = &progress[task as usize];
        let acked_before = p.acked.load(Ordering::SeqCst);
        if rng.range(0, 4) == 0 {
            // A scan of one task's keys.
            let prefix = format!("t{task}-");
            let scan = db
                .scan_prefix(&prefix)
                .with_context(|| format!("life {life}: scan_prefix {prefix:?}"))?;
            let rows = match scan.collect(usize::MAX).await {
                Ok(rows) => rows,
                Err(e) if may_fail && e.kind() == ErrorKind::Unavailable => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("life {life}: scan of {prefix} failed"))
                }
            };
            let issued_after = p.issued.load(Ordering::SeqCst);
            let failed = p.failed.lock().clone();
            let got: BTreeMap<String, Vec<u8>> = rows
                .into_iter()
                .map(|(k, v)| (String::from_utf8(k.to_vec()).unwrap(), v.to_vec()))
                .collect();
            for (k, _) in keys.iter().filter(|(_, t)| *t == task) {
                let v = got.get(k).map(Vec::as_slice);
                if let Err(e) = check_read(life, task, k, v, acked_before, issued_after, &failed) {
                    panic!("scan: {e}");
                }
            }
            assert!(
                got.keys().all(|k| keys.iter().any(|(u, _)| u == k)),
                "life {life}: scan of {prefix} returned a key outside the workload"
            );
        } else {
            let (key, task) = loop {
                let (k, t) = &keys[rng.range(0, keys.len() as u64) as usize];
                if *t == task {
                    break (k.clone(), *t);
                }
            };
            let got = match db.get(&key).await {
                Ok(got) => got,
                Err(e) if may_fail && e.kind() == ErrorKind::Unavailable => continue,
                Err(e) => return Err(e).with_context(|| format!("life {life}: get {key} failed")),
            };
            let issued_after = p.issued.load(Ordering::SeqCst);
            let failed = p.failed.lock().clone();
            if let Err(e) = check_read(
                life,
                task,
                &key,
                got.as_deref(),
                acked_before,
                issued_after,
                &failed,
            ) {
                panic!("get: {e}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The parent

/// A scenario's fixed parts.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name of the scenario file's child test (`chaos_child`).
    pub child_test: &'static str,
    pub cfg: Config,
    /// Run the child on tokio's paused clock.
    pub paused: bool,
    /// Writes may fail with `Unavailable` (an outage longer than the deadline).
    pub may_fail: bool,
}

/// One line of the child's output.
#[derive(Debug)]
enum Event {
    Ack(u64, u64),
    Fail(u64, u64),
    Time { secs: u64, retries: u64 },
    Eof,
}

/// What one life of the child reported.
#[derive(Debug, Default, Clone)]
pub struct LifeLog {
    /// Newest acknowledged counter per task.
    pub acked: BTreeMap<u64, u64>,
    /// Newest failed counter per task, and all failed counters.
    pub failed: BTreeMap<u64, BTreeSet<u64>>,
    pub acks: u64,
    pub fails: u64,
    /// Simulated (or real) seconds the life ran, by the child's clock.
    pub secs: u64,
    /// The store requests the child retried.
    pub retries: u64,
}

impl LifeLog {
    fn apply(&mut self, e: &Event) {
        match *e {
            Event::Ack(t, c) => {
                let a = self.acked.entry(t).or_insert(0);
                assert!(c > *a, "task {t} acknowledged {c} after {a}");
                *a = c;
                self.acks += 1;
            }
            Event::Fail(t, c) => {
                self.failed.entry(t).or_default().insert(c);
                self.fails += 1;
            }
            Event::Time { secs, retries } => {
                self.secs = secs;
                self.retries = retries;
            }
            Event::Eof => {}
        }
    }

    /// The newest counter task `t` can have issued: one past the newest it reported.
    pub fn issued(&self, t: u64) -> u64 {
        let a = self.acked.get(&t).copied().unwrap_or(0);
        let f = self
            .failed
            .get(&t)
            .and_then(|f| f.last().copied())
            .unwrap_or(0);
        a.max(f) + 1
    }

    fn failed(&self, t: u64) -> BTreeSet<u64> {
        self.failed.get(&t).cloned().unwrap_or_default()
    }
}

/// A running child.
pub struct Child {
    process: std::process::Child,
    rx: mpsc::Receiver<Event>,
    pub log: LifeLog,
    life: u64,
}

impl Child {
    pub fn spawn(sc: &Scenario, life: u64, faults: Option<&str>) -> Result<Child> {
        let exe = std::env::current_exe().context("finding the test binary to re-execute")?;
        let mut cmd = Command::new(&exe);
        match faults {
            Some(f) => cmd.env(FAULTS_ENV, f),
            None => cmd.env_remove(FAULTS_ENV),
        };
        let mut child = cmd
            .args(["--exact", sc.child_test, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .env(URL_ENV, &sc.cfg.url)
            .env(DIR_ENV, &sc.cfg.dir)
            .env(LIFE_ENV, life.to_string())
            .env(PAUSED_ENV, if sc.paused { "1" } else { "0" })
            .env(LOCAL_ENV, if sc.cfg.local { "1" } else { "0" })
            .env(DEADLINE_ENV, sc.cfg.deadline.as_millis().to_string())
            .env(MAY_FAIL_ENV, if sc.may_fail { "1" } else { "0" })
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("life {life}: spawning the child {}", exe.display()))?;
        let stdout = child
            .stdout
            .take()
            .context("the child's stdout is not piped")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut w = line.split_whitespace();
                let ev = match (w.next(), w.next(), w.next(), w.next()) {
                    (Some("ACK"), Some(t), Some(c), None) => {
                        Event::Ack(t.parse().unwrap(), c.parse().unwrap())
                    }
                    (Some("FAIL"), Some(t), Some(c), None) => {
                        Event::Fail(t.parse().unwrap(), c.parse().unwrap())
                    }
                    (Some("TIME"), Some(s), Some(r), Some(_)) => Event::Time {
                        secs: s.parse().unwrap(),
                        retries: r.parse().unwrap(),
                    },
                    _ => continue,
                };
                if tx.send(ev).is_err() {
                    return;
                }
            }
            let _ = tx.send(Event::Eof);
        });
        Ok(Child {
            process: child,
            rx,
            log: LifeLog::default(),
            life,
        })
    }

    /// Consume the child's output until `done` holds for what it reported. The child must
    /// not exit on its own meanwhile (it only stops when killed, or when a check failed).
    pub fn wait_until(&mut self, mut done: impl FnMut(&LifeLog) -> bool) -> Result<()> {
        while !done(&self.log) {
            let ev = self.rx.recv().unwrap_or(Event::Eof);
            if let Event::Eof = ev {
                let status = self
                    .process
                    .wait()
                    .with_context(|| format!("life {}: waiting for the child", self.life))?;
                panic!(
                    "life {}: the child stopped ({status}) after {:?}; see its stderr above",
                    self.life, self.log
                );
            }
            self.log.apply(&ev);
        }
        Ok(())
    }

    /// Take in whatever the child has printed so far, without waiting.
    pub fn drain(&mut self) -> &LifeLog {
        while let Ok(ev) = self.rx.try_recv() {
            self.log.apply(&ev);
        }
        &self.log
    }

    /// SIGKILL the child; everything it printed before dying counts as acknowledged.
    pub fn kill(mut self) -> Result<LifeLog> {
        let life = self.life;
        self.process
            .kill()
            .with_context(|| format!("life {life}: killing the child"))?;
        self.process
            .wait()
            .with_context(|| format!("life {life}: waiting for the killed child"))?;
        while let Ok(ev) = self.rx.recv() {
            if let Event::Eof = ev {
                break;
            }
            self.log.apply(&ev);
        }
        Ok(self.log)
    }
}

/// What the parent knows across lives.
#[derive(Default)]
pub struct Known {
    /// Every life's log, by life number.
    pub lives: BTreeMap<u64, LifeLog>,
    /// The value each key had at the previous check: `(life, counter)`.
    seen: BTreeMap<String, (u64, u64)>,
    /// Task 5's keys that survived each life's recovery.
    buffered: BTreeMap<u64, u64>,
}

impl Known {
    /// The newest acknowledged operation on `key` (owned by `task`): `(life, counter)`.
    fn newest_acked(&self, task: u64, key: &str) -> Option<(u64, u64)> {
        for (life, log) in self.lives.iter().rev() {
            let acked = log.acked.get(&task).copied().unwrap_or(0);
            let failed = log.failed(task);
            let newest = (1..=acked)
                .rev()
                .find(|c| !failed.contains(c) && op(task, *c).keys.iter().any(|k| k == key));
            if let Some(c) = newest {
                return Some((*life, c));
            }
        }
        None
    }

    /// Whether `(life, counter)` of `task` is an operation that can have happened.
    fn issued(&self, task: u64, life: u64, counter: u64) -> bool {
        self.lives
            .get(&life)
            .is_some_and(|l| counter >= 1 && counter <= l.issued(task))
    }

    /// Whether some operation on `key` newer than `after` deleted it.
    fn deleted_after(&self, task: u64, key: &str, after: Option<(u64, u64)>) -> bool {
        self.lives.iter().any(|(life, log)| {
            (1..=log.issued(task)).any(|c| {
                let o = op(task, c);
                after.is_none_or(|a| (*life, c) >= a) && o.delete && o.keys.iter().any(|k| k == key)
            })
        })
    }
}

/// Reopen the database after life `life` and check it against everything known (see the
/// module docs). `faults`: the spec the check opens with.
pub async fn verify(
    sc: &Scenario,
    known: &mut Known,
    life: u64,
    faults: Option<&str>,
    seed: u64,
) -> Result<()> {
    let ctx = format!("seed {seed} life {life}");
    let faults: Option<FaultSpec> = faults
        .map(|f| {
            f.parse()
                .with_context(|| format!("{ctx}: parsing the faults {f:?}"))
        })
        .transpose()?;
    let db = DbBuilder::from_url(&sc.cfg.url)
        .with_context(|| format!("{ctx}: parsing the store URL {}", sc.cfg.url))?
        .settings(settings(&sc.cfg))
        .store_faults(faults)
        .open()
        .await
        .with_context(|| format!("{ctx}: the database does not open"))?;
    let all = db
        .scan::<&str>(..)
        .with_context(|| format!("{ctx}: full scan"))?
        .collect(usize::MAX)
        .await
        .with_context(|| format!("{ctx}: full scan failed"))?;
    let mut state: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut last: Option<Vec<u8>> = None;
    for (k, v) in &all {
        assert!(
            last.as_deref() < Some(k.as_ref()),
            "{ctx}: scan out of order or duplicated at {k:?}"
        );
        last = Some(k.to_vec());
        let key = String::from_utf8(k.to_vec()).with_context(|| format!("{ctx}: key {k:?}"))?;
        state.insert(key, v.to_vec());
    }
    // Tasks 0-4: each key holds an operation's effect, no older than the newest acked one.
    let universe = universe();
    for (key, &task) in &universe {
        let lo = known.newest_acked(task, key);
        let prev = known.seen.get(key).copied();
        if let Some(v) = state.get(key) {
            let (l, t, c) = parse_value(v)
                .unwrap_or_else(|| panic!("{ctx}: {key} holds a foreign value {v:?}"));
            assert_eq!(t, task, "{ctx}: {key} holds task {t}'s value");
            let o = op(task, c);
            assert!(
                known.issued(task, l, c) && o.keys.contains(key) && !o.delete,
                "{ctx}: {key} holds ({l}, {c}), an operation that never wrote it"
            );
            assert!(
                lo.is_none_or(|lo| (l, c) >= lo),
                "{ctx}: acknowledged write lost: {key} holds ({l}, {c}) but ({lo:?}) was \
                 acknowledged"
            );
            assert!(
                prev.is_none_or(|p| (l, c) >= p),
                "{ctx}: {key} went back from {prev:?} to ({l}, {c})"
            );
            known.seen.insert(key.clone(), (l, c));
        } else {
            assert!(
                lo.is_none() || known.deleted_after(task, key, lo),
                "{ctx}: acknowledged write lost: {key} is absent but ({lo:?}) was \
                 acknowledged and nothing after it deleted the key"
            );
            assert!(
                prev.is_none() || known.deleted_after(task, key, prev),
                "{ctx}: {key} vanished after holding {prev:?}"
            );
        }
    }
    for t in (0..ACKED_TASKS).filter(|t| has_batches(*t)) {
        let [a, b] = pair_keys(t);
        assert_eq!(
            state.get(&a),
            state.get(&b),
            "{ctx}: torn batch of task {t}"
        );
    }
    // Task 5: a gap-free prefix per life, kept by later recoveries.
    let mut buffered: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for k in state.keys().filter(|k| !universe.contains_key(*k)) {
        let (l, c) = parse_buffered_key(k.as_bytes())
            .unwrap_or_else(|| panic!("{ctx}: a key outside the workload: {k:?}"));
        assert!(l <= life, "{ctx}: {k} is from the future");
        buffered.entry(l).or_default().push(c);
    }
    for l in 1..=life {
        let cs = buffered.remove(&l).unwrap_or_default();
        let n = cs.len() as u64;
        assert!(
            cs.iter().copied().eq(1..=n),
            "{ctx}: life {l}'s Buffered writes have a hole ({n} present, highest {:?})",
            cs.last()
        );
        let survived = *known.buffered.entry(l).or_insert(n);
        assert_eq!(
            survived, n,
            "{ctx}: life {l} kept {survived} Buffered writes, now {n}"
        );
    }
    // Scans agree with gets and with each other.
    let mut rng = Rng(seed ^ life);
    let keys: Vec<&String> = state.keys().collect();
    for k in keys.iter().step_by(7) {
        let got = db.get(k).await.with_context(|| format!("{ctx}: get {k}"))?;
        assert_eq!(
            got.as_deref(),
            state.get(*k).map(Vec::as_slice),
            "{ctx}: get {k}"
        );
    }
    for key in universe
        .keys()
        .filter(|k| !state.contains_key(*k))
        .step_by(3)
    {
        let got = db
            .get(key)
            .await
            .with_context(|| format!("{ctx}: get {key}"))?;
        assert_eq!(got, None, "{ctx}: get {key} finds what the scan did not");
    }
    if !keys.is_empty() {
        for _ in 0..10 {
            let a = rng.range(0, keys.len() as u64) as usize;
            let b = rng.range(a as u64, keys.len() as u64 + 1) as usize;
            let limit = rng.range(1, 50) as usize;
            let lo = keys[a].as_str();
            let scan = match keys.get(b) {
                Some(hi) => db.scan(lo..hi.as_str()),
                None => db.scan(lo..),
            }
            .with_context(|| format!("{ctx}: range scan {lo}..{:?}", keys.get(b)))?;
            let rows = scan
                .collect(limit)
                .await
                .with_context(|| format!("{ctx}: range scan {lo}..{:?}", keys.get(b)))?;
            let want: Vec<(&String, &Vec<u8>)> = state
                .range(lo.to_owned()..)
                .take(b - a)
                .take(limit)
                .collect();
            let got: Vec<(String, Vec<u8>)> = rows
                .into_iter()
                .map(|(k, v)| (String::from_utf8(k.to_vec()).unwrap(), v.to_vec()))
                .collect();
            assert!(
                got.iter().map(|(k, v)| (k, v)).eq(want.iter().copied()),
                "{ctx}: scan {lo}..{:?} limit {limit} disagrees with the full scan",
                keys.get(b)
            );
        }
    }
    for t in 0..=BUFFERED_TASK {
        let prefix = if t == BUFFERED_TASK {
            "b-".to_owned()
        } else {
            format!("t{t}-")
        };
        let rows = db
            .scan_prefix(&prefix)
            .with_context(|| format!("{ctx}: prefix scan {prefix}"))?
            .collect(usize::MAX)
            .await
            .with_context(|| format!("{ctx}: prefix scan {prefix}"))?;
        let want = state.iter().filter(|(k, _)| k.starts_with(&prefix)).count();
        assert_eq!(rows.len(), want, "{ctx}: prefix scan {prefix}");
    }
    db.close()
        .await
        .with_context(|| format!("{ctx}: close after the check"))?;
    Ok(())
}

/// A fresh directory for a scenario: `store/` (the object store, when it is a directory)
/// and `local-log/`.
pub fn file_config(dir: &Path, local: bool, deadline: Duration) -> Config {
    Config {
        url: format!("file://{}", dir.join("store").display()),
        dir: dir.to_path_buf(),
        local,
        deadline,
    }
}

/// The fault scenario of `chaos_faults.rs` (`local`: with a local log) and
/// `chaos_faults_remote.rs` (without): each life on paused time behind
/// `all=0.05,lost=0.02,timeout=0.002:5s,spike=0.01:2s` and a 5-20 s outage at a seeded
/// time, killed 20-60 simulated seconds in, then checked on an open under 5% errors and
/// 2% lost responses. No write may fail: every outage is shorter than the deadline.
pub async fn fault_scenario(default_seed: u64, local: bool) -> Result<()> {
    let seed = seed(default_seed);
    let dir = tempfile::tempdir().context("creating the scenario's directory")?;
    let sc = Scenario {
        child_test: "chaos_child",
        cfg: file_config(dir.path(), local, Duration::from_secs(60)),
        paused: true,
        may_fail: false,
    };
    let lives = if long_mode() { 16 } else { 4 };
    let mut rng = Rng(seed);
    let mut known = Known::default();
    let (mut secs, mut retries) = (0, 0);
    for life in 1..=lives {
        let kill_at = rng.range(20, 60);
        let outage = format!("{}s@{}s", rng.range(5, 20), rng.range(0, kill_at));
        let faults = format!(
            "all=0.05,lost=0.02,timeout=0.002:5s,spike=0.01:2s,outage={outage},seed={}",
            seed ^ life
        );
        let mut child = Child::spawn(&sc, life, Some(&faults))?;
        child.wait_until(|l| l.secs >= kill_at)?;
        let log = child.kill()?;
        eprintln!("life {life}: faults {faults}, killed at {kill_at}s: {log:?}");
        assert!(
            log.acks > 0,
            "seed {seed} life {life}: nothing acknowledged"
        );
        (secs, retries) = (secs + log.secs, retries + log.retries);
        known.lives.insert(life, log);
        let check = format!("all=0.05,lost=0.02,seed={}", seed ^ life ^ 0xc4ec);
        verify(&sc, &mut known, life, Some(&check), seed).await?;
    }
    assert!(secs >= 60, "only {secs} s of simulated time");
    assert!(retries > 0, "no store request was ever retried");
    Ok(())
}
