//! Single-writer fencing: a second writer's open fences the first one; the fenced writer's
//! WAL uploads and manifest writes fail with `ErrorKind::Closed(CloseReason::Fenced)`, and nothing it
//! acknowledged before the new writer opened is lost.

mod common;

use std::sync::Arc;

use anyhow::{Context, Result};
use common::{Gate, Hook, HookStore};
use futures::stream::BoxStream;
use futures::StreamExt;
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::{ObjectMeta, ObjectStore, Result as OsResult};
use silt::{CloseReason, Db, Durability, ErrorKind, Settings, WriteBatch, WriteOptions};

fn store() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}

fn root() -> Path {
    Path::from("db")
}

/// Small settings with a generous PUT budget, so sequential durable writes do not wait.
fn settings() -> Settings {
    let mut s = Settings::small_for_tests();
    s.wal.max_puts_per_sec = 10_000.0;
    s.wal.put_burst = 100;
    s
}

async fn open(store: &Arc<dyn ObjectStore>) -> Result<Db> {
    Db::open_with_store(Arc::clone(store), root(), settings())
        .await
        .context("open")
}

const BUFFERED: WriteOptions = WriteOptions::with_durability(Durability::Buffered);

/// Writes acknowledged by A: some flushed to an SST, some only in the WAL (one of them a
/// `Buffered` write made durable by `flush()`), a batch and a delete.
async fn write_acknowledged(a: &Db) -> Result<Vec<(String, Option<String>)>> {
    let mut expect = Vec::new();
    for i in 0..50 {
        a.put(format!("sst{i:02}"), format!("a{i}"))
            .await
            .with_context(|| format!("put sst{i:02}"))?;
        expect.push((format!("sst{i:02}"), Some(format!("a{i}"))));
    }
    a.flush_memtables().await.context("flush_memtables")?;
    for i in 0..20 {
        a.put(format!("wal{i:02}"), format!("a{i}"))
            .await
            .with_context(|| format!("put wal{i:02}"))?;
        expect.push((format!("wal{i:02}"), Some(format!("a{i}"))));
    }
    a.delete("sst07").await.context("delete sst07")?;
    expect[7].1 = None;
    let mut b = WriteBatch::new();
    b.put("batch-x", "1").put("batch-y", "2").delete("wal03");
    a.write(b).await.context("write the batch")?;
    expect.push(("batch-x".into(), Some("1".into())));
    expect.push(("batch-y".into(), Some("2".into())));
    expect[50 + 3].1 = None;
    a.put_with("buffered", "flushed", &BUFFERED)
        .await
        .context("put_with buffered")?;
    a.flush().await.context("flush")?;
    expect.push(("buffered".into(), Some("flushed".into())));
    Ok(expect)
}

async fn check(db: &Db, expect: &[(String, Option<String>)]) -> Result<()> {
    for (k, v) in expect {
        let got = db.get(k).await.with_context(|| format!("get {k}"))?;
        assert_eq!(
            got.as_deref(),
            v.as_deref().map(str::as_bytes),
            "key {k} through the new writer"
        );
    }
    let live = expect.iter().filter(|(_, v)| v.is_some()).count();
    let all = db
        .scan::<&str>(..)
        .context("full scan")?
        .collect(usize::MAX)
        .await
        .context("full scan")?;
    assert!(all.len() >= live);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_writer_fences_first_wal_put() -> Result<()> {
    let store = store();
    let a = open(&store).await.context("handle a")?;
    let expect = write_acknowledged(&a).await?;

    let b = open(&store).await.context("handle b")?;
    assert!(b.writer_epoch() > a.writer_epoch());

    // A's next durable write needs a WAL upload, which must be refused.
    let e = a.put("after-fence", "a").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed(CloseReason::Fenced), "{e}");
    assert!(e.is_fenced());
    // The WAL stays stopped: later writes fail the same way, durable or not.
    let e = a.put("after-fence-2", "a").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed(CloseReason::Fenced), "{e}");
    let e = a.flush().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed(CloseReason::Fenced), "{e}");

    check(&b, &expect).await?;
    assert_eq!(b.get("after-fence").await.context("get after-fence")?, None);

    // B keeps working, through the WAL, an SST flush and a reopen.
    b.put("b-key", "b").await.context("put b-key")?;
    b.flush_memtables().await.context("flush_memtables")?;
    b.put("b-key-2", "b").await.context("put b-key-2")?;
    b.close().await.context("close b")?;
    // A's close must not resurrect anything.
    let _ = a.close().await;

    let c = open(&store).await.context("handle c")?;
    check(&c, &expect).await?;
    assert_eq!(
        c.get("b-key").await.context("get b-key")?.as_deref(),
        Some(&b"b"[..])
    );
    assert_eq!(
        c.get("b-key-2").await.context("get b-key-2")?.as_deref(),
        Some(&b"b"[..])
    );
    assert_eq!(c.get("after-fence").await.context("get after-fence")?, None);
    assert_eq!(
        c.get("after-fence-2").await.context("get after-fence-2")?,
        None
    );
    c.close().await.context("close c")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_writer_manifest_write_fails() -> Result<()> {
    let store = store();
    let a = open(&store).await.context("handle a")?;
    let expect = write_acknowledged(&a).await?;
    // Unflushed data, so flush_memtables has an SST and a manifest to write.
    a.put("pending", "x").await.context("put pending")?;
    let mut expect = expect;
    expect.push(("pending".into(), Some("x".into())));

    let b = open(&store).await.context("handle b")?;
    let e = a.flush_memtables().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed(CloseReason::Fenced), "{e}");
    // The failed flush stopped A.
    let e = a.get("pending").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed(CloseReason::Fenced), "{e}");

    check(&b, &expect).await?;
    b.put("b-key", "b").await.context("put b-key")?;
    b.flush_memtables().await.context("flush_memtables")?;
    b.close().await.context("close b")?;

    // A's SST uploaded before the refused manifest write is not referenced by anyone.
    let c = open(&store).await.context("handle c")?;
    check(&c, &expect).await?;
    assert_eq!(
        c.get("b-key").await.context("get b-key")?.as_deref(),
        Some(&b"b"[..])
    );
    c.close().await.context("close c")?;
    Ok(())
}

/// A `Buffered` write A makes after being fenced is acknowledged locally, but its segment can
/// never be stored: `flush()` reports Fenced and no later writer sees the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_writer_buffered_write_is_never_visible() -> Result<()> {
    let store = store();
    let a = open(&store).await.context("handle a")?;
    let expect = write_acknowledged(&a).await?;
    let b = open(&store).await.context("handle b")?;

    // The append may or may not already know about the fence (it only learns on upload).
    match a.put_with("zombie", "a", &BUFFERED).await {
        Ok(()) => {
            let e = a.flush().await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Closed(CloseReason::Fenced), "{e}");
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::Closed(CloseReason::Fenced), "{e}"),
    }
    assert_eq!(b.get("zombie").await.context("get zombie")?, None);
    b.put("b-after", "b").await.context("put b-after")?;
    b.close().await.context("close b")?;

    let c = open(&store).await.context("handle c")?;
    assert_eq!(c.get("zombie").await.context("get zombie")?, None);
    assert_eq!(
        c.get("b-after").await.context("get b-after")?.as_deref(),
        Some(&b"b"[..])
    );
    check(&c, &expect).await?;
    c.close().await.context("close c")?;
    Ok(())
}

/// A read-only handle does not fence the writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_open_does_not_fence() -> Result<()> {
    let store = store();
    let a = open(&store).await.context("handle a")?;
    a.put("k", "1").await.context("put k")?;
    let r = Db::builder(Arc::clone(&store), root())
        .settings(settings())
        .read_only()
        .open()
        .await
        .context("open read-only")?;
    assert_eq!(
        r.get("k").await.context("get k")?.as_deref(),
        Some(&b"1"[..])
    );
    a.put("k", "2").await.context("put k")?;
    a.flush_memtables().await.context("flush_memtables")?;
    let e = r.put("x", "y").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    a.close().await.context("close a")?;
    Ok(())
}

/// Two writers opening at the same time: whatever the interleaving, once both opens have
/// returned exactly one handle can still write; the other fails with Fenced (at open or on
/// its next write). Writes either acknowledged before the race ended are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_opens_leave_exactly_one_writer() -> Result<()> {
    for round in 0..30 {
        let store = store();
        // An existing database, so both openers also replay something.
        let seed = open(&store).await.context("handle seed")?;
        seed.put("seed", "0").await.context("put seed")?;
        seed.close().await.context("close seed")?;

        let open_task = |name: &'static str| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let db = match Db::open_with_store(store, root(), settings()).await {
                    Ok(db) => db,
                    Err(e) => {
                        assert_eq!(
                            e.kind(),
                            ErrorKind::Closed(CloseReason::Fenced),
                            "round {round}, {name}: {e}"
                        );
                        return None;
                    }
                };
                let acked = match db.put(name, "first").await {
                    Ok(()) => true,
                    Err(e) => {
                        assert_eq!(
                            e.kind(),
                            ErrorKind::Closed(CloseReason::Fenced),
                            "round {round}, {name}: {e}"
                        );
                        false
                    }
                };
                Some((name, db, acked))
            })
        };
        let (x, y) = tokio::join!(open_task("x"), open_task("y"));
        let x = x.with_context(|| format!("round {round}: the open of x panicked"))?;
        let y = y.with_context(|| format!("round {round}: the open of y panicked"))?;
        let opened: Vec<_> = [x, y].into_iter().flatten().collect();
        assert!(!opened.is_empty(), "round {round}: neither open succeeded");

        let mut writers = Vec::new();
        let mut acked_first = Vec::new();
        for (name, db, acked) in opened {
            if acked {
                acked_first.push(name);
            }
            match db.put(format!("{name}-second"), "second").await {
                Ok(()) => writers.push((name, db)),
                Err(e) => assert_eq!(
                    e.kind(),
                    ErrorKind::Closed(CloseReason::Fenced),
                    "round {round}, {name}: {e}"
                ),
            }
        }
        assert_eq!(writers.len(), 1, "round {round}: not exactly one writer");
        let (winner, db) = writers.pop().context("no writer")?;
        db.close()
            .await
            .with_context(|| format!("round {round}: close {winner}"))?;

        let db = open(&store).await.context("handle db")?;
        assert_eq!(
            db.get("seed").await.context("get seed")?.as_deref(),
            Some(&b"0"[..])
        );
        for name in &acked_first {
            assert_eq!(
                db.get(name)
                    .await
                    .with_context(|| format!("get {name}"))?
                    .as_deref(),
                Some(&b"first"[..]),
                "round {round}: acknowledged write of {name} lost"
            );
        }
        let loser = if winner == "x" { "y" } else { "x" };
        assert_eq!(
            db.get(format!("{winner}-second"))
                .await
                .with_context(|| format!("get {winner}-second"))?
                .as_deref(),
            Some(&b"second"[..])
        );
        assert_eq!(
            db.get(format!("{loser}-second"))
                .await
                .with_context(|| format!("get {loser}-second"))?,
            None,
            "round {round}"
        );
        db.close().await.context("close")?;
    }
    Ok(())
}

/// Holds the first listing of `wal/` at the gate (the shared store behind it lists only once
/// released): this parks a writer's open between its manifest claim and its WAL fence.
#[derive(Debug)]
struct HoldWalListing(Arc<Gate>);

impl Hook for HoldWalListing {
    fn list(
        &self,
        inner: &Arc<dyn ObjectStore>,
        prefix: Option<&Path>,
    ) -> BoxStream<'static, OsResult<ObjectMeta>> {
        let is_wal = prefix.is_some_and(|p| p.filename() == Some("wal"));
        if !(is_wal && self.0.trip()) {
            return inner.list(prefix);
        }
        // List only after the release (the in-memory store lists when called).
        let (inner, prefix, gate) = (Arc::clone(inner), prefix.cloned(), Arc::clone(&self.0));
        futures::stream::once(async move {
            gate.hold().await;
            inner.list(prefix.as_ref())
        })
        .flatten()
        .boxed()
    }
}

/// Interleaving: X claims the manifest (epoch n), then Y claims (epoch n+1) and writes its
/// WAL fence, and only then does X write its fence (at the next free id, above Y's). X is
/// the older writer and must not end up accepting durable writes: either its open or its
/// first durable write fails with Fenced. Otherwise X acknowledges writes that every later
/// recovery skips (segments of an older epoch above a newer one are ignored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_writer_fencing_after_newer_writer_is_fenced() -> Result<()> {
    let shared = store();
    let seed = open(&shared).await.context("handle seed")?;
    seed.put("seed", "0").await.context("put seed")?;
    seed.close().await.context("close seed")?;

    let gate = Gate::new(true);
    let x_store: Arc<dyn ObjectStore> =
        HookStore::new(Arc::clone(&shared), HoldWalListing(Arc::clone(&gate)));
    let x_open =
        tokio::spawn(async move { Db::open_with_store(x_store, root(), settings()).await });
    // X has claimed its manifest and waits to list the WAL for its fence.
    gate.reached.notified().await;

    let y = open(&shared).await.context("handle y")?;
    gate.release.add_permits(1);
    let x_acked = match x_open.await.context("the x_open task panicked")? {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Closed(CloseReason::Fenced), "{e}");
            false
        }
        Ok(x) => {
            assert!(x.writer_epoch() < y.writer_epoch());
            match x.put("x-key", "x").await {
                Ok(()) => true,
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Closed(CloseReason::Fenced), "{e}");
                    false
                }
            }
        }
    };
    y.put("y-key", "y").await.context("put y-key")?;
    y.close().await.context("close y")?;

    let z = open(&shared).await.context("handle z")?;
    let x_value = z.get("x-key").await.context("get x-key")?;
    assert_eq!(
        z.get("y-key").await.context("get y-key")?.as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        z.get("seed").await.context("get seed")?.as_deref(),
        Some(&b"0"[..])
    );
    z.close().await.context("close z")?;
    assert!(
        !x_acked,
        "the older writer acknowledged a durable write after a newer writer opened \
         (visible after recovery: {x_value:?})"
    );
    Ok(())
}

/// An older writer's commit can take the manifest id a new claim wants (a flush of a
/// handle still running, or dropped a moment ago): the claim goes again on top of it
/// instead of failing as fenced, and sees what that commit added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_loses_its_id_to_an_older_writer_claims_again() -> Result<()> {
    use common::{in_dir, HoldAt, HoldPut};
    use silt::object_store::PutMode;

    let mem = store();
    let gate = Gate::new(false);
    let held: Arc<dyn ObjectStore> = HookStore::new(
        Arc::clone(&mem),
        HoldPut::new(&gate, HoldAt::Request, |p, o| {
            in_dir(p, "manifest") && matches!(o.mode, PutMode::Create)
        }),
    );
    let a = open(&mem).await.context("handle a")?;
    a.put("a-flushed", "1").await.context("put a-flushed")?;

    // B reads the newest manifest and stops right before its claim PUT.
    gate.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let b = tokio::spawn(async move { Db::open_with_store(held, root(), settings()).await });
    gate.reached.notified().await;
    // Meanwhile A's flush commits the manifest id B is about to claim.
    a.flush_memtables().await.context("flush_memtables")?;
    gate.release.add_permits(1);
    let b = b.await.context("the b task panicked")?.context("open b")?;
    assert!(b.writer_epoch() > a.writer_epoch());
    assert_eq!(
        b.get("a-flushed")
            .await
            .context("get a-flushed")?
            .as_deref(),
        Some(&b"1"[..])
    );
    // And A is fenced by it.
    let e = a.put("late", "x").await.unwrap_err();
    assert!(e.is_fenced(), "{e}");
    b.close().await.context("close b")?;
    Ok(())
}
