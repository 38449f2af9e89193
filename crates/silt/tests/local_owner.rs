//! A local log holds one writer's history: after another writer took over (on another
//! machine, without this directory) and wrote, the records this directory still has are
//! dead. Reopening here must not replay them on top of the newer writer's writes.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::ObjectStore;
use silt::{Db, Durability, LocalLogSettings, Settings, WriteOptions};

fn settings(local: Option<&std::path::Path>) -> Settings {
    let mut s = Settings::small_for_tests();
    s.gc.enabled = false;
    s.compaction.enabled = false;
    s.flush_on_close = false;
    // Local writes stay local: the remote WAL uploads only when asked.
    s.wal.flush_interval = Duration::from_secs(3600);
    s.wal.max_puts_per_sec = 10_000.0;
    s.local_log = local.map(|d| LocalLogSettings {
        dir: d.to_owned(),
        file_bytes: 64 * 1024,
        ..LocalLogSettings::default()
    });
    s
}

async fn open(store: &Arc<dyn ObjectStore>, local: Option<&std::path::Path>) -> Result<Db> {
    Db::builder(Arc::clone(store), Path::from("db"))
        .settings(settings(local))
        .open()
        .await
        .with_context(|| format!("open (local log: {local:?})"))
}

async fn get(db: &Db, k: &str) -> Result<Option<String>> {
    db.get(k)
        .await
        .with_context(|| format!("get {k}"))?
        .map(|v| String::from_utf8(v.to_vec()).with_context(|| format!("the value of {k}")))
        .transpose()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_writers_local_records_are_not_replayed() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let machine_a = dir.path().join("a-local-log");

    // Writer 1 on machine A: one write reaches the store, four only the local log.
    let a = open(&store, Some(&machine_a)).await?;
    a.put("a", "v0").await.context("put a")?;
    let local = WriteOptions::with_durability(Durability::Local);
    for (k, v) in [("k1", "1"), ("k2", "2"), ("a", "old"), ("k3", "3")] {
        a.put_with(k, v, &local)
            .await
            .with_context(|| format!("put_with {k}"))?;
    }
    drop(a); // crash

    // Writer 2 on machine B (no local log of A's): recovers the store, writes, closes.
    let b = open(&store, None).await?;
    assert_eq!(get(&b, "a").await?.as_deref(), Some("v0"));
    b.put("a", "new").await.context("put a")?;
    b.put("x", "1").await.context("put x")?;
    b.close().await.context("close b")?;

    // Writer 3 back on machine A, with A's local log.
    let c = open(&store, Some(&machine_a)).await?;
    assert_eq!(
        get(&c, "a").await?.as_deref(),
        Some("new"),
        "a replaced writer's write came back"
    );
    assert_eq!(get(&c, "x").await?.as_deref(), Some("1"));
    for k in ["k1", "k2", "k3"] {
        assert_eq!(get(&c, k).await?, None, "{k}: dead history replayed");
    }
    // The directory now serves writer 3: its Local writes survive a crash.
    c.put_with("c1", "x", &local).await.context("put_with c1")?;
    drop(c);
    let d = open(&store, Some(&machine_a)).await?;
    assert_eq!(get(&d, "c1").await?.as_deref(), Some("x"));
    assert_eq!(get(&d, "a").await?.as_deref(), Some("new"));
    assert_eq!(get(&d, "k3").await?, None);
    d.close().await.context("close d")?;
    Ok(())
}

/// The directory's own writer, reopened after a crash, still gets its Local writes back
/// (the owner check does not discard current records).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_writers_local_records_are_replayed() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let a = open(&store, Some(dir.path())).await?;
    a.put("a", "v0").await.context("put a")?;
    let local = WriteOptions::with_durability(Durability::Local);
    a.put_with("a", "local", &local)
        .await
        .context("put_with a")?;
    drop(a);
    let a = open(&store, Some(dir.path())).await?;
    assert_eq!(get(&a, "a").await?.as_deref(), Some("local"));
    a.put_with("b", "local-2", &local)
        .await
        .context("put_with b")?;
    drop(a);
    let a = open(&store, Some(dir.path())).await?;
    assert_eq!(get(&a, "a").await?.as_deref(), Some("local"));
    assert_eq!(get(&a, "b").await?.as_deref(), Some("local-2"));
    a.close().await.context("close a")?;
    Ok(())
}
