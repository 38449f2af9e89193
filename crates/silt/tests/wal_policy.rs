//! Deterministic tests of the remote WAL's flush policy on paused tokio time.
//!
//! An `InMemory` store is wrapped in [`CountingStore`], which counts the PUTs of WAL
//! segments (and their bytes) independently of the engine's own metrics. Every test runs on a
//! current-thread runtime whose clock starts paused, so the only time that passes is time the
//! test advances (or that tokio auto-advances while every task waits on a timer).
//!
//! Seal triggers under test (see `src/wal/remote/mod.rs`):
//! 1. size (`wal.segment_bytes`), 2. a waiting `Remote` writer with a token from the PUT
//!    bucket, 3. linger (`wal.flush_interval`), 4. explicit `flush()`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use common::{BoxFut, Hook, HookStore};
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::{
    ObjectMeta, ObjectStore, PutOptions, PutPayload, PutResult, Result as OsResult,
};
use silt::{Db, Durability, Settings, WriteOptions};
use tokio::time::Instant;

/// Counts PUTs of WAL segments (and their bytes) before passing them on.
#[derive(Debug, Default)]
struct WalPutCounter {
    wal_puts: AtomicU64,
    wal_bytes: AtomicU64,
}

impl Hook for WalPutCounter {
    fn put_opts<'a>(
        &'a self,
        inner: &'a Arc<dyn ObjectStore>,
        location: &'a Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFut<'a, OsResult<PutResult>> {
        if is_wal(location) {
            self.wal_puts.fetch_add(1, Ordering::SeqCst);
            self.wal_bytes
                .fetch_add(payload.content_length() as u64, Ordering::SeqCst);
        }
        inner.put_opts(location, payload, opts)
    }
}

/// An `InMemory` store counting the PUTs of WAL segments.
type CountingStore = HookStore<WalPutCounter>;

fn counting_store() -> Arc<CountingStore> {
    HookStore::new(Arc::new(InMemory::new()), WalPutCounter::default())
}

impl CountingStore {
    fn wal_puts(&self) -> u64 {
        self.hook.wal_puts.load(Ordering::SeqCst)
    }

    fn wal_bytes(&self) -> u64 {
        self.hook.wal_bytes.load(Ordering::SeqCst)
    }
}

fn is_wal(location: &Path) -> bool {
    let s = location.as_ref();
    s.starts_with("wal/") || s.contains("/wal/")
}

/// Let every spawned task (flusher, uploads) run until nothing is ready. On a current-thread
/// runtime with paused time, yielding never moves the clock.
async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

async fn open(store: &Arc<CountingStore>, settings: Settings) -> Result<Db> {
    let s: Arc<dyn ObjectStore> = store.clone();
    Db::builder(s, Path::from("db"))
        .settings(settings)
        .open()
        .await
        .context("open")
}

const BUFFERED: WriteOptions = WriteOptions::with_durability(Durability::Buffered);

fn metric(db: &Db, f: impl Fn(&silt::WalSnapshot) -> &u64) -> u64 {
    *f(&db.metrics().wal.unwrap())
}

/// (a) At low load a `Remote` put is sealed at once (a token is available): exactly one WAL
/// PUT beyond the fence segment written by open, and no simulated time passes.
#[tokio::test(start_paused = true)]
async fn lone_remote_put_is_durable_after_one_put_without_waiting() -> Result<()> {
    let store = counting_store();
    let mut s = Settings::small_for_tests();
    s.wal.flush_interval = Duration::from_secs(10);
    let db = open(&store, s).await?;
    settle().await;
    assert_eq!(
        store.wal_puts(),
        1,
        "open writes exactly one (fence) segment"
    );

    let t0 = Instant::now();
    db.put("k1", "v1").await.context("put k1")?;
    assert_eq!(
        Instant::now(),
        t0,
        "a lone Remote put must not wait for the linger"
    );
    assert_eq!(store.wal_puts(), 2, "one PUT for the lone Remote put");
    assert!(db.durable_seq() >= db.visible_seq());

    // The burst (2 tokens) covers a second lone put too.
    db.put("k2", "v2").await.context("put k2")?;
    assert_eq!(Instant::now(), t0);
    assert_eq!(store.wal_puts(), 3);
    settle().await;
    assert_eq!(store.wal_puts(), 3, "nothing else is uploaded while idle");
    assert_eq!(metric(&db, |m| &m.seals_remote), 2);
    assert_eq!(metric(&db, |m| &m.seals_linger), 0);

    // The bucket is empty now: the third put waits for one refill (1 / max_puts_per_sec),
    // which is still well before the 10 s linger.
    let t1 = Instant::now();
    db.put("k3", "v3").await.context("put k3")?;
    let waited = Instant::now() - t1;
    let refill = Duration::from_secs_f64(1.0 / db.settings().wal.max_puts_per_sec);
    assert!(
        waited <= refill + Duration::from_millis(1),
        "waited {waited:?}, refill is {refill:?}"
    );
    assert!(waited < db.settings().wal.flush_interval);
    assert_eq!(store.wal_puts(), 4);

    // The uploaded segment really holds the write.
    let listed: Vec<ObjectMeta> =
        futures::TryStreamExt::try_collect(store.inner.list(Some(&Path::from("db/wal"))))
            .await
            .context("list")?;
    assert_eq!(listed.len(), 4);
    db.close().await.context("close")?;
    Ok(())
}

/// (b) `Buffered` writes alone never trigger a PUT; the open segment is sealed exactly when
/// its oldest record has lingered `wal.flush_interval`.
#[tokio::test(start_paused = true)]
async fn buffered_writes_are_sealed_after_the_linger() -> Result<()> {
    let store = counting_store();
    let mut s = Settings::small_for_tests();
    s.wal.flush_interval = Duration::from_millis(100);
    let db = open(&store, s).await?;
    settle().await;
    assert_eq!(store.wal_puts(), 1);

    let t0 = Instant::now();
    for i in 0..10 {
        db.put_with(format!("b{i}"), "x", &BUFFERED)
            .await
            .with_context(|| format!("put_with b{i}"))?;
    }
    settle().await;
    assert_eq!(
        store.wal_puts(),
        1,
        "Buffered writes must not seal before the linger"
    );
    assert!(db.durable_seq() < db.visible_seq());

    tokio::time::advance(Duration::from_millis(60)).await;
    settle().await;
    // More records arriving later must not extend the linger of the oldest one.
    db.put_with("b-late", "x", &BUFFERED)
        .await
        .context("put_with b-late")?;
    tokio::time::advance(Duration::from_millis(39)).await;
    settle().await;
    assert_eq!(store.wal_puts(), 1, "sealed before the linger elapsed");

    tokio::time::advance(Duration::from_millis(1)).await;
    settle().await;
    assert_eq!(Instant::now() - t0, Duration::from_millis(100));
    assert_eq!(
        store.wal_puts(),
        2,
        "one segment sealed at the linger deadline"
    );
    assert_eq!(db.durable_seq(), db.visible_seq());
    assert_eq!(metric(&db, |m| &m.seals_linger), 1);

    // Idle afterwards: no more PUTs however long we wait.
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(store.wal_puts(), 2);

    // A new buffered write starts a new linger window.
    let t1 = Instant::now();
    db.put_with("b-next", "x", &BUFFERED)
        .await
        .context("put_with b-next")?;
    tokio::time::advance(Duration::from_millis(99)).await;
    settle().await;
    assert_eq!(store.wal_puts(), 2);
    tokio::time::advance(Duration::from_millis(1)).await;
    settle().await;
    assert_eq!(store.wal_puts(), 3);
    assert_eq!(Instant::now() - t1, Duration::from_millis(100));
    db.close().await.context("close")?;
    Ok(())
}

/// (c) Many concurrent `Remote` writers share segments: WAL PUTs stay within the token
/// bucket (burst + rate x elapsed) plus size-triggered seals, and every write is durable.
#[tokio::test(start_paused = true)]
async fn concurrent_remote_writers_respect_the_put_budget() -> Result<()> {
    const TASKS: usize = 200;
    const PUTS_PER_TASK: usize = 5;
    let store = counting_store();
    let mut s = Settings::small_for_tests();
    s.memtable_bytes = 64 << 20;
    s.wal.flush_interval = Duration::from_secs(1);
    s.wal.max_puts_per_sec = 10.0;
    s.wal.put_burst = 2;
    s.wal.segment_bytes = 8 * 1024;
    let (rate, burst, segment_bytes) =
        (s.wal.max_puts_per_sec, s.wal.put_burst, s.wal.segment_bytes);
    let db = Arc::new(open(&store, s).await?);
    settle().await;
    let puts_at_open = store.wal_puts();
    let bytes_at_open = store.wal_bytes();

    let t0 = Instant::now();
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let db = Arc::clone(&db);
        handles.push(tokio::spawn(async move {
            for i in 0..PUTS_PER_TASK {
                db.put(format!("t{t:03}-{i}"), vec![b'v'; 20])
                    .await
                    .with_context(|| format!("put t{t:03}-{i}"))?;
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for h in handles {
        h.await.context("a writer task panicked")??;
    }
    let elapsed = (Instant::now() - t0).as_secs_f64();
    let puts = store.wal_puts() - puts_at_open;
    let bytes = store.wal_bytes() - bytes_at_open;

    // Size seals are bounded by the bytes uploaded (each size-sealed segment holds at least
    // segment_bytes of body); +1 for floating-point refill slack.
    let size_seals_max = bytes / segment_bytes as u64;
    let budget = f64::from(burst) + rate * elapsed;
    let bound = budget.floor() as u64 + size_seals_max + 1;
    assert!(
        puts <= bound,
        "{puts} WAL PUTs in {elapsed:.3}s of simulated time exceed the budget {bound} \
         (burst {burst}, rate {rate}/s, {bytes} bytes)"
    );
    let writes = (TASKS * PUTS_PER_TASK) as u64;
    assert!(
        puts * 10 < writes,
        "{puts} PUTs for {writes} writes: no group commit"
    );
    // Every writer's latency is bounded by the refill interval, so the whole run takes about
    // PUTS_PER_TASK refills (a broken bucket that never refills would hit the linger instead).
    assert!(
        elapsed <= (PUTS_PER_TASK as f64 + 1.0) / rate,
        "took {elapsed:.3}s of simulated time"
    );
    assert_eq!(metric(&db, |m| &m.seals_linger), 0);
    assert_eq!(db.durable_seq(), db.visible_seq());
    let all = db
        .scan::<&str>(..)
        .context("scan")?
        .collect(usize::MAX)
        .await
        .context("collecting the scan")?;
    assert_eq!(all.len(), TASKS * PUTS_PER_TASK);
    db.close().await.context("close")?;

    // Everything acknowledged is in the WAL.
    let db = open(&store, Settings::small_for_tests()).await?;
    let all = db
        .scan::<&str>(..)
        .context("scan")?
        .collect(usize::MAX)
        .await
        .context("collecting the scan")?;
    assert_eq!(all.len(), TASKS * PUTS_PER_TASK);
    db.close().await.context("close")?;
    Ok(())
}

/// (d) Crossing `wal.segment_bytes` seals the segment at once, with no linger and no
/// waiting writer.
#[tokio::test(start_paused = true)]
async fn segment_size_trigger_seals_without_waiting() -> Result<()> {
    let store = counting_store();
    let mut s = Settings::small_for_tests();
    s.wal.flush_interval = Duration::from_secs(3600);
    s.wal.segment_bytes = 4096;
    let db = open(&store, s).await?;
    settle().await;
    assert_eq!(store.wal_puts(), 1);

    let t0 = Instant::now();
    let value = vec![b'x'; 1000];
    for i in 0..3 {
        db.put_with(format!("k{i}"), &value, &BUFFERED)
            .await
            .with_context(|| format!("put_with k{i}"))?;
    }
    settle().await;
    assert_eq!(
        store.wal_puts(),
        1,
        "3000 bytes < segment_bytes: nothing sealed yet"
    );

    db.put_with("k3", &value, &BUFFERED)
        .await
        .context("put_with k3")?;
    db.put_with("k4", &value, &BUFFERED)
        .await
        .context("put_with k4")?;
    settle().await;
    assert_eq!(
        store.wal_puts(),
        2,
        "crossing segment_bytes seals one segment"
    );
    assert_eq!(
        Instant::now(),
        t0,
        "the size trigger does not wait for time"
    );
    assert_eq!(metric(&db, |m| &m.seals_size), 1);
    assert_eq!(db.durable_seq(), db.visible_seq());

    // A Remote writer with an empty PUT budget still gets a size seal immediately.
    let store2 = counting_store();
    let mut s = Settings::small_for_tests();
    s.wal.flush_interval = Duration::from_secs(3600);
    s.wal.segment_bytes = 4096;
    s.wal.put_burst = 1;
    s.wal.max_puts_per_sec = 0.001;
    let db2 = open(&store2, s).await?;
    db2.put("first", "uses the only token")
        .await
        .context("put first")?;
    assert_eq!(store2.wal_puts(), 2);
    let t1 = Instant::now();
    db2.put("big", vec![b'y'; 5000]).await.context("put big")?;
    assert_eq!(
        Instant::now(),
        t1,
        "a full segment must not wait for a token"
    );
    assert_eq!(store2.wal_puts(), 3);
    db.close().await.context("close")?;
    db2.close().await.context("close db2")?;
    Ok(())
}
