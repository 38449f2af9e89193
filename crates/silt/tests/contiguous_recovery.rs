//! Recovery is a contiguous prefix, and nothing past a WAL gap was ever acknowledged.
//!
//! * A read-only open while a segment is still uploading and a later one already landed
//!   sees the prefix before the gap, never the later segment's writes.
//! * A segment that found its id taken by a fenced writer's late upload moves to a higher
//!   id; the writes in it are acknowledged only once every lower id of this writer is
//!   stored too, because a crash before that leaves a gap that recovery does not cross.
//!
//! Interleavings are forced with store hooks that hold chosen WAL PUTs; paused time lets
//! the test run the engine until it is idle, so "has not happened" is checked without
//! guessing a timeout.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use common::{BoxFut, Gate, Hook, HookStore};
use futures::TryStreamExt;
use parking_lot::Mutex;
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::{
    ObjectStore, ObjectStoreExt, PutOptions, PutPayload, PutResult, Result as OsResult,
};
use silt::{Db, Durability, Settings, WriteOptions};

fn root() -> Path {
    Path::from("db")
}

fn settings() -> Settings {
    let mut s = Settings::small_for_tests();
    s.wal.max_puts_per_sec = 10_000.0;
    s.wal.put_burst = 100;
    s.gc.enabled = false;
    s.compaction.enabled = false;
    s.flush_on_close = false;
    s
}

fn wal_id(path: &Path) -> Option<u64> {
    let name = path.filename()?.strip_suffix(".wal")?;
    path.as_ref().contains("/wal/").then(|| name.parse().ok())?
}

/// Holds the PUT of chosen WAL ids (before it reaches the store) at a gate each, and
/// counts the WAL PUTs that completed.
#[derive(Debug, Default)]
struct HoldWal {
    gates: Mutex<HashMap<u64, Arc<Gate>>>,
    landed: Mutex<Vec<u64>>,
}

impl HoldWal {
    fn hold(&self, id: u64) -> Arc<Gate> {
        let g = Gate::new(true);
        self.gates.lock().insert(id, Arc::clone(&g));
        g
    }
}

impl Hook for Arc<HoldWal> {
    fn put_opts<'a>(
        &'a self,
        inner: &'a Arc<dyn ObjectStore>,
        location: &'a Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFut<'a, OsResult<PutResult>> {
        Box::pin(async move {
            let id = wal_id(location);
            let gate = id.and_then(|id| self.gates.lock().get(&id).cloned());
            if let Some(g) = gate {
                if g.trip() {
                    g.hold().await;
                }
            }
            let r = inner.put_opts(location, payload, opts).await;
            if let (Some(id), Ok(_)) = (id, &r) {
                self.landed.lock().push(id);
            }
            r
        })
    }
}

async fn wal_ids(store: &Arc<dyn ObjectStore>) -> Result<Vec<u64>> {
    let mut ids: Vec<u64> = store
        .list(Some(&root().join("wal")))
        .try_collect::<Vec<_>>()
        .await
        .context("listing the WAL")?
        .iter()
        .filter_map(|m| wal_id(&m.location))
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Let every task run until the runtime is idle (time is paused, so the sleep ends only
/// then, after any timers due before it fired).
async fn settle() {
    tokio::time::sleep(Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn a_read_only_open_sees_the_prefix_before_a_wal_gap() -> Result<()> {
    let hold = Arc::new(HoldWal::default());
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store: Arc<dyn ObjectStore> = HookStore::new(Arc::clone(&mem), Arc::clone(&hold));
    let w = Arc::new(
        Db::builder(Arc::clone(&store), root())
            .settings(settings())
            .open()
            .await
            .context("open")?,
    );
    w.put("a", "1").await.context("put a")?;
    let next = wal_ids(&mem)
        .await?
        .last()
        .copied()
        .context("no WAL segment")?
        + 1;
    let gate = hold.hold(next);
    let buffered = WriteOptions::with_durability(Durability::Buffered);

    // "b" goes into segment `next`, held; "c" into `next + 1`, which lands.
    w.put_with("b", "2", &buffered)
        .await
        .context("put_with b")?;
    let f1 = tokio::spawn({
        let w = Arc::clone(&w);
        async move { w.flush().await }
    });
    settle().await;
    assert!(
        !gate.armed.load(std::sync::atomic::Ordering::SeqCst),
        "segment {next} not sealed"
    );
    w.put_with("c", "3", &buffered)
        .await
        .context("put_with c")?;
    let f2 = tokio::spawn({
        let w = Arc::clone(&w);
        async move { w.flush().await }
    });
    settle().await;
    assert!(
        hold.landed.lock().contains(&(next + 1)),
        "segment {} did not land",
        next + 1
    );
    assert!(
        !f1.is_finished() && !f2.is_finished(),
        "acknowledged past a gap"
    );

    let r = Db::builder(Arc::clone(&mem), root())
        .settings(settings())
        .read_only()
        .open()
        .await
        .context("reopen")?;
    assert_eq!(
        r.get("a").await.context("get a")?.as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(r.get("b").await.context("get b")?, None);
    assert_eq!(
        r.get("c").await.context("get c")?,
        None,
        "a read-only open saw writes past a gap"
    );
    r.close().await.context("close r")?;

    gate.release.add_permits(1);
    f1.await
        .context("the f1 task panicked")?
        .context("flush f1")?;
    f2.await
        .context("the f2 task panicked")?
        .context("flush f2")?;
    let r = Db::builder(Arc::clone(&mem), root())
        .settings(settings())
        .read_only()
        .open()
        .await
        .context("second reopen")?;
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
        assert_eq!(
            r.get(k)
                .await
                .with_context(|| format!("get {k}"))?
                .as_deref(),
            Some(v.as_bytes()),
            "{k}"
        );
    }
    r.close().await.context("close r")?;
    w.close().await.context("close w")?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_moved_segment_is_acknowledged_only_after_every_lower_id() -> Result<()> {
    let hold = Arc::new(HoldWal::default());
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store: Arc<dyn ObjectStore> = HookStore::new(Arc::clone(&mem), Arc::clone(&hold));

    // Writer A's data segment, to be copied where writer B will want to write: the late
    // upload of a fenced writer.
    let a = Db::builder(Arc::clone(&mem), root())
        .settings(settings())
        .open()
        .await
        .context("open")?;
    a.put("from-a", "x").await.context("put from-a")?;
    let a_segment = *wal_ids(&mem).await?.last().context("no WAL segment of A")?;
    drop(a);

    let b = Arc::new(
        Db::builder(Arc::clone(&store), root())
            .settings(settings())
            .open()
            .await
            .context("reopen")?,
    );
    let fence = *wal_ids(&mem).await?.last().context("no WAL segment of B")?;
    let zombie = mem
        .get(&root().join("wal").join(format!("{a_segment:020}.wal")))
        .await
        .with_context(|| format!("get WAL segment {a_segment}"))?
        .bytes()
        .await
        .context("reading the body")?;
    mem.put(
        &root().join("wal").join(format!("{:020}.wal", fence + 1)),
        zombie.into(),
    )
    .await
    .with_context(|| format!("put the zombie as WAL segment {}", fence + 1))?;

    // k1 is sealed for id fence+1 (held, then refused: the zombie is there), k2 for
    // fence+2 (held); k1 moves to fence+3 and lands there.
    let g1 = hold.hold(fence + 1);
    let g2 = hold.hold(fence + 2);
    let seq_before = b.durable_seq();
    let w1 = tokio::spawn({
        let b = Arc::clone(&b);
        async move { b.put("k1", "v1").await }
    });
    settle().await;
    let w2 = tokio::spawn({
        let b = Arc::clone(&b);
        async move { b.put("k2", "v2").await }
    });
    settle().await;
    g1.release.add_permits(1);
    settle().await;
    assert!(
        hold.landed.lock().contains(&(fence + 3)),
        "k1 did not move to {}",
        fence + 3
    );
    assert!(
        !w1.is_finished(),
        "k1 was acknowledged while WAL id {} of its writer is not stored",
        fence + 2
    );
    assert_eq!(b.durable_seq(), seq_before);

    // Once fence+2 lands, both are durable, and recovery finds both.
    g2.release.add_permits(1);
    w1.await
        .context("the w1 task panicked")?
        .context("put k1")?;
    w2.await
        .context("the w2 task panicked")?
        .context("put k2")?;
    assert!(b.durable_seq() >= seq_before + 2);
    drop(b);
    let c = Db::builder(Arc::clone(&mem), root())
        .settings(settings())
        .open()
        .await
        .context("second reopen")?;
    assert_eq!(
        c.get("k1").await.context("get k1")?.as_deref(),
        Some(&b"v1"[..])
    );
    assert_eq!(
        c.get("k2").await.context("get k2")?.as_deref(),
        Some(&b"v2"[..])
    );
    assert_eq!(
        c.get("from-a").await.context("get from-a")?.as_deref(),
        Some(&b"x"[..])
    );
    c.close().await.context("close c")?;
    Ok(())
}

/// WAL segments land out of order and the writer crashes: the segment holding the first
/// `Local` write never lands, the next one does. Recovery stops the remote prefix at the
/// gap and the local log fills it: every `Local`-acknowledged write is there.
#[tokio::test(start_paused = true)]
async fn local_writes_fill_a_wal_gap_after_a_crash() -> Result<()> {
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let mut s = settings();
    // Segments are sealed by the explicit flushes below only.
    s.wal.flush_interval = Duration::from_secs(3600);
    s.local_log = Some(silt::LocalLogSettings {
        dir: dir.path().join("local"),
        file_bytes: 64 * 1024,
        ..silt::LocalLogSettings::default()
    });
    let hold = Arc::new(HoldWal::default());
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store: Arc<dyn ObjectStore> = HookStore::new(Arc::clone(&mem), Arc::clone(&hold));
    let open = |store: Arc<dyn ObjectStore>| Db::builder(store, root()).settings(s.clone()).open();
    let w = Arc::new(open(Arc::clone(&store)).await.context("open")?);
    let local = WriteOptions::with_durability(Durability::Local);
    w.put("before", "0").await.context("put before")?;
    let next = wal_ids(&mem)
        .await?
        .last()
        .copied()
        .context("no WAL segment")?
        + 1;
    let gate = hold.hold(next);

    w.put_with("k1", "1", &local).await.context("put_with k1")?;
    let f1 = tokio::spawn({
        let w = Arc::clone(&w);
        async move { w.flush().await }
    });
    settle().await;
    w.put_with("k2", "2", &local).await.context("put_with k2")?;
    let f2 = tokio::spawn({
        let w = Arc::clone(&w);
        async move { w.flush().await }
    });
    settle().await;
    assert!(hold.landed.lock().contains(&(next + 1)));
    w.put_with("k3", "3", &local).await.context("put_with k3")?;

    // Crash: background tasks and the held upload are dropped, nothing is flushed.
    f1.abort();
    f2.abort();
    settle().await;
    drop(w);
    settle().await;
    assert!(!gate.armed.load(std::sync::atomic::Ordering::SeqCst));
    assert!(
        !wal_ids(&mem).await?.contains(&next),
        "the held segment landed"
    );

    let r = open(Arc::clone(&mem)).await.context("reopen")?;
    for (k, v) in [("before", "0"), ("k1", "1"), ("k2", "2"), ("k3", "3")] {
        assert_eq!(
            r.get(k)
                .await
                .with_context(|| format!("get {k}"))?
                .as_deref(),
            Some(v.as_bytes()),
            "{k}"
        );
    }
    r.close().await.context("close r")?;
    // And once more, now from the remote WAL alone (the local records were shipped).
    let mut s2 = s.clone();
    s2.local_log = None;
    let r = Db::builder(Arc::clone(&mem), root())
        .settings(s2)
        .open()
        .await
        .context("second reopen")?;
    for (k, v) in [("before", "0"), ("k1", "1"), ("k2", "2"), ("k3", "3")] {
        assert_eq!(
            r.get(k)
                .await
                .with_context(|| format!("get {k}"))?
                .as_deref(),
            Some(v.as_bytes()),
            "{k}"
        );
    }
    r.close().await.context("close r")?;
    Ok(())
}
