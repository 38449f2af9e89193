//! Create-only PUTs with an uncertain outcome. `object_store` retries a PUT whose response
//! was lost and the retry meets our own first attempt (412 → `AlreadyExists`); S3 answers
//! two racing conditional PUTs with 409, mapped to `AlreadyExists` too, although the other
//! PUT may never land. For WAL segments, manifests (the writer claim on open and the
//! commits of flushes and compactions) and SSTs, the engine must read the object back:
//! our own bytes are success, nothing there means try again, and someone else's bytes
//! fence (manifest) or move the SST to a fresh name. Every case reopens and checks the
//! data.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use common::{in_dir, BoxFut, Gate, HoldAt, HoldPut, Hook, HookStore};
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, PutResult, Result as OsResult,
};
use silt::objstore::Storage;
use silt::{Bytes, CloseReason, Db, ErrorKind, Settings};

/// What the hook does to a create-only PUT it is armed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Store the object, then answer `AlreadyExists`: the response was lost and
    /// `object_store`'s retry hit 412.
    LostResponse,
    /// Answer `AlreadyExists` without storing: S3's 409 for a race the other PUT lost.
    Conflict,
    /// Store foreign bytes at the path first, then delegate (the inner store refuses).
    Foreign,
}

const FOREIGN: &[u8] = b"someone else's object";

/// Faults the next `armed` create-only PUTs to paths containing `kind`.
#[derive(Debug)]
struct Faults {
    kind: &'static str,
    fault: Fault,
    armed: AtomicUsize,
    /// Paths faulted, in order.
    hits: Mutex<Vec<Path>>,
}

impl Hook for Faults {
    fn put_opts<'a>(
        &'a self,
        inner: &'a Arc<dyn ObjectStore>,
        location: &'a Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFut<'a, OsResult<PutResult>> {
        let applies = matches!(opts.mode, PutMode::Create)
            && location.as_ref().contains(self.kind)
            && self
                .armed
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if !applies {
            return inner.put_opts(location, payload, opts);
        }
        self.hits.lock().unwrap().push(location.clone());
        let refused = || silt::object_store::Error::AlreadyExists {
            path: location.to_string(),
            source: "injected by the test".into(),
        };
        Box::pin(async move {
            match self.fault {
                Fault::LostResponse => {
                    inner.put_opts(location, payload, opts).await?;
                    Err(refused())
                }
                Fault::Conflict => Err(refused()),
                Fault::Foreign => {
                    inner
                        .put(location, PutPayload::from_static(FOREIGN))
                        .await?;
                    inner.put_opts(location, payload, opts).await
                }
            }
        })
    }
}

type Faulty = Arc<HookStore<Faults>>;

fn faulty(kind: &'static str, fault: Fault) -> Faulty {
    HookStore::new(
        Arc::new(InMemory::new()),
        Faults {
            kind,
            fault,
            armed: AtomicUsize::new(0),
            hits: Mutex::new(Vec::new()),
        },
    )
}

fn arm(store: &Faulty, n: usize) {
    store.hook.armed.store(n, Ordering::SeqCst);
}

fn hits(store: &Faulty) -> usize {
    store.hook.hits.lock().unwrap().len()
}

fn root() -> Path {
    Path::from("db")
}

/// No background compaction or GC (every PUT comes from the test's own calls), no flush on
/// close (what is not flushed stays in the WAL and must replay), a generous PUT budget.
fn settings() -> Settings {
    let mut s = Settings::small_for_tests();
    s.compaction.enabled = false;
    s.gc.enabled = false;
    s.flush_on_close = false;
    s.wal.max_puts_per_sec = 10_000.0;
    s.wal.put_burst = 100;
    s
}

async fn open(store: &Faulty) -> silt::Result<Db> {
    let store: Arc<dyn ObjectStore> = store.clone();
    Db::open_with_store(store, root(), settings()).await
}

fn key(i: usize) -> String {
    format!("key{i:04}")
}

fn value(i: usize) -> String {
    format!("value-{i:04}")
}

/// `Remote` puts of keys `range` (each acknowledged once its WAL segment is stored).
async fn put_range(db: &Db, range: std::ops::Range<usize>) -> Result<()> {
    for i in range {
        db.put(key(i), value(i))
            .await
            .with_context(|| format!("put {}", key(i)))?;
    }
    Ok(())
}

/// Reopen on the plain inner store (no hook) and check keys `0..n`.
async fn reopen_and_check(store: &Faulty, n: usize) -> Result<Db> {
    let db = Db::open_with_store(Arc::clone(&store.inner), root(), settings())
        .await
        .context("reopen without faults")?;
    for i in 0..n {
        assert_eq!(
            db.get(key(i))
                .await
                .with_context(|| format!("get {}", key(i)))?
                .as_deref(),
            Some(value(i).as_bytes()),
            "{} after reopen",
            key(i)
        );
    }
    Ok(db)
}

async fn report(store: &Faulty) -> Result<silt::inspect::StoreReport> {
    silt::inspect::inspect(&Storage::new(Arc::clone(&store.inner), root()))
        .await
        .context("inspect")
}

// ---- WAL segments ----

async fn wal_put_with(fault: Fault) -> Result<()> {
    let store = faulty("/wal/", fault);
    let db = open(&store).await.context("open with faults")?;
    put_range(&db, 0..10).await?;
    arm(&store, 1);
    // Acknowledged only once its segment is stored.
    put_range(&db, 10..20).await?;
    assert_eq!(hits(&store), 1, "the fault was not exercised");
    db.close().await.context("close")?;
    // Nothing was flushed to an SST: the keys come back from the WAL.
    assert!(report(&store).await?.ssts.is_empty());
    reopen_and_check(&store, 20)
        .await?
        .close()
        .await
        .context("close after reopening")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_upload_whose_response_was_lost_is_acknowledged() -> Result<()> {
    wal_put_with(Fault::LostResponse).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_upload_refused_with_nothing_there_is_retried() -> Result<()> {
    wal_put_with(Fault::Conflict).await?;
    Ok(())
}

// ---- The writer claim (manifest written on open) ----

async fn claim_with(fault: Fault) -> Result<()> {
    let store = faulty("/manifest/", fault);
    arm(&store, 1);
    let db = open(&store).await.context("open with faults")?;
    assert_eq!(hits(&store), 1, "the fault was not exercised");
    assert_eq!(db.writer_epoch(), 1);
    put_range(&db, 0..10).await?;
    db.close().await.context("close")?;
    let db = reopen_and_check(&store, 10).await?;
    assert_eq!(db.writer_epoch(), 2);
    db.close().await.context("close after reopening")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_whose_claim_response_was_lost_succeeds() -> Result<()> {
    claim_with(Fault::LostResponse).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_whose_claim_was_refused_with_nothing_there_succeeds() -> Result<()> {
    claim_with(Fault::Conflict).await?;
    Ok(())
}

// ---- Memtable flush: its SST and its manifest ----

async fn flush_with(kind: &'static str, fault: Fault) -> Result<()> {
    let store = faulty(kind, fault);
    let db = open(&store).await.context("open with faults")?;
    put_range(&db, 0..100).await?;
    arm(&store, 1);
    db.flush_memtables().await.context("flush_memtables")?;
    assert_eq!(hits(&store), 1, "the fault was not exercised");
    put_range(&db, 100..110).await?;
    db.close().await.context("close")?;
    let r = report(&store).await?;
    assert_eq!(r.l0_ssts, 1, "{r:?}");
    check_no_renamed_sst(&store).await?;
    reopen_and_check(&store, 110)
        .await?
        .close()
        .await
        .context("close after reopening")?;
    Ok(())
}

/// Every SST object in the store is referenced (none was left behind by a re-upload under a
/// new name), and a faulted SST PUT kept its name.
async fn check_no_renamed_sst(store: &Faulty) -> Result<()> {
    let r = report(store).await?;
    assert_eq!(r.sst_objects, r.ssts.len(), "{r:?}");
    if store.hook.kind == "/sst/" {
        let faulted = store.hook.hits.lock().unwrap()[0].clone();
        assert!(
            r.ssts.iter().any(|s| faulted.as_ref().contains(&s.id)),
            "{faulted} is not referenced: {r:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_whose_sst_response_was_lost_succeeds() -> Result<()> {
    flush_with("/sst/", Fault::LostResponse).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_whose_sst_was_refused_with_nothing_there_succeeds() -> Result<()> {
    flush_with("/sst/", Fault::Conflict).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_whose_manifest_response_was_lost_succeeds() -> Result<()> {
    flush_with("/manifest/", Fault::LostResponse).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_whose_manifest_was_refused_with_nothing_there_succeeds() -> Result<()> {
    flush_with("/manifest/", Fault::Conflict).await?;
    Ok(())
}

// ---- Compaction: its output SSTs and its manifest ----

/// Two L0 SSTs and some WAL-only keys; the fault is armed for the compaction.
async fn compact_with(kind: &'static str, fault: Fault) -> Result<Faulty> {
    let store = faulty(kind, fault);
    let db = open(&store).await.context("open with faults")?;
    put_range(&db, 0..100).await?;
    db.flush_memtables().await.context("flush_memtables")?;
    put_range(&db, 100..200).await?;
    db.flush_memtables().await.context("flush_memtables")?;
    put_range(&db, 200..210).await?;
    arm(&store, 1);
    db.compact().await.context("compact")?;
    assert_eq!(hits(&store), 1, "the fault was not exercised");
    db.close().await.context("close")?;
    let r = report(&store).await?;
    assert_eq!((r.l0_ssts, r.runs.len()), (0, 1), "{r:?}");
    reopen_and_check(&store, 210)
        .await?
        .close()
        .await
        .context("close")?;
    Ok(store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_whose_sst_response_was_lost_succeeds() -> Result<()> {
    let store = compact_with("/sst/", Fault::LostResponse).await?;
    // The compaction's inputs are still in the store (GC grace): only the run's SSTs are
    // checked here.
    let r = report(&store).await?;
    let faulted = store.hook.hits.lock().unwrap()[0].clone();
    assert!(
        r.ssts.iter().any(|s| faulted.as_ref().contains(&s.id)),
        "{faulted} is not referenced: {r:?}"
    );
    assert_eq!(
        r.sst_objects,
        2 + r.ssts.len(),
        "inputs + outputs only: {r:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_whose_manifest_response_was_lost_succeeds() -> Result<()> {
    compact_with("/manifest/", Fault::LostResponse).await?;
    Ok(())
}

// ---- Someone else's object ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_manifest_at_the_next_id_fences() -> Result<()> {
    let store = faulty("/manifest/", Fault::LostResponse);
    let db = open(&store).await.context("open with faults")?;
    put_range(&db, 0..100).await?;
    // A newer writer's manifest takes the id this writer's next commit needs.
    let next = report(&store).await?.manifest_id + 1;
    let theirs = silt_format::manifest::encode_manifest(&silt_format::manifest::Manifest {
        id: next,
        writer_epoch: 7,
        wal_replay_from: 1,
        ..Default::default()
    });
    store
        .inner
        .put(
            &Path::from(format!("db/manifest/{next:020}.manifest")),
            PutPayload::from(theirs),
        )
        .await
        .with_context(|| format!("put the foreign manifest {next}"))?;
    let e = db.flush_memtables().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed(CloseReason::Fenced), "{e}");
    assert_eq!(
        db.put("after", "fenced").await.unwrap_err().kind(),
        ErrorKind::Closed(CloseReason::Fenced)
    );
    Ok(())
}

/// The SST went up under a name other than the one the foreign object holds, which is left
/// as it was.
async fn check_foreign_sst_kept(store: &Faulty) -> Result<()> {
    let foreign = store.hook.hits.lock().unwrap()[0].clone();
    let bytes: Bytes = store
        .inner
        .get(&foreign)
        .await
        .with_context(|| format!("get {foreign}"))?
        .bytes()
        .await
        .context("reading the body")?;
    assert_eq!(bytes.as_ref(), FOREIGN);
    let r = report(store).await?;
    assert!(!r.ssts.is_empty());
    for s in &r.ssts {
        assert!(
            !foreign.as_ref().contains(&s.id),
            "the manifest references the foreign object {foreign}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_sst_whose_name_is_taken_goes_up_under_another() -> Result<()> {
    let store = faulty("/sst/", Fault::Foreign);
    flush_with_foreign(&store).await?;
    check_foreign_sst_kept(&store).await?;
    Ok(())
}

async fn flush_with_foreign(store: &Faulty) -> Result<()> {
    let db = open(store).await.context("open with faults")?;
    put_range(&db, 0..100).await?;
    arm(store, 1);
    db.flush_memtables().await.context("flush_memtables")?;
    assert_eq!(hits(store), 1, "the fault was not exercised");
    db.close().await.context("close")?;
    reopen_and_check(store, 100)
        .await?
        .close()
        .await
        .context("close after reopening")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_sst_whose_name_is_taken_goes_up_under_another() -> Result<()> {
    let store = compact_with("/sst/", Fault::Foreign).await?;
    check_foreign_sst_kept(&store).await?;
    Ok(())
}

/// Two writers claiming from the same manifest would write the same id and epoch; the
/// loser reads the winner's claim back and must not take it for its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_claim_read_back_is_not_mistaken_for_ours() -> Result<()> {
    let gate = Gate::new(true);
    let store: Arc<dyn ObjectStore> = HookStore::new(
        Arc::new(InMemory::new()),
        HoldPut::new(&gate, HoldAt::Request, |p, o| {
            in_dir(p, "manifest") && matches!(o.mode, PutMode::Create)
        }),
    );
    let a = tokio::spawn({
        let store = Arc::clone(&store);
        async move { Db::open_with_store(store, root(), settings()).await }
    });
    // A has read the (empty) database and is about to create manifest 1.
    gate.reached.notified().await;
    let b = Db::open_with_store(Arc::clone(&store), root(), settings())
        .await
        .context("open")?;
    gate.release.add_permits(1);
    let e = a.await.context("the a task panicked")?.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed(CloseReason::Fenced), "{e}");
    b.put("b", "wins").await.context("put b")?;
    b.close().await.context("close b")?;
    let b = Db::open_with_store(store, root(), settings())
        .await
        .context("reopen")?;
    assert_eq!(
        b.get("b").await.context("get b")?.as_deref(),
        Some(&b"wins"[..])
    );
    b.close().await.context("close after reopening")?;
    Ok(())
}

// ---- Bounded ----

/// A store that refuses the manifest's create-only PUT every time with nothing there (a 409
/// race that never settles): each resolution makes 3 attempts, `Storage` repeats it until
/// the deadline, and past that the flush's commit tries the same bytes again rather than
/// stop the handle (the outcome is unknown, so no other manifest may take the id). The
/// handle keeps taking writes meanwhile, and the flush commits once the store settles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_refused_every_time_with_nothing_there_keeps_trying() -> Result<()> {
    let store = faulty("/manifest/", Fault::Conflict);
    let mut s = settings();
    s.store.retry.deadline = std::time::Duration::from_millis(300);
    s.store.retry.max = std::time::Duration::from_millis(100);
    let db = Arc::new(
        Db::open_with_store(store.clone(), root(), s)
            .await
            .context("open")?,
    );
    put_range(&db, 0..100).await?;
    arm(&store, usize::MAX);
    let flush = tokio::spawn({
        let db = Arc::clone(&db);
        async move { db.flush_memtables().await }
    });
    // Wait (polling the counter, not a fixed sleep) until the commit gave up twice.
    while db.metrics().engine.manifest_write_retries < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        !flush.is_finished(),
        "the flush ended while the store refused"
    );
    let n = hits(&store);
    assert!(n >= 6, "{n} attempts at the create");
    // The handle is not stopped: a Remote write (WAL only) is acknowledged.
    db.put("k", "v")
        .await
        .context("put while the manifest is refused")?;

    arm(&store, 0);
    flush
        .await
        .context("the flush task panicked")?
        .context("flush once the store settles")?;
    assert_eq!(
        db.get("k").await.context("get k")?.as_deref(),
        Some(&b"v"[..])
    );
    Ok(())
}
