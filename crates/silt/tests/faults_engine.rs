//! The engine rides out injected object-store faults (issue 11 item 5): with 5% of every
//! request failing transiently and 2% of PUT responses lost after the store applied them,
//! Remote writes and reads all succeed through `Storage`'s retries and the read-back
//! resolution of create-only PUTs, and a reopen without faults sees every acknowledged key.
//! Paused time: the backoffs take no real time.

use std::sync::Arc;

use anyhow::{Context, Result};
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::ObjectStore;
use silt::objstore::FaultSpec;
use silt::{Db, Durability, Settings, WriteOptions};

fn settings() -> Settings {
    let mut s = Settings::small_for_tests();
    s.wal.max_puts_per_sec = 1000.0;
    s.gc.enabled = false;
    s
}

async fn open(store: &Arc<dyn ObjectStore>, faults: Option<FaultSpec>) -> Result<Db> {
    let with_faults = faults.is_some();
    Db::builder(Arc::clone(store), Path::from("db"))
        .settings(settings())
        .store_faults(faults)
        .open()
        .await
        .with_context(|| format!("open (faults: {with_faults})"))
}

fn key(i: usize) -> String {
    format!("k{i:04}")
}

fn value(i: usize) -> String {
    format!("v{i}-{}", "x".repeat(i % 50))
}

#[tokio::test(start_paused = true)]
async fn remote_writes_and_reads_ride_out_injected_faults() -> Result<()> {
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let faults: FaultSpec = "all=0.05,lost=0.02".parse()?;
    let db = open(&mem, Some(faults)).await?;
    let remote = WriteOptions::with_durability(Durability::Remote);
    for i in 0..300 {
        db.put_with(key(i), value(i), &remote)
            .await
            .with_context(|| format!("put_with {}", key(i)))?;
    }
    // Reads go to the store too once the memtables are flushed.
    db.flush_memtables().await.context("flush_memtables")?;
    for i in 0..300 {
        let got = db
            .get(key(i))
            .await
            .with_context(|| format!("get {}", key(i)))?
            .with_context(|| format!("{} missing", key(i)))?;
        assert_eq!(got.as_ref(), value(i).as_bytes(), "{}", key(i));
    }
    let m = db.metrics();
    assert!(m.store_retries.total > 0, "{:?}", m.store_retries);
    assert_eq!(m.store_retries.gave_up, 0, "{:?}", m.store_retries);
    db.close().await.context("close under faults")?;

    let db = open(&mem, None).await?;
    for i in 0..300 {
        let got = db
            .get(key(i))
            .await
            .with_context(|| format!("get {}", key(i)))?;
        assert_eq!(got.as_deref(), Some(value(i).as_bytes()), "{}", key(i));
    }
    db.close().await.context("close")?;
    Ok(())
}
