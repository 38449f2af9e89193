//! A local log holds one writer's history: after another writer took over (on another
//! machine, without this directory) and wrote, the records this directory still has are
//! dead. Reopening here must not replay them on top of the newer writer's writes.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

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

async fn open(store: &Arc<dyn ObjectStore>, local: Option<&std::path::Path>) -> Db {
    Db::builder(Arc::clone(store), Path::from("db"))
        .settings(settings(local))
        .open()
        .await
        .unwrap()
}

async fn get(db: &Db, k: &str) -> Option<String> {
    db.get(k)
        .await
        .unwrap()
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_writers_local_records_are_not_replayed() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let machine_a = dir.path().join("a-local-log");

    // Writer 1 on machine A: one write reaches the store, four only the local log.
    let a = open(&store, Some(&machine_a)).await;
    a.put("a", "v0").await.unwrap();
    let local = WriteOptions::with_durability(Durability::Local);
    for (k, v) in [("k1", "1"), ("k2", "2"), ("a", "old"), ("k3", "3")] {
        a.put_with(k, v, &local).await.unwrap();
    }
    drop(a); // crash

    // Writer 2 on machine B (no local log of A's): recovers the store, writes, closes.
    let b = open(&store, None).await;
    assert_eq!(get(&b, "a").await.as_deref(), Some("v0"));
    b.put("a", "new").await.unwrap();
    b.put("x", "1").await.unwrap();
    b.close().await.unwrap();

    // Writer 3 back on machine A, with A's local log.
    let c = open(&store, Some(&machine_a)).await;
    assert_eq!(
        get(&c, "a").await.as_deref(),
        Some("new"),
        "a replaced writer's write came back"
    );
    assert_eq!(get(&c, "x").await.as_deref(), Some("1"));
    for k in ["k1", "k2", "k3"] {
        assert_eq!(get(&c, k).await, None, "{k}: dead history replayed");
    }
    // The directory now serves writer 3: its Local writes survive a crash.
    c.put_with("c1", "x", &local).await.unwrap();
    drop(c);
    let d = open(&store, Some(&machine_a)).await;
    assert_eq!(get(&d, "c1").await.as_deref(), Some("x"));
    assert_eq!(get(&d, "a").await.as_deref(), Some("new"));
    assert_eq!(get(&d, "k3").await, None);
    d.close().await.unwrap();
}

/// The directory's own writer, reopened after a crash, still gets its Local writes back
/// (the owner check does not discard current records).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_writers_local_records_are_replayed() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let a = open(&store, Some(dir.path())).await;
    a.put("a", "v0").await.unwrap();
    let local = WriteOptions::with_durability(Durability::Local);
    a.put_with("a", "local", &local).await.unwrap();
    drop(a);
    let a = open(&store, Some(dir.path())).await;
    assert_eq!(get(&a, "a").await.as_deref(), Some("local"));
    a.put_with("b", "local-2", &local).await.unwrap();
    drop(a);
    let a = open(&store, Some(dir.path())).await;
    assert_eq!(get(&a, "a").await.as_deref(), Some("local"));
    assert_eq!(get(&a, "b").await.as_deref(), Some("local-2"));
    a.close().await.unwrap();
}
