//! GC racing a memtable flush in the same process: an SST whose upload has landed in the
//! store but whose PUT response has not yet reached the flush (so it is neither registered
//! nor in a manifest) must not be deleted by a GC pass. `Db::gc(Some(Duration::ZERO))` is
//! documented as fine when no other process reads the store.
//!
//! The interleaving is forced with a store wrapper that stores the SST at once but holds
//! the PUT response until released (as a slow S3 response would).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{BoxFut, Gate, Hook, HookStore};
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::{ObjectStore, PutOptions, PutPayload, PutResult, Result as OsResult};
use silt::{Db, Settings};

/// Once the gate is armed, the next PUT of an SST stores the object and then waits at the
/// gate before returning.
#[derive(Debug)]
struct HoldSstResponse(Arc<Gate>);

impl Hook for HoldSstResponse {
    fn put_opts<'a>(
        &'a self,
        inner: &'a Arc<dyn ObjectStore>,
        location: &'a Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFut<'a, OsResult<PutResult>> {
        let is_sst = location.as_ref().contains("/sst/");
        if !(is_sst && self.0.trip()) {
            return inner.put_opts(location, payload, opts);
        }
        // The object is stored at once; only the response is held back.
        Box::pin(async move {
            let r = inner.put_opts(location, payload, opts).await;
            self.0.hold().await;
            r
        })
    }
}

fn unix_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn gc_does_not_delete_the_sst_of_a_concurrent_flush() {
    let gate = Gate::new(false);
    let gated = HookStore::new(
        Arc::new(InMemory::new()),
        HoldSstResponse(Arc::clone(&gate)),
    );
    let store: Arc<dyn ObjectStore> = gated.clone();
    let mut s = Settings::small_for_tests();
    s.gc.enabled = false;
    s.compaction.enabled = false;
    let db = Arc::new(
        Db::open_with_store(store, Path::from("db"), s)
            .await
            .unwrap(),
    );
    let mut batch = silt::WriteBatch::new();
    for i in 0..100 {
        batch.put(format!("k{i:03}"), "v");
    }
    db.write(batch).await.unwrap();

    // The flush's SST is in the store, but its PUT has not returned yet.
    gate.armed.store(true, Ordering::SeqCst);
    let flush = tokio::spawn({
        let db = Arc::clone(&db);
        async move { db.flush_memtables().await }
    });
    gate.reached.notified().await;
    // Let the wall clock move past the SST's timestamp (zero grace then does not cover it).
    let stored = unix_millis();
    while unix_millis() <= stored {
        std::hint::spin_loop();
    }
    let report = db.gc(Some(Duration::ZERO)).await.unwrap();
    gate.release.add_permits(1);
    flush.await.unwrap().unwrap();

    for i in 0..100 {
        let got = db.get(format!("k{i:03}")).await;
        assert!(
            matches!(&got, Ok(Some(v)) if v.as_ref() == b"v"),
            "k{i:03} after GC ({report:?}): {got:?}"
        );
    }
    db.close().await.unwrap();
    // And after recovery.
    let store: Arc<dyn ObjectStore> = gated.clone();
    let db = Db::open_with_store(store, Path::from("db"), Settings::small_for_tests()).await;
    let db = db.unwrap();
    assert_eq!(db.get("k042").await.unwrap().as_deref(), Some(&b"v"[..]));
    db.close().await.unwrap();
}
