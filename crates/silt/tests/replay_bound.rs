//! Bounded recovery time: under a trickle of writes that never fills a memtable, the WAL
//! since the replay point would grow without end, and an open would replay all of it.
//! `wal.max_replay_segments` and `wal.max_replay_age` make the memtable flush anyway.
//! Paused time: hours pass in microseconds, deterministically.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::ObjectStore;
use silt::{Db, Settings};

fn settings() -> Settings {
    let mut s = Settings::small_for_tests();
    // Memtables never fill in these tests; every Remote write seals its own segment.
    s.memtable_bytes = 64 << 20;
    s.wal.max_unflushed_bytes = 64 << 20;
    s.wal.max_puts_per_sec = 1000.0;
    s.gc.enabled = false;
    s.compaction.enabled = false;
    s.flush_on_close = false;
    s
}

async fn open(store: &Arc<dyn ObjectStore>, s: &Settings) -> Result<Db> {
    Db::builder(Arc::clone(store), Path::from("db"))
        .settings(s.clone())
        .open()
        .await
        .context("open")
}

#[tokio::test(start_paused = true)]
async fn segments_since_the_replay_point_stay_bounded() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut s = settings();
    s.wal.max_replay_segments = 20;
    let db = open(&store, &s).await?;
    for i in 0..300 {
        db.put(format!("k{i:04}"), "v")
            .await
            .with_context(|| format!("put k{i:04}"))?;
        // A write every 100 ms: the bound is checked every second.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let flushes = db.metrics().engine.replay_bound_flushes;
    assert!(flushes >= 10, "only {flushes} flushes for 300 segments");
    drop(db); // crash: nothing more is flushed
    let db = open(&store, &s).await?;
    let replayed = db.metrics().engine.recovery_segments;
    // The bound, plus what one check interval (10 writes) adds, plus fences.
    assert!(
        replayed <= 20 + 10 + 2,
        "an open replayed {replayed} segments"
    );
    for i in (0..300).step_by(7) {
        assert!(
            db.get(format!("k{i:04}"))
                .await
                .with_context(|| format!("get k{i:04}"))?
                .is_some(),
            "k{i:04}"
        );
    }
    db.close().await.context("close")?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn an_old_memtable_is_flushed() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut s = settings();
    s.wal.max_replay_age = Duration::from_secs(600);
    let db = open(&store, &s).await?;
    db.put("a", "1").await.context("put a")?;
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(db.metrics().engine.replay_bound_flushes, 0);
    tokio::time::sleep(Duration::from_secs(301)).await;
    assert_eq!(db.metrics().engine.replay_bound_flushes, 1);
    // Idle afterwards: an empty memtable is never flushed for age.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(db.metrics().engine.replay_bound_flushes, 1);
    drop(db);
    let db = open(&store, &s).await?;
    assert!(db.metrics().engine.recovery_segments <= 2);
    assert_eq!(
        db.get("a").await.context("get a")?.as_deref(),
        Some(&b"1"[..])
    );
    db.close().await.context("close")?;
    Ok(())
}
