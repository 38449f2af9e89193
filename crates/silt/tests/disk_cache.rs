//! The local-disk block cache serves reads across restarts and discards damaged files.

use std::sync::Arc;

use anyhow::{Context, Result};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;
use silt::{Db, Settings};

fn settings(dir: &std::path::Path) -> Settings {
    let mut s = Settings::small_for_tests();
    s.block_cache_bytes = 4096; // nearly nothing in memory: reads go to the disk tier
    s.cache.disk_dir = Some(dir.to_path_buf());
    s.cache.disk_bytes = 64 * 1024 * 1024;
    s.compaction.enabled = false;
    s.gc.enabled = false;
    s
}

async fn read_all(db: &Db) -> Result<()> {
    for i in 0..2000u32 {
        let v = db
            .get(format!("k{i:05}"))
            .await
            .with_context(|| format!("get k{i:05}"))?;
        assert_eq!(v.as_deref(), Some(format!("value-{i}").as_bytes()), "k{i}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_cache_serves_reads_after_restart() -> Result<()> {
    let cache_dir = tempfile::tempdir().context("creating a temp dir")?;
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let db = Db::open_with_store(store.clone(), Path::from("db"), settings(cache_dir.path()))
        .await
        .context("open")?;
    let mut b = silt::WriteBatch::new();
    for i in 0..2000u32 {
        b.put(format!("k{i:05}"), format!("value-{i}"));
    }
    db.write(b).await.context("write the batch")?;
    db.close().await.context("close")?; // flushes memtables: reads now go to SSTs

    let db = Db::open_with_store(store.clone(), Path::from("db"), settings(cache_dir.path()))
        .await
        .context("reopen with a cold disk cache")?;
    read_all(&db).await?;
    let first = db.metrics();
    assert!(
        first.store.get_ranges > 0,
        "cold reads fetch blocks from the store"
    );
    assert!(first.stats.disk_cache_bytes > 0);
    db.close().await.context("close")?;

    // A restart keeps the disk cache: no block GETs this time.
    let db = Db::open_with_store(store.clone(), Path::from("db"), settings(cache_dir.path()))
        .await
        .context("reopen with a warm disk cache")?;
    let before = db.metrics().store.get_ranges;
    read_all(&db).await?;
    let m = db.metrics();
    assert_eq!(
        m.store.get_ranges, before,
        "warm disk cache serves every block"
    );
    assert!(m.disk_cache.is_some_and(|d| d.hits > 0));
    db.close().await.context("close")?;

    // Damage every cached file: reads stay correct and refetch from the store.
    for entry in std::fs::read_dir(cache_dir.path())
        .with_context(|| format!("listing {}", cache_dir.path().display()))?
    {
        let p = entry
            .with_context(|| format!("listing {}", cache_dir.path().display()))?
            .path();
        let mut bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))?;
    }
    let db = Db::open_with_store(store, Path::from("db"), settings(cache_dir.path()))
        .await
        .context("reopen with a damaged disk cache")?;
    let before = db.metrics().store.get_ranges;
    read_all(&db).await?;
    assert!(
        db.metrics().store.get_ranges > before,
        "damaged files are refetched"
    );
    db.close().await.context("close")?;
    Ok(())
}
