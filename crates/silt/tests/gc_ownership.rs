//! Only the owner deletes, and grace counts from replacement.
//!
//! * A writer that another writer fenced, but that never wrote since (idle, or only
//!   reading), must not delete the new writer's objects in its GC passes: a pass that finds
//!   a manifest of a newer writer epoch deletes nothing and stops the handle with `Fenced`,
//!   also when it runs in the background on its own timer.
//! * A manifest protects its SSTs for `gc.grace` after the manifest that replaced it was
//!   stored, not after it was itself written: a reader of a long-lived manifest keeps its
//!   SSTs after a compaction supersedes it.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use common::{BoxFut, Hook, HookStore};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use parking_lot::Mutex;
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::{
    ObjectMeta, ObjectStore, ObjectStoreExt, PutOptions, PutPayload, PutResult, Result as OsResult,
};
use silt::{CloseReason, Db, ErrorKind, Settings};

fn root() -> Path {
    Path::from("db")
}

fn settings() -> Settings {
    let mut s = Settings::small_for_tests();
    s.wal.max_puts_per_sec = 10_000.0;
    s.wal.put_burst = 100;
    // Explicit passes only, unless a test turns the background task on.
    s.gc.enabled = false;
    s.compaction.enabled = false;
    s
}

async fn open(store: &Arc<dyn ObjectStore>, s: Settings) -> Result<Db> {
    Db::builder(Arc::clone(store), root())
        .settings(s)
        .open()
        .await
        .context("open")
}

async fn objects(store: &Arc<dyn ObjectStore>) -> Result<BTreeSet<String>> {
    store
        .list(Some(&root()))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .context("listing the store")
}

async fn put_range(db: &Db, tag: &str, n: usize) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for i in 0..n {
        // Values large enough that SSTs outgrow the tail an SST open prefetches.
        let (k, v) = (format!("{tag}-{i:03}"), format!("{tag}-value-{i}-{i:>200}"));
        db.put(&k, &v).await.with_context(|| format!("put {k}"))?;
        out.push((k, v));
    }
    Ok(out)
}

async fn check(db: &Db, expect: &[(String, String)]) -> Result<()> {
    for (k, v) in expect {
        assert_eq!(
            db.get(k)
                .await
                .with_context(|| format!("get {k}"))?
                .as_deref(),
            Some(v.as_bytes()),
            "key {k}"
        );
    }
    Ok(())
}

/// A holds the writer role and goes idle; B takes over, writes, flushes and compacts. A's
/// GC pass (even with zero grace) must delete nothing and fence A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_idle_writer_gc_deletes_nothing() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let a = open(&store, settings()).await.context("handle a")?;
    let mut expect = put_range(&a, "a", 100).await?;
    a.flush_memtables().await.context("flush_memtables")?;

    let b = open(&store, settings()).await.context("handle b")?;
    expect.extend(put_range(&b, "b", 100).await?);
    b.flush_memtables().await.context("flush_memtables")?;
    b.compact().await.context("compact")?;
    expect.extend(put_range(&b, "wal-only", 10).await?);
    let before = objects(&store).await?;

    let e = a.gc(Some(Duration::ZERO)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed(CloseReason::Fenced), "{e}");
    assert_eq!(
        objects(&store).await?,
        before,
        "a fenced writer's GC deleted objects"
    );
    // The handle is stopped as fenced: writes and flushes say so.
    let e = a.flush().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed(CloseReason::Fenced), "{e}");
    let e = a.put("late", "x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed(CloseReason::Fenced), "{e}");
    assert_eq!(a.metrics().engine.gc_deleted_sst, 0);
    let _ = a.close().await;

    check(&b, &expect).await?;
    b.close().await.context("close b")?;
    let c = open(&store, settings()).await.context("handle c")?;
    check(&c, &expect).await?;
    c.close().await.context("close c")?;
    Ok(())
}

/// With the background GC on, an idle fenced writer learns it is fenced within one GC
/// interval, without writing anything (paused time: the interval passes deterministically).
#[tokio::test(start_paused = true)]
async fn idle_writer_learns_it_is_fenced_within_one_gc_interval() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut s = settings();
    s.gc.enabled = true;
    s.gc.interval = Duration::from_secs(10);
    s.gc.grace = Duration::ZERO;
    let a = open(&store, s.clone()).await.context("handle a")?;
    let mut expect = put_range(&a, "a", 50).await?;
    a.flush_memtables().await.context("flush_memtables")?;

    let mut sb = s.clone();
    sb.gc.enabled = false;
    let b = open(&store, sb).await.context("handle b")?;
    expect.extend(put_range(&b, "b", 50).await?);
    b.flush_memtables().await.context("flush_memtables")?;
    b.compact().await.context("compact")?;
    assert!(
        a.flush().await.is_ok(),
        "A has not noticed yet (it wrote nothing)"
    );
    let before = objects(&store).await?;

    tokio::time::sleep(s.gc.interval + Duration::from_secs(1)).await;
    let e = a.flush().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed(CloseReason::Fenced), "{e}");
    assert_eq!(objects(&store).await?, before);
    let _ = a.close().await;
    b.close().await.context("close b")?;
    let c = open(&store, settings()).await.context("handle c")?;
    check(&c, &expect).await?;
    c.close().await.context("close c")?;
    Ok(())
}

/// Objects put while `backdate` is set are listed as written ten minutes earlier, as if
/// the database had been idle that long before the test's second phase.
#[derive(Debug, Default)]
struct Backdate {
    on: std::sync::atomic::AtomicBool,
    paths: Mutex<HashSet<String>>,
}

const BACKDATE: Duration = Duration::from_secs(600);

impl Hook for Arc<Backdate> {
    fn put_opts<'a>(
        &'a self,
        inner: &'a Arc<dyn ObjectStore>,
        location: &'a Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFut<'a, OsResult<PutResult>> {
        if self.on.load(Ordering::SeqCst) {
            self.paths.lock().insert(location.to_string());
        }
        inner.put_opts(location, payload, opts)
    }

    fn list(
        &self,
        inner: &Arc<dyn ObjectStore>,
        prefix: Option<&Path>,
    ) -> BoxStream<'static, OsResult<ObjectMeta>> {
        let me = Arc::clone(self);
        inner
            .list(prefix)
            .map_ok(move |mut m| {
                if me.paths.lock().contains(m.location.as_ref()) {
                    m.last_modified -= BACKDATE;
                }
                m
            })
            .boxed()
    }
}

/// A reader opened a manifest that stayed current for ten minutes; then a compaction
/// replaced it. Its SSTs are older than `gc.grace` and so is the manifest itself, but the
/// replacement is new: they must stay for `gc.grace` after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_counts_from_the_replacing_manifest() -> Result<()> {
    let backdate = Arc::new(Backdate::default());
    backdate.on.store(true, Ordering::SeqCst);
    let store: Arc<dyn ObjectStore> =
        HookStore::new(Arc::new(InMemory::new()), Arc::clone(&backdate));
    let mut s = settings();
    s.gc.grace = Duration::from_secs(300);
    let w = open(&store, s.clone()).await.context("handle w")?;
    let expect = put_range(&w, "old", 600).await?;
    w.flush_memtables().await.context("flush_memtables")?;
    let reader = Db::builder(Arc::clone(&store), root())
        .settings(s.clone())
        .read_only()
        .open()
        .await
        .context("open the reader")?;

    // Ten minutes later (as the store's timestamps tell), the writer compacts.
    backdate.on.store(false, Ordering::SeqCst);
    w.compact().await.context("compact")?;
    let report = w.gc(None).await.context("gc")?;
    assert_eq!(
        report.sst, 0,
        "SSTs of a manifest replaced just now were deleted"
    );
    // The manifest the writer's open wrote was replaced ten minutes ago: it is gone (the
    // pass that `compact` ran deleted it).
    let left = objects(&store).await?;
    assert!(
        !left.contains("db/manifest/00000000000000000001.manifest"),
        "{left:?}"
    );
    // The reader still reads its manifest's SSTs from the store.
    check(&reader, &expect).await?;
    reader.close().await.context("close reader")?;

    // With the protection over (grace zero), the superseded SSTs do go.
    let report = w.gc(Some(Duration::ZERO)).await.context("gc")?;
    assert!(report.sst >= 1, "{report:?}");
    check(&w, &expect).await?;
    w.close().await.context("close w")?;
    Ok(())
}

/// A fenced writer's WAL upload that outlives `gc.grace / 2` (an outage, a frozen VM) and
/// then lands at an id whose fence the new owner has since collected must not count: it
/// checks the newest manifest first and fails as fenced. Otherwise it would acknowledge a
/// write the new owner never replays.
#[tokio::test(start_paused = true)]
async fn a_late_upload_checks_ownership_before_it_counts() -> Result<()> {
    use common::{in_dir, Gate, HoldAt, HoldPut, HookStore};

    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let gate = Gate::new(false);
    let held: Arc<dyn ObjectStore> = HookStore::new(
        Arc::clone(&mem),
        HoldPut::new(&gate, HoldAt::Request, |p, _| in_dir(p, "wal")),
    );
    let mut s = settings();
    s.gc.grace = Duration::from_secs(600);
    // The writer keeps waiting for its segment for as long as the test runs.
    s.store.retry.deadline = Duration::from_secs(3600);
    let a = Arc::new(open(&held, s.clone()).await?);
    a.put("before", "1").await.context("put before")?;
    gate.armed.store(true, Ordering::SeqCst);
    let late = tokio::spawn({
        let a = Arc::clone(&a);
        async move { a.put("late", "2").await }
    });
    gate.reached.notified().await;
    // Six minutes later, writer B takes over: its fence takes the id A's upload wants.
    tokio::time::sleep(Duration::from_secs(360)).await;
    let b = open(&mem, s.clone()).await.context("handle b")?;
    let fence = objects(&mem)
        .await?
        .into_iter()
        .filter(|o| o.contains("/wal/"))
        .max()
        .context("no WAL segment")?;
    // ... and, the grace long over in its own view, collects it.
    mem.delete(&Path::from(fence.as_str()))
        .await
        .with_context(|| format!("delete {fence}"))?;
    gate.release.add_permits(1);
    let e = late.await.context("the late task panicked")?.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed(CloseReason::Fenced), "{e}");
    assert_eq!(
        b.get("before").await.context("get before")?.as_deref(),
        Some(&b"1"[..])
    );
    b.close().await.context("close b")?;
    Ok(())
}
