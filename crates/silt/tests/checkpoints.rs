//! Checkpoints and reader leases that GC honours (docs/ARCHITECTURE.md, "Compaction and
//! garbage collection"; docs/format.md, "Checkpoints").
//!
//! * A checkpoint reads the database exactly as it was, after overwrites, deletes,
//!   flushes, compactions and a GC pass with zero grace; the same history without the
//!   checkpoint's protection leaves an open at it failing.
//! * An expired checkpoint protects nothing: GC deletes it and what only it kept. A
//!   renewal stored only half of `gc.grace` after the expiry does not count.
//! * A read-only handle's lease keeps its manifest's SSTs through GC with zero grace; once
//!   closed, they go. A lease that lapses unrenewed makes the handle's reads fail.
//! * Deleting a checkpoint releases its objects; names are validated; an undecodable
//!   checkpoint object is a typed error and stops GC from deleting anything.
//!
//! GC with zero grace keeps SSTs stored in the current millisecond of the wall clock; the
//! tests that run on the real wall clock let it move past the newest SST first, as
//! `gc_race.rs` does. The others move a [`ManualWallClock`] instead.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context, Result};
use common::{BoxFut, Hook, HookStore};
use futures::TryStreamExt;
use parking_lot::Mutex;
use silt::clock::{Clock, ManualWallClock};
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, PutResult, Result as OsResult,
};
use silt::{CheckpointKind, CloseReason, Db, Error, ErrorKind, Settings};

fn root() -> Path {
    Path::from("db")
}

fn settings() -> Settings {
    let mut s = Settings::small_for_tests();
    s.wal.max_puts_per_sec = 10_000.0;
    s.wal.put_burst = 100;
    // Explicit passes only.
    s.gc.enabled = false;
    s.compaction.enabled = false;
    s
}

fn unix_millis() -> Result<u128> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_millis())
}

/// Let the wall clock move past everything stored so far, so GC with zero grace sees it
/// all as old (it keeps objects stored in the current millisecond).
fn let_wall_clock_pass() -> Result<()> {
    let stored = unix_millis()?;
    while unix_millis()? <= stored + 1 {
        std::hint::spin_loop();
    }
    Ok(())
}

async fn writer(store: &Arc<dyn ObjectStore>, clock: Option<Arc<dyn Clock>>) -> Result<Db> {
    let mut b = Db::builder(Arc::clone(store), root()).settings(settings());
    if let Some(c) = clock {
        b = b.clock(c);
    }
    b.open().await.context("open the writer")
}

async fn at_checkpoint(
    store: &Arc<dyn ObjectStore>,
    name: &str,
    clock: Option<Arc<dyn Clock>>,
) -> silt::Result<Db> {
    let mut b = Db::builder(Arc::clone(store), root())
        .settings(settings())
        .at_checkpoint(name);
    if let Some(c) = clock {
        b = b.clock(c);
    }
    b.open().await
}

async fn objects(store: &Arc<dyn ObjectStore>) -> Result<BTreeSet<String>> {
    store
        .list(Some(&root()))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .context("listing the store")
}

fn manifest_object(id: u64) -> String {
    format!("db/manifest/{id:020}.manifest")
}

/// Every key's value at one point of the history (`None`: absent or deleted).
type State = BTreeMap<String, Option<String>>;

fn value(tag: &str, i: usize) -> String {
    // Large enough that SSTs outgrow the tail an SST open prefetches.
    format!("{tag}-value-{i}-{i:>200}")
}

/// The history before the checkpoint: 100 keys flushed to an SST, one of them deleted and
/// 20 more written only to the WAL.
async fn before(db: &Db) -> Result<State> {
    let mut state = State::new();
    for i in 0..100 {
        let k = format!("k{i:03}");
        db.put(&k, value("old", i)).await.context("put")?;
        state.insert(k, Some(value("old", i)));
    }
    db.flush_memtables().await.context("flush_memtables")?;
    for i in 100..120 {
        let k = format!("k{i:03}");
        db.put(&k, value("wal", i)).await.context("put")?;
        state.insert(k, Some(value("wal", i)));
    }
    db.delete("k005").await.context("delete")?;
    state.insert("k005".into(), None);
    for r in 0..3 {
        state.insert(format!("later-{r}"), None);
    }
    state.insert("after-wal".into(), None);
    Ok(state)
}

/// The history after it: every key overwritten three times, some deleted, new keys, each
/// round flushed and compacted, then a WAL-only write.
async fn after(db: &Db) -> Result<()> {
    for r in 0..3 {
        for i in 0..120 {
            let k = format!("k{i:03}");
            if i % 10 == r {
                db.delete(&k).await.context("delete")?;
            } else {
                db.put(&k, value(&format!("new{r}"), i))
                    .await
                    .context("put")?;
            }
        }
        db.put(format!("later-{r}"), "x").await.context("put")?;
        db.flush_memtables().await.context("flush_memtables")?;
        db.compact().await.context("compact")?;
    }
    db.put("after-wal", "x").await.context("put")?;
    Ok(())
}

/// `db` reads exactly `state`, by point reads and by a scan.
async fn check(db: &Db, state: &State) -> Result<()> {
    for (k, want) in state {
        let got = db.get(k).await.with_context(|| format!("get {k}"))?;
        ensure!(
            got.as_deref() == want.as_deref().map(str::as_bytes),
            "key {k}: got {:?}, want {want:?}",
            got.map(|v| String::from_utf8_lossy(&v).into_owned())
        );
    }
    let scanned = db
        .scan::<&str>(..)
        .context("scan")?
        .collect(usize::MAX)
        .await
        .context("scan")?;
    let want: Vec<(&str, &str)> = state
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.as_deref()?)))
        .collect();
    let got: Vec<(String, String)> = scanned
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    ensure!(
        got.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .eq(want.iter().copied()),
        "scan: got {} entries, want {}",
        got.len(),
        want.len()
    );
    Ok(())
}

/// A checkpoint reads the database as it was, after later writes, compactions and GC
/// with zero grace; its manifest and the WAL it replays survive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_reads_the_database_as_it_was_after_compaction_and_gc() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let db = writer(&store, None).await?;
    let state = before(&db).await?;
    let cp = db
        .create_checkpoint("before", None)
        .await
        .context("create_checkpoint")?;
    assert_eq!(cp.kind, CheckpointKind::Named);
    assert_eq!(cp.expires_at_ms, None);
    assert_eq!(cp.seq, db.visible_seq(), "pins every visible write");
    assert!(db.durable_seq() >= cp.seq, "made durable first");
    after(&db).await?;
    let_wall_clock_pass()?;
    let report = db.gc(Some(Duration::ZERO)).await.context("gc")?;
    assert!(report.sst > 0 && report.wal > 0, "GC collected: {report:?}");
    assert_eq!(report.live_checkpoints, 1, "{report:?}");
    assert!(
        objects(&store)
            .await?
            .contains(&manifest_object(cp.manifest_id)),
        "the pinned manifest survives"
    );

    let old = at_checkpoint(&store, "before", None)
        .await
        .context("open at the checkpoint")?;
    check(&old, &state).await.context("at the checkpoint")?;
    assert_eq!(old.visible_seq(), cp.seq);
    // The writer reads the present, not the past.
    assert_eq!(db.get("later-0").await?.as_deref(), Some(&b"x"[..]));
    old.close().await.context("close")?;

    // A second pass (and reopening the writer) still keeps it.
    db.close().await.context("close")?;
    let db = writer(&store, None).await?;
    let_wall_clock_pass()?;
    db.gc(Some(Duration::ZERO)).await.context("gc")?;
    let old = at_checkpoint(&store, "before", None)
        .await
        .context("reopen at the checkpoint")?;
    check(&old, &state)
        .await
        .context("at the checkpoint, again")?;
    old.close().await?;
    db.close().await?;
    Ok(())
}

/// The same history without the checkpoint's protection: the checkpoint object is taken
/// away during it and put back after GC. Opening at it then fails (the objects it pins are
/// gone), which is what the protection prevents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_checkpoint_the_same_history_loses_its_objects() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let db = writer(&store, None).await?;
    let state = before(&db).await?;
    let cp = db.create_checkpoint("before", None).await?;
    let path = Path::from("db/checkpoints/before.json");
    let saved = store.get(&path).await?.bytes().await?;
    db.delete_checkpoint("before").await?;
    after(&db).await?;
    let_wall_clock_pass()?;
    let report = db.gc(Some(Duration::ZERO)).await.context("gc")?;
    assert_eq!(report.live_checkpoints, 0);
    assert!(
        !objects(&store)
            .await?
            .contains(&manifest_object(cp.manifest_id)),
        "unprotected, the manifest went"
    );
    store.put(&path, PutPayload::from(saved)).await?;
    match at_checkpoint(&store, "before", None).await {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}"),
        Ok(old) => {
            assert!(
                check(&old, &state).await.is_err(),
                "read the old state without its objects"
            );
        }
    }
    db.close().await?;
    Ok(())
}

/// An expired checkpoint can no longer be opened or renewed, and GC deletes it and what
/// only it kept. The wall clock is a manual one (the store's timestamps are real: the
/// manual clock only moves ahead of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_checkpoint_protects_nothing() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let wall = Arc::new(ManualWallClock::new(u64::try_from(unix_millis()?)?));
    let clock: Arc<dyn Clock> = wall.clone();
    let db = writer(&store, Some(Arc::clone(&clock))).await?;
    let state = before(&db).await?;
    let cp = db
        .create_checkpoint("hour", Some(Duration::from_secs(3600)))
        .await?;
    assert_eq!(cp.expires_at_ms, Some(cp.created_at_ms + 3_600_000));
    after(&db).await?;
    wall.advance(Duration::from_secs(1800));
    let report = db.gc(Some(Duration::ZERO)).await?;
    assert_eq!((report.live_checkpoints, report.checkpoints), (1, 0));
    let old = at_checkpoint(&store, "hour", Some(Arc::clone(&clock))).await?;
    check(&old, &state).await.context("before it expires")?;
    old.close().await?;

    wall.advance(Duration::from_secs(1800));
    let e = at_checkpoint(&store, "hour", Some(Arc::clone(&clock)))
        .await
        .err()
        .context("opened at an expired checkpoint")?;
    assert!(matches!(e, Error::Checkpoint(_)), "{e}");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("expired"), "{e}");
    let e = db
        .renew_checkpoint("hour", None)
        .await
        .err()
        .context("renewed an expired checkpoint")?;
    assert!(matches!(e, Error::Checkpoint(_)), "{e}");

    let report = db.gc(Some(Duration::ZERO)).await?;
    assert_eq!(report.checkpoints, 1, "{report:?}");
    assert_eq!(report.live_checkpoints, 0, "{report:?}");
    assert_eq!(db.metrics().engine.gc_deleted_checkpoint, 1);
    let left = objects(&store).await?;
    assert!(!left.contains("db/checkpoints/hour.json"));
    assert!(!left.contains(&manifest_object(cp.manifest_id)));
    let e = at_checkpoint(&store, "hour", Some(clock))
        .await
        .err()
        .context("opened at a collected checkpoint")?;
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("no checkpoint named"), "{e}");
    db.close().await?;
    Ok(())
}

/// A checkpoint that expires is kept for `gc.grace` after its expiry (like a replaced
/// manifest), and renewing one in time keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_and_grace_after_expiry() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let wall = Arc::new(ManualWallClock::new(u64::try_from(unix_millis()?)?));
    let db = writer(&store, Some(wall.clone())).await?;
    before(&db).await?;
    db.create_checkpoint("short", Some(Duration::from_secs(60)))
        .await?;
    wall.advance(Duration::from_secs(50));
    let renewed = db
        .renew_checkpoint("short", Some(Duration::from_secs(60)))
        .await?;
    assert_eq!(
        renewed.expires_at_ms,
        Some(wall.unix_millis() + 60_000),
        "{renewed:?}"
    );
    wall.advance(Duration::from_secs(50));
    let report = db.gc(Some(Duration::ZERO)).await?;
    assert_eq!((report.live_checkpoints, report.checkpoints), (1, 0));
    wall.advance(Duration::from_secs(20));
    // Expired 10 s ago: a 60 s grace still keeps it, zero grace does not.
    let report = db.gc(Some(Duration::from_secs(60))).await?;
    assert_eq!((report.live_checkpoints, report.checkpoints), (1, 0));
    let report = db.gc(Some(Duration::ZERO)).await?;
    assert_eq!((report.live_checkpoints, report.checkpoints), (0, 1));
    assert!(db.list_checkpoints().await?.is_empty());
    db.close().await?;
    Ok(())
}

/// Moves the manual wall clock on by `by` while the PUT of `checkpoints/slow.json` is in
/// flight: a renewal that takes that long.
#[derive(Debug)]
struct SlowRenewal {
    wall: Arc<ManualWallClock>,
    by: Duration,
}

impl Hook for SlowRenewal {
    fn put_opts<'a>(
        &'a self,
        inner: &'a Arc<dyn ObjectStore>,
        location: &'a Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFut<'a, OsResult<PutResult>> {
        if location.as_ref().ends_with("checkpoints/slow.json") && opts.mode == PutMode::Overwrite {
            self.wall.advance(self.by);
        }
        inner.put_opts(location, payload, opts)
    }
}

/// A renewal started before the checkpoint expired but stored only once it had been
/// expired for half of `gc.grace` does not count (GC may have collected what it pinned
/// meanwhile): it fails and the checkpoint is gone; one stored in time keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_stored_too_late_does_not_count() -> Result<()> {
    let plain: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let wall = Arc::new(ManualWallClock::new(u64::try_from(unix_millis()?)?));
    // gc.grace is 5 minutes: the renewal's PUT takes 10 s, then 3 minutes.
    for (by, in_time) in [
        (Duration::from_secs(10), true),
        (Duration::from_secs(180), false),
    ] {
        let store: Arc<dyn ObjectStore> = HookStore::new(
            Arc::clone(&plain),
            SlowRenewal {
                wall: Arc::clone(&wall),
                by,
            },
        );
        let db = writer(&store, Some(wall.clone())).await?;
        before(&db).await?;
        db.create_checkpoint("slow", Some(Duration::from_secs(60)))
            .await?;
        // 5 s before it expires.
        wall.advance(Duration::from_secs(55));
        let renewed = db
            .renew_checkpoint("slow", Some(Duration::from_secs(600)))
            .await;
        if in_time {
            renewed.context("renewed in time")?;
            ensure!(db.list_checkpoints().await?.len() == 1);
            db.delete_checkpoint("slow").await?;
        } else {
            let e = renewed.err().context("a late renewal counted")?;
            ensure!(matches!(e, Error::Checkpoint(_)), "{e}");
            ensure!(e.to_string().contains("half of gc.grace"), "{e}");
            ensure!(
                db.list_checkpoints().await?.is_empty(),
                "the late one stays"
            );
        }
        db.close().await?;
    }
    Ok(())
}

/// A read-only handle leases the manifest it opened: GC with zero grace keeps its SSTs,
/// and it reads correctly; closed, the lease goes and so do they.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_lease_keeps_its_ssts_through_gc() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let db = writer(&store, None).await?;
    let state = before(&db).await?;
    db.flush().await?;
    let reader = Db::builder(Arc::clone(&store), root())
        .settings(settings())
        .read_only()
        .open()
        .await
        .context("open read-only")?;
    let leases = db.list_checkpoints().await?;
    assert_eq!(leases.len(), 1, "{leases:?}");
    let lease = &leases[0];
    assert_eq!(lease.kind, CheckpointKind::Lease);
    assert!(lease.name.starts_with("lease-"), "{}", lease.name);
    assert_eq!(
        lease.expires_at_ms,
        Some(lease.created_at_ms + 60_000),
        "gc.lease_lifetime defaults to 60 s"
    );

    after(&db).await?;
    let_wall_clock_pass()?;
    let report = db.gc(Some(Duration::ZERO)).await?;
    assert_eq!(report.live_checkpoints, 1, "{report:?}");
    // Nothing was read from the SSTs before GC: every block comes from the store now.
    check(&reader, &state)
        .await
        .context("the reader after GC")?;

    // A checkpoint made from the reader pins what it reads.
    let cp = reader.create_checkpoint("from-reader", None).await?;
    assert_eq!(
        (cp.manifest_id, cp.seq),
        (lease.manifest_id, reader.visible_seq())
    );

    reader.close().await.context("close the reader")?;
    let names: Vec<String> = db
        .list_checkpoints()
        .await?
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["from-reader"], "the lease went with the handle");
    db.delete_checkpoint("from-reader").await?;
    let_wall_clock_pass()?;
    let report = db.gc(Some(Duration::ZERO)).await?;
    assert!(report.sst > 0 && report.manifests > 0, "{report:?}");
    assert!(!objects(&store)
        .await?
        .contains(&manifest_object(lease.manifest_id)));
    db.close().await?;
    Ok(())
}

/// A reader whose lease lapsed unrenewed (its wall clock passed the expiry before a
/// renewal could run) fails its reads with `LeaseLost` rather than read objects GC may
/// delete; a renewal on time extends the lease.
#[tokio::test(start_paused = true)]
async fn a_lapsed_lease_fails_reads_and_renewals_extend_it() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let db = writer(&store, None).await?;
    db.put("k", "v").await?;
    db.close().await?;

    let wall = Arc::new(ManualWallClock::new(1_000_000));
    let mut s = settings();
    s.gc.lease_lifetime = Duration::from_secs(30);
    let reader = Db::builder(Arc::clone(&store), root())
        .settings(s)
        .clock(wall.clone())
        .read_only()
        .open()
        .await?;
    assert_eq!(expiry(&reader).await?, Some(1_030_000));
    // A renewal every 10 s of the (paused) timer clock; the wall clock says 10 s passed.
    wall.advance(Duration::from_secs(10));
    let mut renewed = None;
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        renewed = expiry(&reader).await?;
        if renewed != Some(1_030_000) {
            break;
        }
    }
    assert_eq!(renewed, Some(1_040_000), "renewed at 10 s for 30 s");
    assert_eq!(reader.get("k").await?.as_deref(), Some(&b"v"[..]));

    // The wall clock passes the expiry with no renewal in between.
    wall.advance(Duration::from_secs(31));
    let e = reader
        .get("k")
        .await
        .err()
        .context("read on a lapsed lease")?;
    assert!(matches!(e, Error::LeaseLost(_)), "{e}");
    assert_eq!(e.kind(), ErrorKind::Closed(CloseReason::Poisoned));
    assert!(reader.scan::<&str>(..).is_err());
    reader.close().await?;
    Ok(())
}

async fn expiry(db: &Db) -> Result<Option<u64>> {
    let l = db.list_checkpoints().await?;
    Ok(l.first().and_then(|c| c.expires_at_ms))
}

/// Names are `[A-Za-z0-9._-]{1,128}`; a name is taken once; unknown names are typed errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_validated() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let db = writer(&store, None).await?;
    db.put("k", "v").await?;
    let long = "x".repeat(129);
    for bad in ["", "a/b", "a b", "..", "ü", long.as_str()] {
        let e = db
            .create_checkpoint(bad, None)
            .await
            .err()
            .with_context(|| format!("accepted {bad:?}"))?;
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}: {e}");
        let e = at_checkpoint(&store, bad, None)
            .await
            .err()
            .with_context(|| format!("opened at {bad:?}"))?;
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}: {e}");
    }
    db.create_checkpoint(&"x".repeat(128), None).await?;
    db.create_checkpoint("v1.2_3-a", None).await?;
    let e = db
        .create_checkpoint("v1.2_3-a", None)
        .await
        .err()
        .context("created a name twice")?;
    assert!(matches!(e, Error::Checkpoint(_)), "{e}");
    let e = db
        .delete_checkpoint("nope")
        .await
        .err()
        .context("deleted a missing checkpoint")?;
    assert!(matches!(e, Error::Checkpoint(_)), "{e}");
    let e = at_checkpoint(&store, "nope", None)
        .await
        .err()
        .context("opened at a missing checkpoint")?;
    assert!(matches!(e, Error::Checkpoint(_)), "{e}");
    assert_eq!(db.list_checkpoints().await?.len(), 2);
    db.close().await?;
    Ok(())
}

/// An undecodable checkpoint object is a typed `Corrupt` error, and GC deletes nothing
/// while it is there: it cannot tell what such a checkpoint pins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_checkpoint_stops_gc_from_deleting() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let db = writer(&store, None).await?;
    before(&db).await?;
    let bad = Path::from("db/checkpoints/bad.json");
    store
        .put(&bad, PutPayload::from_static(b"{\"format_version\":1,\"na"))
        .await?;
    let e = db
        .list_checkpoints()
        .await
        .err()
        .context("listed a corrupt checkpoint")?;
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    let e = at_checkpoint(&store, "bad", None)
        .await
        .err()
        .context("opened at a corrupt checkpoint")?;
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");

    after(&db).await?;
    let_wall_clock_pass()?;
    let before_gc = objects(&store).await?;
    let m0 = db.metrics();
    let report = db.gc(Some(Duration::ZERO)).await?;
    assert_eq!(report.corrupt_checkpoints, 1, "{report:?}");
    assert_eq!(
        (report.wal, report.sst, report.manifests, report.checkpoints),
        (0, 0, 0, 0)
    );
    assert_eq!(objects(&store).await?, before_gc, "GC deleted objects");
    // (`Db::compact`'s passes in `after` were stopped too.)
    let d = db.metrics().since(&m0);
    assert_eq!(d.engine.gc_blocked_by_corrupt_checkpoint, 1);

    // Deleting it (it need not decode) lets GC go on.
    db.delete_checkpoint("bad").await?;
    let report = db.gc(Some(Duration::ZERO)).await?;
    assert!(report.sst > 0 && report.manifests > 0, "{report:?}");
    db.close().await?;
    Ok(())
}

/// Replaces the writer's manifest (a flush) just before the first lease a reader stores
/// reaches the store: the manifest that reader read as the newest is then replaced.
#[derive(Debug)]
struct ReplaceBeforeLease {
    writer: Mutex<Option<Arc<Db>>>,
    failed: Mutex<Option<String>>,
}

impl Hook for ReplaceBeforeLease {
    fn put_opts<'a>(
        &'a self,
        inner: &'a Arc<dyn ObjectStore>,
        location: &'a Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFut<'a, OsResult<PutResult>> {
        Box::pin(async move {
            if location.as_ref().starts_with("db/checkpoints/lease-") {
                let writer = self.writer.lock().take();
                if let Some(db) = writer {
                    let replaced = async {
                        db.put("x", "y").await?;
                        db.flush_memtables().await
                    };
                    if let Err(e) = replaced.await {
                        *self.failed.lock() = Some(e.to_string());
                    }
                }
            }
            inner.put_opts(location, payload, opts).await
        })
    }
}

/// A reader whose newest manifest is replaced before its lease is stored (and, by its
/// clock, longer than `gc.grace / 2` ago, so a GC pass that listed the checkpoints before
/// the lease may already collect it) takes its lease back and leases the new newest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_lost_the_race_with_a_new_manifest_is_taken_again() -> Result<()> {
    let plain: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let db = Arc::new(writer(&plain, None).await?);
    before(&db).await?;
    let hook = HookStore::new(
        Arc::clone(&plain),
        ReplaceBeforeLease {
            writer: Mutex::new(Some(Arc::clone(&db))),
            failed: Mutex::new(None),
        },
    );
    let hooked: Arc<dyn ObjectStore> = hook.clone();
    // The reader's wall clock is 10 minutes ahead: the new manifest looks 10 minutes old
    // to it, past half of the default 5-minute grace.
    let ahead = u64::try_from(unix_millis()?)? + 600_000;
    let reader = Db::builder(Arc::clone(&hooked), root())
        .settings(Settings::default())
        .clock(Arc::new(ManualWallClock::new(ahead)))
        .read_only()
        .open()
        .await
        .context("open read-only")?;
    assert!(hook.hook.writer.lock().is_none(), "the hook ran");
    assert_eq!(*hook.hook.failed.lock(), None);
    let newest = objects(&plain)
        .await?
        .iter()
        .filter(|o| o.starts_with("db/manifest/"))
        .max()
        .cloned()
        .context("no manifest")?;
    let leases = reader.list_checkpoints().await?;
    assert_eq!(
        leases.len(),
        1,
        "the first lease was taken back: {leases:?}"
    );
    assert_eq!(
        manifest_object(leases[0].manifest_id),
        newest,
        "leased the newest"
    );
    assert_eq!(reader.get("x").await?.as_deref(), Some(&b"y"[..]));
    reader.close().await?;
    assert!(
        reader_leases(&plain).await?.is_empty(),
        "closed: no lease left"
    );
    Ok(())
}

async fn reader_leases(store: &Arc<dyn ObjectStore>) -> Result<Vec<String>> {
    Ok(objects(store)
        .await?
        .into_iter()
        .filter(|o| o.starts_with("db/checkpoints/lease-"))
        .collect())
}

/// A read-only open that fails after storing its lease (a pinned SST is missing) takes
/// the lease back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_only_open_leaves_no_lease() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let db = writer(&store, None).await?;
    before(&db).await?;
    db.flush_memtables().await?;
    db.close().await?;
    let sst = objects(&store)
        .await?
        .into_iter()
        .find(|o| o.starts_with("db/sst/"))
        .context("no SST")?;
    store.delete(&Path::from(sst.as_str())).await?;
    let e = Db::builder(Arc::clone(&store), root())
        .settings(settings())
        .read_only()
        .open()
        .await
        .err()
        .context("opened without an SST")?;
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(reader_leases(&store).await?.is_empty());
    Ok(())
}

/// A checkpoint whose manifest is already gone is refused, and nothing is left stored: a
/// writer that another writer fenced (and whose manifest that writer's GC collected) has
/// not noticed yet when it tries to pin its current manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_on_a_collected_manifest_is_refused() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let a = writer(&store, None).await.context("writer a")?;
    before(&a).await?;
    let b = writer(&store, None).await.context("writer b")?;
    after(&b).await?;
    let_wall_clock_pass()?;
    let report = b.gc(Some(Duration::ZERO)).await?;
    assert!(report.manifests > 0, "{report:?}");
    let e = a
        .create_checkpoint("stale", None)
        .await
        .err()
        .context("pinned a collected manifest")?;
    assert!(matches!(e, Error::Checkpoint(_)), "{e}");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(
        b.list_checkpoints().await?.is_empty(),
        "nothing left stored"
    );
    // The live writer's checkpoint is fine.
    b.create_checkpoint("fresh", None).await?;
    drop(a);
    b.close().await?;
    Ok(())
}

/// Moves the wall clock forward while the next lease renewal (an overwriting PUT) is in
/// flight, as a renewal stalled for that long would see it.
#[derive(Debug)]
struct StallRenewal {
    wall: Arc<ManualWallClock>,
    by: Duration,
    armed: std::sync::atomic::AtomicBool,
}

impl Hook for StallRenewal {
    fn put_opts<'a>(
        &'a self,
        inner: &'a Arc<dyn ObjectStore>,
        location: &'a Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFut<'a, OsResult<PutResult>> {
        Box::pin(async move {
            let renewal = location.as_ref().starts_with("db/checkpoints/lease-")
                && matches!(opts.mode, PutMode::Overwrite);
            if renewal && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
                self.wall.advance(self.by);
            }
            inner.put_opts(location, payload, opts).await
        })
    }
}

/// A renewal that lands only after the lease's expiry plus half of `gc.grace` (GC may
/// have collected the lease and its objects meanwhile) does not count: the lease is
/// deleted and the handle stops with `LeaseLost`.
#[tokio::test(start_paused = true)]
async fn a_renewal_that_lands_too_late_stops_the_reader() -> Result<()> {
    let plain: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let db = writer(&plain, None).await?;
    db.put("k", "v").await?;
    db.close().await?;

    let wall = Arc::new(ManualWallClock::new(1_000_000));
    let mut s = settings();
    s.gc.lease_lifetime = Duration::from_secs(30);
    let hook = HookStore::new(
        Arc::clone(&plain),
        StallRenewal {
            wall: Arc::clone(&wall),
            by: s.gc.lease_lifetime + s.gc.grace / 2,
            armed: std::sync::atomic::AtomicBool::new(true),
        },
    );
    let hooked: Arc<dyn ObjectStore> = hook.clone();
    let reader = Db::builder(hooked, root())
        .settings(s)
        .clock(wall.clone())
        .read_only()
        .open()
        .await?;
    assert_eq!(reader.get("k").await?.as_deref(), Some(&b"v"[..]));
    let mut failed = None;
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Err(e) = reader.get("k").await {
            failed = Some(e);
            break;
        }
    }
    let e = failed.context("the reader kept reading after a late renewal")?;
    assert!(
        matches!(&e, Error::Stopped(inner) if matches!(**inner, Error::LeaseLost(_))),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::Closed(CloseReason::Poisoned));
    assert!(
        reader_leases(&plain).await?.is_empty(),
        "the late lease was deleted"
    );
    let _ = reader.close().await;
    Ok(())
}
