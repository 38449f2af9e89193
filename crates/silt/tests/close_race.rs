//! `close()` racing with writes: a write either is sequenced before the close (and then is
//! durable as requested once acknowledged) or fails with `Closed`; none waits forever.
//!
//! The interleaving is forced: the final flush's WAL PUT is held at a gate while writes are
//! issued, and the PUT budget is spent with the linger set to an hour, so nothing but
//! `close` would ever upload a later segment. `tokio::time::timeout` only detects a hang.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use common::{in_dir, BoxFut, Gate, HoldAt, HoldPut, Hook, HookStore};
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::{ObjectStore, PutOptions, PutPayload, PutResult, Result as OsResult};
use silt::{CloseReason, Db, Durability, ErrorKind, Settings, WriteOptions};

/// Generous bound for things that must finish; reaching it means a hang.
const HANG: Duration = Duration::from_secs(30);

/// Once armed, every SST PUT fails for good (the memtable flush fails and stops the
/// database).
#[derive(Debug, Default)]
struct FailSstPuts(AtomicBool);

impl Hook for FailSstPuts {
    fn put_opts<'a>(
        &'a self,
        inner: &'a Arc<dyn ObjectStore>,
        location: &'a Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFut<'a, OsResult<PutResult>> {
        if location.as_ref().contains("/sst/") && self.0.load(Ordering::SeqCst) {
            return Box::pin(async {
                // Not transient (a transient one is retried and does not stop anything).
                Err(silt::object_store::Error::PermissionDenied {
                    path: "sst".into(),
                    source: "injected SST PUT failure".into(),
                })
            });
        }
        inner.put_opts(location, payload, opts)
    }
}

fn settings(flush_on_close: bool) -> Settings {
    let mut s = Settings::small_for_tests();
    // One PUT token, practically never refilled, and no linger: after the first Remote
    // write only an explicit flush (close's) seals a segment.
    s.wal.max_puts_per_sec = 0.001;
    s.wal.put_burst = 1;
    s.wal.flush_interval = Duration::from_secs(3600);
    s.flush_on_close = flush_on_close;
    s
}

async fn race(flush_on_close: bool) -> Result<()> {
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let gate = Gate::new(false);
    let store = HookStore::new(
        Arc::clone(&mem),
        HoldPut::new(&gate, HoldAt::Request, |p, _| in_dir(p, "wal")),
    );
    let root = Path::from("db");
    let db = Arc::new(
        Db::open_with_store(store, root.clone(), settings(flush_on_close))
            .await
            .context("open")?,
    );
    // Spends the token (a Remote seal).
    db.put("before-remote", "1")
        .await
        .context("put before-remote")?;
    let buffered = WriteOptions::with_durability(Durability::Buffered);
    db.put_with("before-buffered", "2", &buffered)
        .await
        .context("put before-buffered")?;

    gate.armed.store(true, Ordering::SeqCst);
    let reached = gate.reached.notified();
    let closer = tokio::spawn({
        let db = Arc::clone(&db);
        async move { db.close().await }
    });
    // The final flush's PUT is held: close is in the middle of it.
    tokio::time::timeout(HANG, reached)
        .await
        .context("close never uploaded its final segment")?;

    let racer_buffered = db.put_with("racer-buffered", "3", &buffered).await;
    let seq = db.visible_seq();
    let racer_remote = tokio::spawn({
        let db = Arc::clone(&db);
        async move { db.put("racer-remote", "4").await }
    });
    // Let the Remote racer get as far as it will before close goes on: sequenced (it then
    // waits for durability) or finished.
    tokio::time::timeout(HANG, async {
        while !racer_remote.is_finished() && db.visible_seq() == seq {
            tokio::task::yield_now().await;
        }
    })
    .await
    .context("the Remote racer neither failed nor was sequenced")?;
    gate.release.add_permits(1);

    tokio::time::timeout(HANG, closer)
        .await
        .context("close hung")?
        .context("the close task panicked")?
        .context("close")?;
    let racer_remote = tokio::time::timeout(HANG, racer_remote)
        .await
        .context("a Remote write racing close waits forever")?
        .context("the Remote racer panicked")?;

    let reopened = Db::open_with_store(mem, root, settings(true))
        .await
        .context("reopen")?;
    for (key, result) in [
        ("racer-buffered", &racer_buffered),
        ("racer-remote", &racer_remote),
    ] {
        match result {
            Ok(()) => assert!(
                reopened
                    .get(key)
                    .await
                    .with_context(|| format!("get {key} after reopening"))?
                    .is_some(),
                "{key} was acknowledged but is lost after close"
            ),
            Err(e) => assert_eq!(
                e.kind(),
                ErrorKind::Closed(CloseReason::Clean),
                "{key}: {e}"
            ),
        }
    }
    for key in ["before-remote", "before-buffered"] {
        assert!(
            reopened
                .get(key)
                .await
                .with_context(|| format!("get {key} after reopening"))?
                .is_some(),
            "{key} lost"
        );
    }
    reopened.close().await.context("close the reopened db")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_racing_close_are_durable_or_closed() -> Result<()> {
    race(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_racing_close_without_memtable_flush_are_durable_or_closed() -> Result<()> {
    race(false).await
}

/// A concurrent second `close` returns only once the first has made everything durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_close_waits_for_the_first() -> Result<()> {
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let gate = Gate::new(false);
    let store = HookStore::new(
        Arc::clone(&mem),
        HoldPut::new(&gate, HoldAt::Request, |p, _| in_dir(p, "wal")),
    );
    let db = Arc::new(
        Db::open_with_store(store, Path::from("db"), settings(false))
            .await
            .context("open")?,
    );
    let buffered = WriteOptions::with_durability(Durability::Buffered);
    db.put_with("k", "v", &buffered).await.context("put k")?;
    gate.armed.store(true, Ordering::SeqCst);
    let reached = gate.reached.notified();
    let first = tokio::spawn({
        let db = Arc::clone(&db);
        async move { db.close().await }
    });
    tokio::time::timeout(HANG, reached)
        .await
        .context("the first close never reached its final flush")?;
    // While the final flush is held, the second close must not return (first poll).
    let mut second = Box::pin(db.close());
    assert!(
        futures::poll!(&mut second).is_pending(),
        "second close returned while the first was still flushing"
    );
    assert_eq!(db.durable_seq(), 0, "the held flush is not durable yet");
    gate.release.add_permits(1);
    tokio::time::timeout(HANG, first)
        .await
        .context("the first close hung")?
        .context("the first close panicked")?
        .context("the first close")?;
    tokio::time::timeout(HANG, second)
        .await
        .context("the second close hung")?
        .context("the second close")?;
    assert!(db.durable_seq() >= 1);
    Ok(())
}

/// A database stopped by a failed memtable flush closes without a final WAL flush; a
/// `Remote` writer still waiting then must get `Closed`, not wait forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_writer_waiting_when_a_stopped_db_closes_gets_closed() -> Result<()> {
    let store = HookStore::new(Arc::new(InMemory::new()), FailSstPuts::default());
    let db = Arc::new(
        Db::open_with_store(store.clone(), Path::from("db"), settings(true))
            .await
            .context("open")?,
    );
    db.put("before", "1").await.context("put before")?;
    let seq = db.visible_seq();
    let waiting = tokio::spawn({
        let db = Arc::clone(&db);
        async move { db.put("waiting", "2").await }
    });
    tokio::time::timeout(HANG, async {
        while db.visible_seq() == seq {
            tokio::task::yield_now().await;
        }
    })
    .await
    .context("the waiting put was never sequenced")?;
    store.hook.0.store(true, Ordering::SeqCst);
    assert!(db.flush_memtables().await.is_err());
    tokio::time::timeout(HANG, db.close())
        .await
        .context("close hung")?
        .context("close")?;
    let e = tokio::time::timeout(HANG, waiting)
        .await
        .context("a Remote writer waits forever after close")?
        .context("the waiting writer panicked")?
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed(CloseReason::Clean), "{e}");
    Ok(())
}
