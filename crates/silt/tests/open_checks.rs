//! Opening checks its local directories before it claims the writer role: a second
//! process pointed at a local-log directory in use, or at a disk-cache directory that is
//! not a cache, gets a clear error and does not fence the writer that is running.

use std::sync::Arc;

use anyhow::{Context, Result};
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::ObjectStore;
use silt::{Db, ErrorKind, LocalLogSettings, Settings};

fn settings() -> Settings {
    let mut s = Settings::small_for_tests();
    s.wal.max_puts_per_sec = 10_000.0;
    s
}

async fn open(store: &Arc<dyn ObjectStore>, s: Settings) -> silt::Result<Db> {
    Db::builder(Arc::clone(store), Path::from("db"))
        .settings(s)
        .open()
        .await
}

async fn assert_still_the_writer(a: &Db, store: &Arc<dyn ObjectStore>, epoch: u64) -> Result<()> {
    a.put("after", "still-writer").await.context("put after")?;
    assert_eq!(a.writer_epoch(), epoch);
    let r = Db::builder(Arc::clone(store), Path::from("db"))
        .settings(settings())
        .read_only()
        .open()
        .await
        .context("open read-only")?;
    assert_eq!(
        r.get("after").await.context("get after")?.as_deref(),
        Some(&b"still-writer"[..])
    );
    r.close().await.context("close the read-only handle")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_log_directory_in_use_stops_the_open_before_fencing() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let mut s = settings();
    s.local_log = Some(LocalLogSettings {
        dir: dir.path().join("local"),
        file_bytes: 64 * 1024,
        ..LocalLogSettings::default()
    });
    let a = open(&store, s.clone()).await.context("open the writer")?;
    let epoch = a.writer_epoch();
    let e = open(&store, s.clone()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("in use"), "{e}");
    assert_still_the_writer(&a, &store, epoch).await?;
    a.close().await.context("close a")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_cache_directory_that_is_not_a_cache_stops_the_open_before_fencing() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let a = open(&store, settings()).await.context("open the writer")?;
    let epoch = a.writer_epoch();
    let home = tempfile::tempdir().context("creating a temp dir")?;
    std::fs::write(home.path().join("notes.txt"), "mine")
        .with_context(|| format!("writing {}", home.path().join("notes.txt").display()))?;
    let mut s = settings();
    s.cache.disk_dir = Some(home.path().to_owned());
    let e = open(&store, s).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_still_the_writer(&a, &store, epoch).await?;
    assert_eq!(
        std::fs::read_to_string(home.path().join("notes.txt"))
            .with_context(|| format!("reading {}", home.path().join("notes.txt").display()))?,
        "mine"
    );
    a.close().await.context("close a")?;
    Ok(())
}
