//! Followers (docs/ARCHITECTURE.md, "Followers"): read-only handles that keep up with the
//! writer by polling the store.
//!
//! * After every poll step the follower's whole state equals the writer's history applied
//!   up to the follower's visible sequence (a prefix of what the writer acknowledged),
//!   through memtable flushes, compactions and GC passes with zero grace; reads of the
//!   version the follower holds keep working between polls (its lease protects it).
//! * A WAL segment uploaded after the one behind it (a held PUT) stops the follower at the
//!   gap; it continues once the segment lands. Meanwhile it holds at most
//!   `follower.fetch_ahead_bytes` of the segments past the gap.
//! * Under heavy injected store faults (polls and reads failing for good) the follower
//!   only ever shows a prefix, and what it reads survives GC.
//! * A checkpoint taken on a follower while it moves to a newer manifest names a manifest
//!   GC keeps.
//! * An idle follower makes one LIST a poll (the WAL's) and still finds what is new.
//! * While the store is unreachable, reads fail with `Unavailable` (`Error::Stale`) past
//!   `follower.max_staleness`, and work again once the follower caught up.
//! * Promoting a follower while the writer runs under load loses nothing acknowledged and
//!   continues the sequence.
//! * Processes on the local S3 server (`SILT_TEST_S3_URL`; skipped when unset unless
//!   `SILT_REQUIRE_S3=1`): a writer and two follower processes; every value a follower
//!   returned had been acknowledged, and the followers' lag stays bounded.
//!
//! The in-process tests step the follower with `Db::follower_poll_now` (its background
//! poll interval is an hour), so each check sees exactly the state one poll produced.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use common::{in_dir, Gate, HoldAt, HoldPut, HookStore, Rng};
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::ObjectStore;
use silt::{Bytes, Db, Durability, Error, ErrorKind, Settings, WriteOptions};

fn root() -> Path {
    Path::from("db")
}

fn writer_settings() -> Settings {
    let mut s = Settings::small_for_tests();
    s.wal.max_puts_per_sec = 10_000.0;
    s.wal.put_burst = 100;
    // Explicit passes only.
    s.gc.enabled = false;
    s.compaction.enabled = false;
    s
}

/// A follower stepped by the test: its own poll interval is an hour.
fn stepped_follower_settings() -> Settings {
    let mut s = writer_settings();
    s.follower.poll_interval = Duration::from_secs(3600);
    s.follower.max_staleness = Duration::ZERO;
    // Every read fetches its blocks: a deleted SST cannot hide behind the cache.
    s.block_cache_bytes = 0;
    s
}

async fn open_writer(store: &Arc<dyn ObjectStore>) -> Result<Db> {
    Db::builder(Arc::clone(store), root())
        .settings(writer_settings())
        .open()
        .await
        .context("open the writer")
}

async fn open_follower(store: &Arc<dyn ObjectStore>, settings: Settings) -> Result<Db> {
    Db::builder(Arc::clone(store), root())
        .settings(settings)
        .follower()
        .open()
        .await
        .context("open the follower")
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

/// The writer's history: each acknowledged write with its sequence number.
#[derive(Default)]
struct History {
    ops: Vec<(u64, Bytes, Option<Bytes>)>,
}

impl History {
    /// Put `k = v` through the writer and record it.
    async fn put(&mut self, writer: &Db, k: String, v: String) -> Result<()> {
        writer.put(&k, &v).await?;
        self.ops
            .push((writer.visible_seq(), k.into(), Some(v.into())));
        Ok(())
    }

    /// The database after every write `<= seq`.
    fn state_at(&self, seq: u64) -> BTreeMap<Bytes, Bytes> {
        let mut m = BTreeMap::new();
        for (s, k, v) in &self.ops {
            if *s > seq {
                break;
            }
            match v {
                Some(v) => m.insert(k.clone(), v.clone()),
                None => m.remove(k),
            };
        }
        m
    }
}

async fn full_scan(db: &Db) -> Result<BTreeMap<Bytes, Bytes>> {
    let rows = db
        .scan::<&[u8]>(..)?
        .collect(usize::MAX)
        .await
        .context("follower scan")?;
    Ok(rows.into_iter().collect())
}

/// The follower's state is exactly the writer's history up to its visible sequence, which
/// the writer had made durable.
async fn check_prefix(follower: &Db, writer: &Db, history: &History, when: &str) -> Result<u64> {
    let seq = follower.visible_seq();
    ensure!(
        seq <= writer.durable_seq(),
        "{when}: follower at {seq} past the writer's durable {}",
        writer.durable_seq()
    );
    let want = history.state_at(seq);
    let got = full_scan(follower).await.with_context(|| when.to_owned())?;
    if got != want {
        let diff: Vec<_> = want
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .chain(got.keys().filter(|k| !want.contains_key(*k)).cloned())
            .take(5)
            .collect();
        bail!(
            "{when}: follower state at seq {seq} differs from the history ({} vs {} keys; e.g. {diff:?})",
            got.len(),
            want.len()
        );
    }
    // Point reads agree with the scan.
    for (k, v) in want.iter().take(8) {
        ensure!(
            follower.get(k).await?.as_ref() == Some(v),
            "{when}: get({k:?}) disagrees"
        );
    }
    Ok(seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_state_is_always_a_prefix_of_the_writer_history() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let writer = open_writer(&store).await?;
    let mut history = History::default();
    // A follower opened on a database with history already.
    for i in 0..20u32 {
        history
            .put(&writer, format!("k{:02}", i % 7), format!("early-{i}"))
            .await?;
    }
    writer.flush_memtables().await?;
    let follower = open_follower(&store, stepped_follower_settings()).await?;
    check_prefix(&follower, &writer, &history, "after open").await?;
    ensure!(
        follower.visible_seq() == writer.visible_seq(),
        "open starts caught up"
    );

    let mut rng = Rng(7);
    let pad = "x".repeat(400);
    let mut last_seq = 0;
    let mut swaps_seen = 0;
    for step in 0..60u32 {
        for _ in 0..rng.range(5, 40) {
            let k = format!("k{:02}", rng.range(0, 60));
            if rng.range(0, 10) == 0 {
                writer.delete(&k).await?;
                history.ops.push((writer.visible_seq(), k.into(), None));
            } else {
                let v = format!("v{}-{pad}", writer.visible_seq() + 1);
                writer.put(&k, &v).await?;
                history
                    .ops
                    .push((writer.visible_seq(), k.into(), Some(v.into())));
            }
        }
        match step % 6 {
            1 => writer.flush_memtables().await?,
            3 => {
                writer.flush_memtables().await?;
                writer.compact().await?;
            }
            _ => {}
        }
        if step % 2 == 1 {
            // Zero grace: only the follower's lease keeps the manifest it reads.
            let_wall_clock_pass()?;
            writer.gc(Some(Duration::ZERO)).await?;
            // The follower still reads the version it holds (before its next poll).
            check_prefix(
                &follower,
                &writer,
                &history,
                &format!("step {step}, after gc"),
            )
            .await?;
        }
        follower.follower_poll_now().await?;
        let seq = check_prefix(&follower, &writer, &history, &format!("step {step}")).await?;
        ensure!(
            seq >= last_seq,
            "visible_seq went back from {last_seq} to {seq}"
        );
        ensure!(
            seq == writer.visible_seq(),
            "step {step}: one poll catches up with durable writes ({seq} vs {})",
            writer.visible_seq()
        );
        last_seq = seq;
        let status = follower.follower_status().context("follower status")?;
        ensure!(
            status.applied_seq == seq && status.lag_seq == 0,
            "{status:?}"
        );
        swaps_seen = status.manifest_id;
    }
    let m = follower.metrics();
    let f = m.follower.context("follower metrics")?;
    ensure!(f.manifests_applied >= 10, "{f:?}");
    ensure!(f.segments_tailed > 0 && f.polls >= 60, "{f:?}");
    ensure!(swaps_seen > 1);
    let text = m.to_prometheus();
    ensure!(text.contains("\nsilt_follower_applied_seq "), "{text}");
    only_one_lease_then_close(follower, writer).await
}

/// An in-memory store, and the same store through a hook that holds the next WAL PUT
/// while the gate is armed.
fn wal_put_held_store() -> (Arc<dyn ObjectStore>, Arc<Gate>, Arc<dyn ObjectStore>) {
    let plain: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let gate = Gate::new(false);
    let hooked: Arc<dyn ObjectStore> = HookStore::new(
        Arc::clone(&plain),
        HoldPut::new(&gate, HoldAt::Request, |p, _| in_dir(p, "wal")),
    );
    (plain, gate, hooked)
}

/// Wait (up to 5 s) until the writer has uploaded more than `before` WAL segments.
async fn segment_uploaded_past(writer: &Db, before: u64) -> Result<()> {
    for _ in 0..5000 {
        if writer.metrics().wal.map_or(0, |w| w.segments_uploaded) > before {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    bail!("no segment uploaded past {before} within 5 s")
}

/// Under injected store faults on the follower's side (40% of requests fail, 5% of its
/// PUTs, its lease objects, lose their response after the store applied them, and a 5 ms
/// retry deadline lets some of them fail polls and reads for good), every poll either
/// fails or leaves the follower on a prefix of the writer's history, and no read finds an
/// SST missing, through flushes, compactions and GC with zero grace; once the faults stop
/// a follower reads the whole history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_under_store_faults_only_ever_shows_a_prefix() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let writer = open_writer(&store).await?;
    let mut history = History::default();
    for i in 0..20u32 {
        history
            .put(&writer, format!("k{:02}", i % 7), format!("early-{i}"))
            .await?;
    }
    writer.flush_memtables().await?;
    let mut fs = stepped_follower_settings();
    fs.store.retry.initial = Duration::from_millis(1);
    fs.store.retry.max = Duration::from_millis(4);
    // Short enough that some requests fail for good and take their poll or read down.
    fs.store.retry.deadline = Duration::from_millis(5);
    let faults: silt::objstore::FaultSpec = "all=0.4,lost=0.05,seed=11"
        .parse()
        .map_err(|e: silt::objstore::ParseFaultError| anyhow::anyhow!("{}", e.reason()))?;
    let follower = Db::builder(Arc::clone(&store), root())
        .settings(fs)
        .store_faults(Some(faults))
        .follower()
        .open()
        .await
        .context("open the follower under faults")?;
    let mut rng = Rng(23);
    let (mut failed, mut last_seq) = (0u32, 0u64);
    for step in 0..60u32 {
        for _ in 0..rng.range(5, 30) {
            let k = format!("k{:02}", rng.range(0, 40));
            if rng.range(0, 8) == 0 {
                writer.delete(&k).await?;
                history.ops.push((writer.visible_seq(), k.into(), None));
            } else {
                history
                    .put(&writer, k, format!("v{}", writer.visible_seq() + 1))
                    .await?;
            }
        }
        match step % 3 {
            1 => writer.flush_memtables().await?,
            2 => {
                writer.flush_memtables().await?;
                writer.compact().await?;
            }
            _ => {}
        }
        if follower.follower_poll_now().await.is_err() {
            failed += 1;
        }
        // Whatever the poll did, the version the follower reads stays readable through
        // GC: its lease protects it.
        for gc in [false, true] {
            if gc {
                let_wall_clock_pass()?;
                writer.gc(Some(Duration::ZERO)).await?;
            }
            // Reads may fail too (a retried request that kept failing); what they return
            // must be a prefix.
            let when = format!("step {step}{}", if gc { ", after gc" } else { "" });
            match check_prefix(&follower, &writer, &history, &when).await {
                Ok(seq) => {
                    ensure!(seq >= last_seq, "went back from {last_seq} to {seq}");
                    last_seq = seq;
                }
                // A store failure that outlived the retries: allowed (a missing SST is
                // not).
                Err(e)
                    if e.downcast_ref::<Error>()
                        .is_some_and(|e| e.kind() == ErrorKind::Unavailable) =>
                {
                    failed += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
    // The faults were felt (some polls and reads failed for good), and the follower
    // still moved on.
    let injected = follower
        .metrics()
        .store_faults
        .map_or(0, |f| f.errors + f.lost);
    eprintln!("{injected} faults injected, {failed} of 180 polls and checks failed");
    ensure!(
        (5..150).contains(&failed),
        "{failed} of 180 polls and checks failed"
    );
    ensure!(last_seq > 20, "the follower stayed at {last_seq}");
    follower.close().await?;
    // Without faults a fresh follower reads the whole history.
    let clean = open_follower(&store, stepped_follower_settings()).await?;
    ensure!(clean.visible_seq() == writer.visible_seq());
    check_prefix(&clean, &writer, &history, "after the faults").await?;
    clean.close().await?;
    writer.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_uploaded_late_stops_the_follower_at_the_gap() -> Result<()> {
    let (plain, gate, hooked) = wal_put_held_store();
    let writer = Arc::new(open_writer(&hooked).await?);
    writer.put("before", "1").await?;
    let follower = open_follower(&plain, stepped_follower_settings()).await?;
    ensure!(follower.get("before").await?.as_deref() == Some(&b"1"[..]));
    let base = follower.visible_seq();

    let buffered = WriteOptions::with_durability(Durability::Buffered);
    let uploaded = || writer.metrics().wal.map_or(0, |w| w.segments_uploaded);
    let before = uploaded();
    // The first segment's PUT is held...
    gate.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.put_with("a", "held", &buffered).await?;
    let w = Arc::clone(&writer);
    let first = tokio::spawn(async move { w.flush().await });
    gate.reached.notified().await;
    // ...while the next one lands.
    writer.put_with("b", "landed", &buffered).await?;
    let w = Arc::clone(&writer);
    let second = tokio::spawn(async move { w.flush().await });
    // Wait until the second segment is in the store.
    segment_uploaded_past(&writer, before)
        .await
        .context("the second segment did not land")?;
    follower.follower_poll_now().await?;
    ensure!(
        follower.visible_seq() == base,
        "the follower went past the gap: {} > {base}",
        follower.visible_seq()
    );
    ensure!(
        follower.get("b").await?.is_none(),
        "a write past the gap is visible"
    );
    ensure!(follower.get("a").await?.is_none());
    let status = follower.follower_status().context("status")?;
    ensure!(
        status.lag_seq >= 1,
        "the landed segment counts as lag: {status:?}"
    );
    // The held segment lands: both become visible.
    gate.release.add_permits(1);
    first.await??;
    second.await??;
    follower.follower_poll_now().await?;
    ensure!(follower.visible_seq() == writer.durable_seq());
    ensure!(follower.get("a").await?.as_deref() == Some(&b"held"[..]));
    ensure!(follower.get("b").await?.as_deref() == Some(&b"landed"[..]));
    follower.close().await?;
    writer.close().await?;
    Ok(())
}

/// A checkpoint taken on a follower names a manifest its lease protects: when the follower
/// moves to a newer manifest (and drops the old lease) while the checkpoint's PUT is in
/// flight, and GC then collects the old manifest, the checkpoint is taken again on the
/// newer one instead of naming what is gone. It opens and reads exactly the history up to
/// its sequence number, also after further compaction and GC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_checkpoint_survives_a_manifest_swap_during_its_put() -> Result<()> {
    let plain: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let gate = Gate::new(false);
    let hooked: Arc<dyn ObjectStore> = HookStore::new(
        Arc::clone(&plain),
        HoldPut::new(&gate, HoldAt::Request, |p, _| {
            in_dir(p, "checkpoints") && p.filename() == Some("pin.json")
        }),
    );
    let writer = open_writer(&plain).await?;
    let mut history = History::default();
    let mut write = async |k: String, v: Option<String>| -> Result<()> {
        match &v {
            Some(v) => writer.put(&k, v).await?,
            None => writer.delete(&k).await?,
        }
        history
            .ops
            .push((writer.visible_seq(), k.into(), v.map(Bytes::from)));
        Ok(())
    };
    for i in 0..40u32 {
        write(format!("k{:02}", i % 13), Some(format!("first-{i}"))).await?;
    }
    writer.flush_memtables().await?;
    let follower = Arc::new(open_follower(&hooked, stepped_follower_settings()).await?);
    let first_manifest = follower.follower_status().context("status")?.manifest_id;

    // The checkpoint's PUT is held...
    gate.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let f = Arc::clone(&follower);
    let create = tokio::spawn(async move { f.create_checkpoint("pin", None).await });
    gate.reached.notified().await;
    // ...while the writer replaces every SST of that manifest, the follower moves on (and
    // deletes its old lease), and GC collects what nothing protects any more.
    for i in 0..40u32 {
        let v = (i % 5 != 0).then(|| format!("second-{i}"));
        write(format!("k{:02}", i % 17), v).await?;
    }
    writer.flush_memtables().await?;
    writer.compact().await?;
    follower.follower_poll_now().await?;
    let moved_to = follower.follower_status().context("status")?.manifest_id;
    ensure!(
        moved_to > first_manifest,
        "the follower did not move on ({moved_to})"
    );
    let_wall_clock_pass()?;
    writer.gc(Some(Duration::ZERO)).await?;
    gate.release.add_permits(1);
    let cp = create.await??;
    ensure!(
        cp.manifest_id == moved_to,
        "the checkpoint names manifest {} (collected), not {moved_to}",
        cp.manifest_id
    );

    // GC keeps what it names through more history.
    for i in 0..40u32 {
        write(format!("k{:02}", i % 11), Some(format!("third-{i}"))).await?;
    }
    writer.flush_memtables().await?;
    writer.compact().await?;
    let_wall_clock_pass()?;
    writer.gc(Some(Duration::ZERO)).await?;
    let at = Db::builder(Arc::clone(&plain), root())
        .settings(stepped_follower_settings())
        .at_checkpoint("pin")
        .open()
        .await
        .context("open at the checkpoint")?;
    ensure!(at.visible_seq() == cp.seq);
    ensure!(
        full_scan(&at).await? == history.state_at(cp.seq),
        "the checkpoint does not read the history up to {}",
        cp.seq
    );
    at.close().await?;
    follower.close().await?;
    writer.close().await?;
    Ok(())
}

/// A snapshot or a scan taken on a follower keeps reading the version it was taken with
/// after the follower moved to a newer manifest and GC with zero grace ran: the follower
/// keeps (and renews) the old manifest's lease while it reads it, and deletes it at the
/// first poll after it is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_snapshots_and_scans_keep_their_version_through_a_swap_and_gc() -> Result<()> {
    for snapshot in [false, true] {
        reader_survives_swap_and_gc(snapshot)
            .await
            .with_context(|| if snapshot { "snapshot" } else { "scan" })?;
    }
    Ok(())
}

async fn reader_survives_swap_and_gc(snapshot: bool) -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let writer = open_writer(&store).await?;
    let mut history = History::default();
    let pad = "p".repeat(300);
    for i in 0..60u32 {
        history
            .put(
                &writer,
                format!("k{:02}", i % 20),
                format!("first-{i}-{pad}"),
            )
            .await?;
    }
    writer.flush_memtables().await?;
    let follower = open_follower(&store, stepped_follower_settings()).await?;
    let want = history.state_at(follower.visible_seq());
    // The reader: a snapshot, or a scan that has read its first row.
    let snap = snapshot.then(|| follower.snapshot());
    let mut scan = match &snap {
        Some(_) => None,
        None => Some(follower.scan::<&[u8]>(..)?),
    };
    let mut rows = Vec::new();
    if let Some(scan) = &mut scan {
        rows.push(scan.next().await?.context("the scan's first row")?);
    }

    // Every SST the follower reads is replaced; it moves on; GC collects what only the
    // manifest's grace would keep.
    for i in 0..60u32 {
        let k = format!("k{:02}", i % 20);
        writer.put(&k, format!("second-{i}")).await?;
    }
    writer.flush_memtables().await?;
    writer.compact().await?;
    follower.follower_poll_now().await?;
    let retired = |db: &Db| db.metrics().follower.map_or(0, |f| f.retired_leases);
    ensure!(
        retired(&follower) == 1,
        "{} retired leases",
        retired(&follower)
    );
    let_wall_clock_pass()?;
    writer.gc(Some(Duration::ZERO)).await?;

    if let Some(snap) = &snap {
        let got: BTreeMap<Bytes, Bytes> = snap
            .scan::<&[u8]>(..)?
            .collect(usize::MAX)
            .await
            .context("the snapshot's scan after GC")?
            .into_iter()
            .collect();
        ensure!(got == want, "the snapshot reads another state after GC");
        ensure!(snap.get("k07").await?.as_ref() == want.get(&b"k07"[..]));
    }
    if let Some(scan) = &mut scan {
        while let Some(row) = scan.next().await.context("the scan after GC")? {
            rows.push(row);
        }
        ensure!(
            rows.into_iter().collect::<BTreeMap<_, _>>() == want,
            "the scan started before the swap reads another state"
        );
    }

    // Once it is gone, the old lease goes at the next poll.
    drop(snap);
    drop(scan);
    follower.follower_poll_now().await?;
    ensure!(retired(&follower) == 0);
    only_one_lease_then_close(follower, writer).await
}

/// Only the follower's current lease is in the store; then both handles close.
async fn only_one_lease_then_close(follower: Db, writer: Db) -> Result<()> {
    let leases = writer
        .list_checkpoints()
        .await?
        .into_iter()
        .filter(|c| c.kind == silt::CheckpointKind::Lease)
        .count();
    ensure!(leases == 1, "{leases} leases");
    follower.close().await?;
    writer.close().await?;
    Ok(())
}

/// A retired lease (the old manifest's, kept while a snapshot reads its version) is
/// renewed with the lease: past the retired object's first expiry, GC with zero grace
/// keeps what the snapshot reads. Paused timer, manual wall clock (started at the real
/// time, so the store's timestamps stay behind it).
#[tokio::test(start_paused = true)]
async fn a_retired_lease_is_renewed_while_its_snapshot_lives() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let wall = Arc::new(silt::clock::ManualWallClock::new(u64::try_from(
        unix_millis()?,
    )?));
    let writer = Db::builder(Arc::clone(&store), root())
        .settings(writer_settings())
        .clock(wall.clone())
        .open()
        .await?;
    let mut history = History::default();
    for i in 0..40u32 {
        history
            .put(&writer, format!("k{:02}", i % 13), format!("first-{i}"))
            .await?;
    }
    writer.flush_memtables().await?;
    let mut fs = stepped_follower_settings();
    fs.gc.lease_lifetime = Duration::from_secs(30);
    let follower = Db::builder(Arc::clone(&store), root())
        .settings(fs)
        .clock(wall.clone())
        .follower()
        .open()
        .await?;
    let want = history.state_at(follower.visible_seq());
    let old_manifest = follower.follower_status().context("status")?.manifest_id;
    ensure!(
        old_manifest > 0,
        "the status names no manifest after the open"
    );
    let snap = follower.snapshot();
    for i in 0..40u32 {
        writer
            .put(format!("k{:02}", i % 13), format!("second-{i}"))
            .await?;
    }
    writer.flush_memtables().await?;
    writer.compact().await?;
    follower.follower_poll_now().await?;
    let expiry_of_old = || async {
        Ok::<_, anyhow::Error>(
            writer
                .list_checkpoints()
                .await?
                .into_iter()
                .find(|c| c.kind == silt::CheckpointKind::Lease && c.manifest_id == old_manifest)
                .and_then(|c| c.expires_at_ms),
        )
    };
    let first = expiry_of_old()
        .await?
        .context("the old lease was not kept")?;
    // The renewer runs every 10 s of the (paused) timer; the wall clock says 10 s passed.
    wall.advance(Duration::from_secs(10));
    let mut renewed = Some(first);
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        renewed = expiry_of_old().await?;
        if renewed != Some(first) {
            break;
        }
    }
    ensure!(
        renewed == Some(first + 10_000),
        "the retired lease was not renewed: {first} -> {renewed:?}"
    );
    // Past its first expiry: GC keeps it, and so what the snapshot reads.
    wall.advance(Duration::from_secs(25));
    writer.gc(Some(Duration::ZERO)).await?;
    let got: BTreeMap<Bytes, Bytes> = snap
        .scan::<&[u8]>(..)?
        .collect(usize::MAX)
        .await
        .context("the snapshot's scan after GC")?
        .into_iter()
        .collect();
    ensure!(got == want, "the snapshot reads another state");
    drop(snap);
    follower.close().await?;
    writer.close().await?;
    Ok(())
}

/// Counts the LISTs a follower makes, by directory.
#[derive(Debug, Default)]
struct CountLists {
    wal: Arc<std::sync::atomic::AtomicU64>,
    manifest: Arc<std::sync::atomic::AtomicU64>,
}

impl common::Hook for CountLists {
    fn list(
        &self,
        inner: &Arc<dyn ObjectStore>,
        prefix: Option<&Path>,
    ) -> futures::stream::BoxStream<
        'static,
        silt::object_store::Result<silt::object_store::ObjectMeta>,
    > {
        use std::sync::atomic::Ordering::SeqCst;
        let dir = prefix
            .and_then(|p| p.parts().next_back())
            .map(|p| p.as_ref().to_owned());
        match dir.as_deref() {
            Some("wal") => self.wal.fetch_add(1, SeqCst),
            Some("manifest") => self.manifest.fetch_add(1, SeqCst),
            _ => 0,
        };
        inner.list(prefix)
    }
}

/// An idle follower (caught up, no new WAL segment) makes one LIST a poll, the WAL's, and
/// lists the manifests only every `follower.manifest_relist_interval`; a poll that finds
/// new segments lists the manifests too and swaps in a newer one. A manifest stored with no
/// new segment (a compaction) waits for the interval or the next segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_follower_lists_only_the_wal() -> Result<()> {
    use std::sync::atomic::Ordering::SeqCst;
    let plain: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let writer = open_writer(&plain).await?;
    let mut history = History::default();
    for i in 0..30u32 {
        history
            .put(&writer, format!("k{:02}", i % 9), format!("first-{i}"))
            .await?;
    }
    writer.flush_memtables().await?;
    let counts = CountLists::default();
    let (wal, manifest) = (Arc::clone(&counts.wal), Arc::clone(&counts.manifest));
    let counted: Arc<dyn ObjectStore> = HookStore::new(Arc::clone(&plain), counts);
    let mut fs = stepped_follower_settings();
    fs.follower.manifest_relist_interval = Duration::from_secs(3600);
    let follower = open_follower(&counted, fs).await?;
    let lists = || (wal.load(SeqCst), manifest.load(SeqCst));

    // Idle: one WAL LIST a poll.
    let before = lists();
    for _ in 0..5 {
        follower.follower_poll_now().await?;
    }
    let after = lists();
    ensure!(
        (after.0 - before.0, after.1 - before.1) == (5, 0),
        "idle polls listed {:?} (wal, manifest)",
        (after.0 - before.0, after.1 - before.1)
    );

    // New segments: the manifests are listed again and the newer one swapped in.
    let first = follower.follower_status().context("status")?.manifest_id;
    for i in 0..30u32 {
        history
            .put(&writer, format!("k{:02}", i % 11), format!("second-{i}"))
            .await?;
    }
    writer.flush_memtables().await?;
    let before = lists();
    follower.follower_poll_now().await?;
    let after = lists();
    // (A swap lists them once more, to load the newest.)
    ensure!(after.1 > before.1, "the manifests were not listed");
    // The WAL listing that found the segments is the one the poll tails.
    ensure!(
        after.0 - before.0 == 1,
        "{} WAL LISTs for one poll",
        after.0 - before.0
    );
    let swapped = follower.follower_status().context("status")?.manifest_id;
    ensure!(swapped > first, "no swap ({first} -> {swapped})");
    check_prefix(&follower, &writer, &history, "after new segments").await?;
    ensure!(follower.visible_seq() == writer.visible_seq());

    // One poll that finds nothing new makes it idle again. A compaction then stores a
    // manifest and no segment: idle polls do not look for it...
    follower.follower_poll_now().await?;
    writer.compact().await?;
    for _ in 0..3 {
        follower.follower_poll_now().await?;
    }
    ensure!(follower.follower_status().context("status")?.manifest_id == swapped);
    check_prefix(&follower, &writer, &history, "idle after a compaction").await?;
    // ...the next segment makes the poll find it.
    history.put(&writer, "k00".into(), "third".into()).await?;
    follower.follower_poll_now().await?;
    ensure!(follower.follower_status().context("status")?.manifest_id > swapped);
    check_prefix(&follower, &writer, &history, "after the next segment").await?;
    ensure!(follower.visible_seq() == writer.visible_seq());
    follower.close().await?;
    writer.close().await?;
    Ok(())
}

/// Counts the WAL GETs a follower makes.
#[derive(Debug, Default)]
struct CountWalGets(Arc<std::sync::atomic::AtomicU64>);

impl common::Hook for CountWalGets {
    fn get_opts<'a>(
        &'a self,
        inner: &'a Arc<dyn ObjectStore>,
        location: &'a Path,
        options: silt::object_store::GetOptions,
    ) -> common::BoxFut<'a, silt::object_store::Result<silt::object_store::GetResult>> {
        if in_dir(location, "wal") {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        inner.get_opts(location, options)
    }
}

/// Behind a gap (a held segment upload) a follower holds at most
/// `follower.fetch_ahead_bytes` of the segments past it, however many polls the gap
/// lasts; the rest wait in the store, and all of it is applied once the gap fills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_past_a_gap_are_held_only_up_to_fetch_ahead_bytes() -> Result<()> {
    let (plain, gate, hooked) = wal_put_held_store();
    let mut ws = writer_settings();
    ws.wal.max_inflight_uploads = 16;
    // No memtable flush: its SST would carry the held write past the gap.
    ws.memtable_bytes = 8 << 20;
    ws.wal.max_replay_segments = 1000;
    let writer = Arc::new(
        Db::builder(Arc::clone(&hooked), root())
            .settings(ws)
            .open()
            .await?,
    );
    writer.put("before", "1").await?;
    let gets = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted: Arc<dyn ObjectStore> =
        HookStore::new(Arc::clone(&plain), CountWalGets(Arc::clone(&gets)));
    let value = "v".repeat(10_000);
    let mut fs = stepped_follower_settings();
    // Room for three of the ~10 KB segments below, not four.
    fs.follower.fetch_ahead_bytes = 35_000;
    let follower = open_follower(&counted, fs).await?;
    let base = follower.visible_seq();

    let buffered = WriteOptions::with_durability(Durability::Buffered);
    let uploaded = || writer.metrics().wal.map_or(0, |w| w.segments_uploaded);
    gate.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.put_with("held", &value, &buffered).await?;
    let mut flushes = Vec::new();
    let w = Arc::clone(&writer);
    flushes.push(tokio::spawn(async move { w.flush().await }));
    gate.reached.notified().await;
    // Eight segments land behind the held one, one by one.
    for i in 0..8 {
        let before = uploaded();
        writer.put_with(&format!("k{i}"), &value, &buffered).await?;
        let w = Arc::clone(&writer);
        flushes.push(tokio::spawn(async move { w.flush().await }));
        segment_uploaded_past(&writer, before)
            .await
            .with_context(|| format!("segment {i} did not land"))?;
    }
    let gets_before = gets.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..5 {
        follower.follower_poll_now().await?;
        let held = follower
            .metrics()
            .follower
            .context("follower metrics")?
            .held_ahead_bytes;
        ensure!(held <= 35_000, "{held} bytes held past the gap");
        ensure!(
            follower.visible_seq() == base,
            "went past the gap: {} > {base} (writer durable {})",
            follower.visible_seq(),
            writer.durable_seq()
        );
    }
    let fetched = gets.load(std::sync::atomic::Ordering::SeqCst) - gets_before;
    ensure!(
        fetched == 3,
        "{fetched} segments fetched past the gap in five polls (room for 3)"
    );
    gate.release.add_permits(1);
    for f in flushes {
        f.await??;
    }
    follower.follower_poll_now().await?;
    ensure!(follower.visible_seq() == writer.durable_seq());
    ensure!(follower.get("held").await?.is_some());
    ensure!(follower.get("k7").await?.is_some());
    ensure!(
        follower
            .metrics()
            .follower
            .context("follower metrics")?
            .held_ahead_bytes
            == 0
    );
    follower.close().await?;
    writer.close().await?;
    Ok(())
}

/// Answers the next WAL GET (while armed) with `NotFound`: the segment was listed, then
/// collected before its GET.
#[derive(Debug, Default)]
struct GoneOnce {
    armed: std::sync::atomic::AtomicBool,
    gone: std::sync::atomic::AtomicU64,
}

impl common::Hook for GoneOnce {
    fn get_opts<'a>(
        &'a self,
        inner: &'a Arc<dyn ObjectStore>,
        location: &'a Path,
        options: silt::object_store::GetOptions,
    ) -> common::BoxFut<'a, silt::object_store::Result<silt::object_store::GetResult>> {
        use std::sync::atomic::Ordering::SeqCst;
        if in_dir(location, "wal") && self.armed.swap(false, SeqCst) {
            self.gone.fetch_add(1, SeqCst);
            return Box::pin(async move {
                Err(silt::object_store::Error::NotFound {
                    path: location.to_string(),
                    source: "collected after the listing".into(),
                })
            });
        }
        inner.get_opts(location, options)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_gone_after_the_listing_makes_the_follower_reload_and_go_on() -> Result<()> {
    let plain: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let hook = HookStore::new(Arc::clone(&plain), GoneOnce::default());
    let hooked: Arc<dyn ObjectStore> = hook.clone();
    let writer = open_writer(&plain).await?;
    writer.put("a", "1").await?;
    let follower = open_follower(&hooked, stepped_follower_settings()).await?;
    writer.put("b", "2").await?;
    writer.flush_memtables().await?;
    writer.put("c", "3").await?;
    hook.hook
        .armed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    follower.follower_poll_now().await?;
    ensure!(hook.hook.gone.load(std::sync::atomic::Ordering::SeqCst) == 1);
    ensure!(
        follower.visible_seq() == writer.visible_seq(),
        "{} vs {}",
        follower.visible_seq(),
        writer.visible_seq()
    );
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
        ensure!(
            follower.get(k).await?.as_deref() == Some(v.as_bytes()),
            "{k}"
        );
    }
    follower.close().await?;
    writer.close().await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn reads_fail_as_stale_while_the_store_is_unreachable() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let writer = open_writer(&store).await?;
    writer.put("k", "v1").await?;
    let mut s = writer_settings();
    s.follower.poll_interval = Duration::from_millis(100);
    s.follower.max_staleness = Duration::from_secs(2);
    s.store.retry.deadline = Duration::from_millis(500);
    // The follower's store fails every request from 5 s to 15 s after it was opened.
    let follower = Db::builder(Arc::clone(&store), root())
        .settings(s)
        .store_faults(Some("outage=10s@5s".parse()?))
        .follower()
        .open()
        .await?;
    ensure!(follower.get("k").await?.as_deref() == Some(&b"v1"[..]));
    tokio::time::sleep(Duration::from_secs(4)).await;
    writer.put("k", "v2").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(follower.get("k").await?.as_deref() == Some(&b"v2"[..]));
    // In the outage, past the staleness bound.
    tokio::time::sleep(Duration::from_secs(4)).await;
    writer.put("k", "v3").await?;
    let e = follower
        .get("k")
        .await
        .err()
        .context("a stale read succeeded")?;
    ensure!(matches!(e, Error::Stale(_)), "{e}");
    ensure!(e.kind() == ErrorKind::Unavailable, "{e}");
    let status = follower.follower_status().context("status")?;
    ensure!(
        status.stale && status.lag > Duration::from_secs(2),
        "{status:?}"
    );
    ensure!(follower
        .metrics()
        .follower
        .is_some_and(|f| f.poll_errors > 0));
    // After the outage the follower catches up and serves again.
    tokio::time::sleep(Duration::from_secs(8)).await;
    ensure!(follower.get("k").await?.as_deref() == Some(&b"v3"[..]));
    ensure!(!follower.follower_status().context("status")?.stale);
    follower.close().await?;
    writer.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_of_an_empty_store_follows_each_new_writer() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    // Opened before any writer: nothing to lease yet.
    let follower = open_follower(&store, stepped_follower_settings()).await?;
    ensure!(follower.visible_seq() == 0 && full_scan(&follower).await?.is_empty());
    let first = open_writer(&store).await?;
    for i in 0..30 {
        first.put(format!("a{i:02}"), format!("first-{i}")).await?;
    }
    first.flush_memtables().await?;
    first.put("shared", "first").await?;
    follower.follower_poll_now().await?;
    ensure!(follower.visible_seq() == first.visible_seq());
    ensure!(follower.get("shared").await?.as_deref() == Some(&b"first"[..]));
    // A second writer fences the first (which is still open) and continues.
    let second = open_writer(&store).await?;
    let e = first
        .put("shared", "zombie")
        .await
        .err()
        .context("the fenced writer's write succeeded")?;
    ensure!(e.is_fenced(), "{e}");
    second.put("shared", "second").await?;
    second.put("b", "only-second").await?;
    follower.follower_poll_now().await?;
    ensure!(
        follower.visible_seq() == second.visible_seq(),
        "{} vs {}",
        follower.visible_seq(),
        second.visible_seq()
    );
    ensure!(full_scan(&follower).await? == full_scan(&second).await?);
    ensure!(follower.get("shared").await?.as_deref() == Some(&b"second"[..]));
    let status = follower.follower_status().context("status")?;
    ensure!(status.writer_epoch == second.writer_epoch(), "{status:?}");
    let leases = second
        .list_checkpoints()
        .await?
        .into_iter()
        .filter(|c| c.kind == silt::CheckpointKind::Lease)
        .count();
    ensure!(leases == 1, "{leases} leases");
    follower.close().await?;
    ensure!(
        second.list_checkpoints().await?.is_empty(),
        "close deletes the lease"
    );
    second.close().await?;
    let _ = first.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_under_load_loses_nothing_acknowledged() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let writer = Arc::new(open_writer(&store).await?);
    writer.put("seed", "0").await?;
    let mut fs = writer_settings();
    fs.follower.poll_interval = Duration::from_millis(5);
    let follower = open_follower(&store, fs).await?;
    let w = Arc::clone(&writer);
    let load = tokio::spawn(async move {
        let mut acked = Vec::new();
        for i in 0..u32::MAX {
            let k = format!("load-{i:06}");
            match w.put(&k, format!("value-{i}")).await {
                Ok(()) => acked.push((k, w.durable_seq())),
                Err(e) => return (acked, Some(e)),
            }
            if i % 50 == 49 {
                if let Err(e) = w.flush_memtables().await {
                    return (acked, Some(e));
                }
            }
        }
        (acked, None)
    });
    // Let some load run, then promote.
    while writer.visible_seq() < 300 && !load.is_finished() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let promoted = follower.promote().await.context("promote")?;
    // The old writer is fenced at its next upload.
    let (acked, err) = load.await?;
    let err = err.context("the old writer kept writing after the promotion")?;
    ensure!(err.is_fenced(), "the old writer stopped with {err}");
    ensure!(acked.len() >= 250, "{} acknowledged", acked.len());
    for (i, (k, _)) in acked.iter().enumerate() {
        let got = promoted.get(k).await?;
        ensure!(
            got.as_deref() == Some(format!("value-{i}").as_bytes()),
            "acknowledged {k} lost after the promotion: {got:?}"
        );
    }
    let last_acked = acked.last().map_or(0, |(_, s)| *s);
    promoted.put("after", "promotion").await?;
    ensure!(
        promoted.visible_seq() > last_acked,
        "the new writer did not continue the sequence"
    );
    ensure!(promoted.writer_epoch() > writer.writer_epoch());
    promoted.close().await?;
    let _ = writer.close().await;
    Ok(())
}

// ---- Processes on the local S3 server ----------------------------------------------------

const CHILD_ENV: &str = "SILT_FOLLOWER_CHILD";
const URL_ENV: &str = "SILT_FOLLOWER_URL";
/// How long the writer writes and the followers read.
const LOAD: Duration = Duration::from_secs(8);
const POLL: Duration = Duration::from_millis(100);

fn process_settings() -> Settings {
    let mut s = Settings::small_for_tests();
    s.wal.max_puts_per_sec = 200.0;
    s.wal.put_burst = 8;
    s.wal.flush_interval = Duration::from_millis(20);
    s.memtable_bytes = 16 * 1024;
    // Collect replaced objects soon: only the followers' leases keep what they read.
    s.gc.interval = Duration::from_secs(1);
    s.gc.grace = Duration::from_secs(1);
    s.follower.poll_interval = POLL;
    s.follower.max_staleness = Duration::from_secs(10);
    s
}

fn say(line: &str) -> Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    // Tagged: the test harness may print on the same line before it.
    writeln!(out, "@@{line}").context("printing to the parent")?;
    out.flush().context("flushing stdout")
}

/// A writer or follower process. A no-op unless started by
/// `followers_in_other_processes_read_only_acknowledged_values`.
#[test]
fn child_process() -> Result<()> {
    let Some(role) = std::env::var_os(CHILD_ENV) else {
        return Ok(());
    };
    let url = std::env::var(URL_ENV).with_context(|| format!("reading {URL_ENV}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the runtime")?;
    rt.block_on(async move {
        let b = silt::DbBuilder::from_url(&url)?.settings(process_settings());
        if role == "writer" {
            let db = b.open().await.context("open the writer")?;
            say("READY")?;
            let mut rng = Rng(11);
            let start = tokio::time::Instant::now();
            let mut counter = 0u64;
            while start.elapsed() < LOAD {
                counter += 1;
                let key = format!("k{:03}", rng.range(0, 200));
                let value = format!("w-{counter:08}-{}", "x".repeat(200));
                db.put(&key, &value).await.context("put")?;
                say(&format!("ACK {key} {value}"))?;
            }
            db.close().await.context("close the writer")?;
            say("DONE")?;
        } else {
            let db = b.follower().open().await.context("open the follower")?;
            let mut rng = Rng(std::process::id().into());
            let start = tokio::time::Instant::now();
            let mut max_lag = Duration::ZERO;
            while start.elapsed() < LOAD {
                let key = format!("k{:03}", rng.range(0, 200));
                let value = db.get(&key).await.context("follower get")?;
                let value = value.map_or_else(
                    || "-".to_owned(),
                    |v| String::from_utf8_lossy(&v).into_owned(),
                );
                say(&format!("READ {key} {value}"))?;
                if let Some(st) = db.follower_status() {
                    max_lag = max_lag.max(st.lag);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let (polls, manifests) = db
                .metrics()
                .follower
                .map_or((0, 0), |f| (f.polls, f.manifests_applied));
            say(&format!("LAG {} {polls} {manifests}", max_lag.as_millis()))?;
            db.close().await.context("close the follower")?;
            say("DONE")?;
        }
        Ok::<_, anyhow::Error>(())
    })
}

fn spawn_child(role: &str, url: &str) -> Result<std::process::Child> {
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().context("finding the test binary")?;
    Command::new(exe)
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, role)
        .env(URL_ENV, url)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("spawning the {role} process"))
}

/// The lines a child printed, read on a thread; `until` stops early at that line.
fn read_lines(
    child: &mut std::process::Child,
    until: Option<&'static str>,
) -> Result<std::sync::mpsc::Receiver<String>> {
    use std::io::BufRead as _;
    let stdout = child
        .stdout
        .take()
        .context("the child's stdout is not piped")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Some(line) = line.split_once("@@").map(|(_, l)| l.to_owned()) else {
                continue;
            };
            let stop = until.is_some_and(|u| line == u);
            if tx.send(line).is_err() || stop {
                break;
            }
        }
    });
    Ok(rx)
}

#[test]
fn followers_in_other_processes_read_only_acknowledged_values() -> Result<()> {
    let Some(base) = common::s3_base_url("follower processes") else {
        return Ok(());
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_nanos();
    let url = format!("{base}/followers-{nanos}");
    let mut writer = spawn_child("writer", &url)?;
    let writer_lines = read_lines(&mut writer, None)?;
    // The followers start once the writer has claimed the database.
    loop {
        let line = writer_lines
            .recv_timeout(Duration::from_secs(30))
            .context("the writer did not start")?;
        if line == "READY" {
            break;
        }
    }
    let mut followers = Vec::new();
    for _ in 0..2 {
        let mut child = spawn_child("follower", &url)?;
        let lines = read_lines(&mut child, None)?;
        followers.push((child, lines));
    }
    let writer_out: Vec<String> = writer_lines.iter().collect();
    let status = writer.wait().context("waiting for the writer")?;
    ensure!(status.success(), "the writer failed: {status}");
    ensure!(
        writer_out.last().map(String::as_str) == Some("DONE"),
        "the writer did not finish"
    );
    let acked: std::collections::HashMap<String, String> = writer_out
        .iter()
        .filter_map(|l| l.strip_prefix("ACK "))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (v.to_owned(), k.to_owned()))
        .collect();
    ensure!(
        acked.len() > 100,
        "only {} writes acknowledged",
        acked.len()
    );
    for (i, (mut child, lines)) in followers.into_iter().enumerate() {
        let out: Vec<String> = lines.iter().collect();
        let status = child.wait().context("waiting for a follower")?;
        ensure!(status.success(), "follower {i} failed: {status}");
        let mut reads = 0;
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for l in out.iter().filter_map(|l| l.strip_prefix("READ ")) {
            let (key, value) = l.split_once(' ').context("a READ line without a value")?;
            reads += 1;
            if value == "-" {
                ensure!(!seen.contains_key(key), "follower {i}: {key} disappeared");
                continue;
            }
            let Some(writer_key) = acked.get(value) else {
                bail!("follower {i} read {key} = {value:.12}, which the writer never acknowledged");
            };
            ensure!(
                writer_key == key,
                "follower {i} read {key} = the value of {writer_key}"
            );
            // A prefix of the history: a key's values never go back.
            if let Some(prev) = seen.get(key) {
                ensure!(
                    value >= prev.as_str(),
                    "follower {i}: {key} went back from {prev:.12} to {value:.12}"
                );
            }
            seen.insert(key.to_owned(), value.to_owned());
        }
        ensure!(
            reads > 100 && !seen.is_empty(),
            "follower {i} read {reads} values, {} present",
            seen.len()
        );
        let lag = out
            .iter()
            .find_map(|l| l.strip_prefix("LAG "))
            .context("a follower did not report its lag")?;
        let figures: Vec<u64> = lag
            .split(' ')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .context("LAG line")?;
        let [lag_ms, polls, manifests] = figures[..] else {
            bail!("LAG line {lag:?}");
        };
        ensure!(polls > 10, "follower {i} polled {polls} times");
        ensure!(manifests > 0, "follower {i} swapped in no manifest");
        let bound = POLL + Duration::from_secs(3);
        ensure!(
            u128::from(lag_ms) <= bound.as_millis(),
            "follower {i} lagged {lag_ms} ms (bound {bound:?})"
        );
        eprintln!(
            "follower {i}: {reads} reads, {} keys seen, max lag {lag_ms} ms, {polls} polls, {manifests} manifests",
            seen.len()
        );
    }
    Ok(())
}
