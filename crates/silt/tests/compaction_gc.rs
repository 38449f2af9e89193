//! Compaction keeps L0 bounded and data intact; GC deletes only what nobody needs.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;
use silt::{Db, Durability, Settings, WriteBatch, WriteOptions};

fn settings() -> Settings {
    let mut s = Settings::small_for_tests();
    s.compaction.l0_trigger = 3;
    s.compaction.l0_slowdown = 6;
    s.compaction.l0_stop = 10;
    s.gc.enabled = false;
    s
}

async fn count(store: &Arc<dyn ObjectStore>, dir: &str) -> Result<usize> {
    use futures::TryStreamExt;
    let p = Path::from(format!("db/{dir}"));
    Ok(store
        .list(Some(&p))
        .try_collect::<Vec<_>>()
        .await
        .with_context(|| format!("listing {p}"))?
        .len())
}

async fn fill(db: &Db, round: u32, keys: u32) -> Result<()> {
    let buffered = WriteOptions::with_durability(Durability::Buffered);
    for chunk in 0..keys / 100 {
        let mut b = WriteBatch::new();
        for i in chunk * 100..(chunk + 1) * 100 {
            if round > 0 && i % 7 == 0 {
                b.delete(format!("key{i:06}"));
            } else {
                b.put(
                    format!("key{i:06}"),
                    format!("r{round}-{i}-{}", "x".repeat(40)),
                );
            }
        }
        db.write_with(b, &buffered)
            .await
            .with_context(|| format!("round {round}: write of batch {chunk}"))?;
    }
    db.flush()
        .await
        .with_context(|| format!("round {round}: flush"))?;
    Ok(())
}

fn expected(round: u32, i: u32) -> Option<String> {
    (round == 0 || i % 7 != 0).then(|| format!("r{round}-{i}-{}", "x".repeat(40)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_bounds_l0_and_preserves_latest_values() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let db = Db::open_with_store(store.clone(), Path::from("db"), settings())
        .await
        .context("open")?;
    for round in 0..3 {
        fill(&db, round, 3000).await?;
    }
    db.flush_memtables().await.context("flush_memtables")?;
    let before = db.metrics().engine;
    assert!(before.compactions > 0, "background compaction never ran");
    // Writers stop at `l0_stop`; memtables already full then (the active one and up to
    // `max_frozen_memtables` frozen ones) still flush, so that is the most L0 can hold.
    let s = settings();
    let bound = s.compaction.l0_stop + s.max_frozen_memtables + 1;
    assert!(
        db.stats().l0_ssts <= bound,
        "L0 grew to {} (bound {bound})",
        db.stats().l0_ssts
    );
    let snap = db.snapshot();
    fill(&db, 3, 3000).await?;
    // Flush what fill left in memtables first: a background flush landing after the
    // compaction would leave an L0 SST behind.
    db.flush_memtables().await.context("flush_memtables")?;
    db.compact().await.context("compact")?;
    let st = db.stats();
    assert_eq!(st.l0_ssts, 0);
    for i in (0..3000).step_by(13) {
        let got = db
            .get(format!("key{i:06}"))
            .await
            .with_context(|| format!("get key{i:06}"))?;
        assert_eq!(
            got.map(|b| String::from_utf8(b.to_vec()).unwrap()),
            expected(3, i),
            "key {i}"
        );
        let old = snap
            .get(format!("key{i:06}"))
            .await
            .with_context(|| format!("snapshot get key{i:06}"))?;
        assert_eq!(
            old.map(|b| String::from_utf8(b.to_vec()).unwrap()),
            expected(2, i),
            "snapshot key {i}"
        );
    }
    let live = db
        .scan::<&str>(..)
        .context("scan")?
        .collect(10_000)
        .await
        .context("scan")?;
    assert_eq!(
        live.len(),
        (0..3000).filter(|i| expected(3, *i).is_some()).count()
    );
    drop(snap);
    db.close().await.context("close")?;

    // Everything survives a reopen from the manifest's runs.
    let db = Db::open_with_store(store, Path::from("db"), settings())
        .await
        .context("reopen")?;
    let live2 = db
        .scan::<&str>(..)
        .context("scan after reopening")?
        .collect(10_000)
        .await
        .context("scan after reopening")?;
    assert_eq!(live, live2);
    db.close().await.context("close the reopened db")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_keeps_what_readers_need_and_deletes_the_rest() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let db = Db::open_with_store(store.clone(), Path::from("db"), settings())
        .await
        .context("open")?;
    fill(&db, 0, 2000).await?;
    db.flush_memtables().await.context("flush_memtables")?;
    // A scan opened now holds the pre-compaction SSTs.
    let mut scan = db.scan::<&str>(..).context("scan")?;
    let first = scan
        .next()
        .await
        .context("the scan's first row")?
        .context("the scan is empty")?;
    assert_eq!(&first.0[..], b"key000000");
    fill(&db, 1, 2000).await?;
    db.flush_memtables().await.context("flush_memtables")?;
    db.compact().await.context("compact")?;
    // Zero grace: only in-process holders protect objects now.
    let report = db.gc(Some(Duration::ZERO)).await.context("gc")?;
    assert!(report.wal > 0, "{report:?}");
    assert!(report.manifests > 0, "{report:?}");
    // The scan still reads its SSTs: GC skipped them.
    let rest = scan.collect(10_000).await.context("the scan's rest")?;
    assert_eq!(rest.len(), 1999);
    let report2 = db.gc(Some(Duration::ZERO)).await.context("second gc")?;
    assert!(
        report2.sst > 0,
        "SSTs released by the scan are collected: {report2:?}"
    );
    // Nothing the current manifest needs was deleted.
    db.close().await.context("close")?;
    let db = Db::open_with_store(store.clone(), Path::from("db"), settings())
        .await
        .context("reopen")?;
    let all = db
        .scan::<&str>(..)
        .context("scan after reopening")?
        .collect(10_000)
        .await
        .context("scan after reopening")?;
    assert_eq!(
        all.len(),
        (0..2000).filter(|i| expected(1, *i).is_some()).count()
    );
    let info = silt::inspect::inspect(db.storage())
        .await
        .context("inspect")?;
    assert!(
        info.wal_segments <= info.wal_segments_to_replay + 1,
        "WAL segments below the replay point remain: {info:?}"
    );
    assert_eq!(info.manifests, count(&store, "manifest").await?);
    db.close().await.context("close the reopened db")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_grace_protects_recent_objects() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let db = Db::open_with_store(store.clone(), Path::from("db"), settings())
        .await
        .context("open")?;
    fill(&db, 0, 1000).await?;
    db.flush_memtables().await.context("flush_memtables")?;
    let wal_before = count(&store, "wal").await?;
    let report = db.gc(Some(Duration::from_secs(3600))).await.context("gc")?;
    assert_eq!(report.wal + report.sst + report.manifests, 0, "{report:?}");
    assert_eq!(count(&store, "wal").await?, wal_before);
    db.close().await.context("close")?;
    Ok(())
}
