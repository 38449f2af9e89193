//! GC racing a memtable flush in the same process: an SST whose upload has landed in the
//! store but whose PUT response has not yet reached the flush (so it is neither registered
//! nor in a manifest) must not be deleted by a GC pass. `Db::gc(Some(Duration::ZERO))` is
//! documented as fine when no other process reads the store.
//!
//! The interleaving is forced with a store wrapper that stores the SST at once but holds
//! the PUT response until released (as a slow S3 response would).

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use common::{in_dir, Gate, HoldAt, HoldPut, HookStore};
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::ObjectStore;
use silt::{Db, Settings};

fn unix_millis() -> Result<u128> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_millis())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn gc_does_not_delete_the_sst_of_a_concurrent_flush() -> Result<()> {
    let gate = Gate::new(false);
    let gated = HookStore::new(
        Arc::new(InMemory::new()),
        HoldPut::new(&gate, HoldAt::Response, |p, _| in_dir(p, "sst")),
    );
    let store: Arc<dyn ObjectStore> = gated.clone();
    let mut s = Settings::small_for_tests();
    s.gc.enabled = false;
    s.compaction.enabled = false;
    let db = Arc::new(
        Db::open_with_store(store, Path::from("db"), s)
            .await
            .context("open")?,
    );
    let mut batch = silt::WriteBatch::new();
    for i in 0..100 {
        batch.put(format!("k{i:03}"), "v");
    }
    db.write(batch).await.context("write")?;

    // The flush's SST is in the store, but its PUT has not returned yet.
    gate.armed.store(true, Ordering::SeqCst);
    let flush = tokio::spawn({
        let db = Arc::clone(&db);
        async move { db.flush_memtables().await }
    });
    gate.reached.notified().await;
    // Let the wall clock move past the SST's timestamp (zero grace then does not cover it).
    let stored = unix_millis()?;
    while unix_millis()? <= stored {
        std::hint::spin_loop();
    }
    let report = db.gc(Some(Duration::ZERO)).await.context("gc")?;
    gate.release.add_permits(1);
    flush
        .await
        .context("the flush task panicked")?
        .context("flush")?;

    for i in 0..100 {
        let got = db.get(format!("k{i:03}")).await;
        assert!(
            matches!(&got, Ok(Some(v)) if v.as_ref() == b"v"),
            "k{i:03} after GC ({report:?}): {got:?}"
        );
    }
    db.close().await.context("close after the GC")?;
    // And after recovery.
    let store: Arc<dyn ObjectStore> = gated.clone();
    let db = Db::open_with_store(store, Path::from("db"), Settings::small_for_tests()).await;
    let db = db.context("reopen")?;
    assert_eq!(
        db.get("k042").await.context("get k042")?.as_deref(),
        Some(&b"v"[..])
    );
    db.close().await.context("close")?;
    Ok(())
}
