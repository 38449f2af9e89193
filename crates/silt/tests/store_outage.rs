//! Riding out an object-store outage (issue "Ride out object-store faults", item 3): while
//! every request fails with a transient error, Remote writes wait, the WAL keeps retrying
//! its uploads, memtable flushes pause; once the store answers again everything resumes on
//! the same handle. A write that waited past `store.retry.deadline` fails with
//! `Unavailable`, and the handle stays usable. Paused time: outages of minutes take
//! microseconds, deterministically.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use common::{BoxFut, Hook, HookStore};
use futures::stream::BoxStream;
use futures::StreamExt;
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::{
    GetOptions, GetResult, ObjectMeta, ObjectStore, PutOptions, PutPayload, PutResult,
    Result as OsResult,
};
use silt::{Db, ErrorKind, Settings};

/// While `down` is set, every PUT, GET and LIST fails as a dropped connection would.
#[derive(Debug, Default)]
struct Outage {
    down: AtomicBool,
    /// While set, only manifest PUTs fail.
    manifests_down: AtomicBool,
}

fn refused() -> silt::object_store::Error {
    silt::object_store::Error::Generic {
        store: "test",
        source: "connection refused (injected outage)".into(),
    }
}

impl Hook for Arc<Outage> {
    fn put_opts<'a>(
        &'a self,
        inner: &'a Arc<dyn ObjectStore>,
        location: &'a Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFut<'a, OsResult<PutResult>> {
        let manifest = location.as_ref().contains("manifest");
        if self.down.load(Ordering::SeqCst)
            || (manifest && self.manifests_down.load(Ordering::SeqCst))
        {
            return Box::pin(async { Err(refused()) });
        }
        inner.put_opts(location, payload, opts)
    }

    fn get_opts<'a>(
        &'a self,
        inner: &'a Arc<dyn ObjectStore>,
        location: &'a Path,
        options: GetOptions,
    ) -> BoxFut<'a, OsResult<GetResult>> {
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(async { Err(refused()) });
        }
        inner.get_opts(location, options)
    }

    fn list(
        &self,
        inner: &Arc<dyn ObjectStore>,
        prefix: Option<&Path>,
    ) -> BoxStream<'static, OsResult<ObjectMeta>> {
        if self.down.load(Ordering::SeqCst) {
            return futures::stream::once(async { Err(refused()) }).boxed();
        }
        inner.list(prefix)
    }
}

fn settings() -> Settings {
    let mut s = Settings::small_for_tests();
    s.wal.max_puts_per_sec = 1000.0;
    s.gc.enabled = false;
    s.compaction.enabled = false;
    s.store.retry.deadline = Duration::from_secs(60);
    s
}

fn stores() -> (Arc<Outage>, Arc<dyn ObjectStore>, Arc<dyn ObjectStore>) {
    let outage = Arc::new(Outage::default());
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store: Arc<dyn ObjectStore> = HookStore::new(Arc::clone(&mem), Arc::clone(&outage));
    (outage, mem, store)
}

async fn open(store: &Arc<dyn ObjectStore>) -> Result<Db> {
    Db::builder(Arc::clone(store), Path::from("db"))
        .settings(settings())
        .open()
        .await
        .context("open")
}

async fn get(db: &Db, k: &str) -> Result<Option<String>> {
    db.get(k)
        .await
        .with_context(|| format!("get {k}"))?
        .map(|v| String::from_utf8(v.to_vec()).with_context(|| format!("the value of {k}")))
        .transpose()
}

#[tokio::test(start_paused = true)]
async fn a_remote_write_waits_out_an_outage_on_the_same_handle() -> Result<()> {
    let (outage, mem, store) = stores();
    let db = Arc::new(open(&store).await?);
    db.put("a", "1").await.context("put a")?;

    outage.down.store(true, Ordering::SeqCst);
    let w = tokio::spawn({
        let db = Arc::clone(&db);
        async move { db.put("b", "2").await }
    });
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!w.is_finished(), "acknowledged during the outage");
    // Reads of what the memtable holds go on.
    assert_eq!(get(&db, "a").await?.as_deref(), Some("1"));

    outage.down.store(false, Ordering::SeqCst);
    w.await.context("the w task panicked")?.context("put b")?;
    db.put("c", "3").await.context("put c")?;
    let retries = db.metrics().store_retries;
    assert!(retries.by_request["put"]["connection"] > 0, "{retries:?}");
    db.close().await.context("close")?;

    let db = open(&mem).await?;
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
        assert_eq!(get(&db, k).await?.as_deref(), Some(v), "{k}");
    }
    db.close().await.context("close")?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn past_the_deadline_a_write_fails_unavailable_and_the_handle_stays_usable() -> Result<()> {
    let (outage, mem, store) = stores();
    let db = open(&store).await?;
    outage.down.store(true, Ordering::SeqCst);
    let e = db.put("b", "2").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert_eq!(db.metrics().wal.unwrap().writer_timeouts, 1);
    outage.down.store(false, Ordering::SeqCst);
    // Same handle, no reopen.
    db.put("c", "3").await.context("put c")?;
    // The write that timed out was not acknowledged, but its segment kept being retried:
    // it is durable now, ahead of "c".
    db.close().await.context("close")?;
    let db = open(&mem).await?;
    assert_eq!(get(&db, "b").await?.as_deref(), Some("2"));
    assert_eq!(get(&db, "c").await?.as_deref(), Some("3"));
    db.close().await.context("close")?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_memtable_flush_pauses_during_an_outage_and_resumes() -> Result<()> {
    let (outage, mem, store) = stores();
    let db = open(&store).await?;
    for i in 0..100 {
        db.put(format!("k{i:03}"), "v")
            .await
            .with_context(|| format!("put k{i:03}"))?;
    }
    // An outage longer than the deadline (60 s): the flush's requests give up.
    outage.down.store(true, Ordering::SeqCst);
    let e = db.flush_memtables().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    tokio::time::sleep(Duration::from_secs(90)).await;
    assert_eq!(db.stats().l0_ssts, 0);
    assert!(db.metrics().store_retries.total > 0);
    outage.down.store(false, Ordering::SeqCst);
    // The background flusher retries on its own.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(db.stats().frozen_memtables, 0);
    assert_eq!(db.stats().l0_ssts, 1);
    assert!(db.metrics().engine.flush_failures >= 1);
    db.put("after", "x").await.context("put after")?;
    db.close().await.context("close")?;
    let db = open(&mem).await?;
    assert_eq!(get(&db, "k042").await?.as_deref(), Some("v"));
    assert_eq!(get(&db, "after").await?.as_deref(), Some("x"));
    db.close().await.context("close")?;
    Ok(())
}

/// Reads retry too: a point read that needs an SST block during an outage returns the
/// value once the store answers again; past the deadline it fails with `Unavailable`.
#[tokio::test(start_paused = true)]
async fn a_read_waits_out_an_outage_and_gives_up_at_the_deadline() -> Result<()> {
    let (outage, _mem, store) = stores();
    let mut s = settings();
    // No block cache: every read of the SST goes to the store.
    s.block_cache_bytes = 0;
    let db = Arc::new(
        Db::builder(Arc::clone(&store), Path::from("db"))
            .settings(s)
            .open()
            .await
            .context("open")?,
    );
    for i in 0..200 {
        db.put(format!("k{i:03}"), format!("v{i}"))
            .await
            .with_context(|| format!("put k{i:03}"))?;
    }
    db.flush_memtables().await.context("flush_memtables")?;

    outage.down.store(true, Ordering::SeqCst);
    let r = tokio::spawn({
        let db = Arc::clone(&db);
        async move { db.get("k123").await }
    });
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(!r.is_finished());
    outage.down.store(false, Ordering::SeqCst);
    let got = r
        .await
        .context("the r task panicked")?
        .context("get k123")?;
    assert_eq!(got.as_deref(), Some(&b"v123"[..]));
    assert!(db.metrics().store_retries.by_request["get_range"]["connection"] > 0);

    outage.down.store(true, Ordering::SeqCst);
    let e = db.get("k124").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(db.metrics().store_retries.gave_up > 0);
    outage.down.store(false, Ordering::SeqCst);
    assert_eq!(
        db.get("k124").await.context("get k124")?.as_deref(),
        Some(&b"v124"[..])
    );
    Ok(())
}

/// A memtable flush whose manifest write outlives `store.retry.deadline` (an outage of
/// five minutes on manifest PUTs, deadline 60 s) pauses and tries again; the handle is not
/// stopped: writes and reads go on, and once the store takes manifests again the flush
/// commits and a reopen finds its SST.
#[tokio::test(start_paused = true)]
async fn a_manifest_write_past_the_deadline_waits_instead_of_stopping_the_handle() -> Result<()> {
    let (outage, mem, store) = stores();
    let db = Arc::new(open(&store).await?);
    db.put("a", "1").await.context("put a")?;

    outage.manifests_down.store(true, Ordering::SeqCst);
    let flush = tokio::spawn({
        let db = Arc::clone(&db);
        async move { db.flush_memtables().await }
    });
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert!(!flush.is_finished(), "the flush ended during the outage");
    let retries = db.metrics().engine.manifest_write_retries;
    assert!(retries > 0, "the manifest write was never tried again");
    // The handle works: WAL uploads are not manifests.
    db.put("b", "2")
        .await
        .context("put b during the manifest outage")?;
    assert_eq!(get(&db, "a").await?.as_deref(), Some("1"));

    outage.manifests_down.store(false, Ordering::SeqCst);
    flush
        .await
        .context("the flush task panicked")?
        .context("flush after the outage")?;
    assert!(db.stats().l0_ssts >= 1, "{:?}", db.stats());
    db.put("c", "3").await.context("put c")?;
    db.close().await.context("close")?;

    let db = open(&mem).await?;
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
        assert_eq!(get(&db, k).await?.as_deref(), Some(v), "{k}");
    }
    db.close().await.context("close")?;
    Ok(())
}
