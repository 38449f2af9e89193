//! GC racing a memtable flush in the same process: an SST whose upload has landed in the
//! store but whose PUT response has not yet reached the flush (so it is neither registered
//! nor in a manifest) must not be deleted by a GC pass. `Db::gc(Some(Duration::ZERO))` is
//! documented as fine when no other process reads the store.
//!
//! The interleaving is forced with a store wrapper that stores the SST at once but holds
//! the PUT response until released (as a slow S3 response would).
#![allow(clippy::unwrap_used)]

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::stream::BoxStream;
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result as OsResult,
};
use silt::{Db, Settings};
use tokio::sync::{Notify, Semaphore};

/// Delegates to an `InMemory` store; once armed, the next PUT of an SST stores the object and
/// then waits for a release before returning.
#[derive(Debug)]
struct GatedStore {
    inner: Arc<dyn ObjectStore>,
    armed: AtomicBool,
    reached: Arc<Notify>,
    release: Arc<Semaphore>,
}

impl fmt::Display for GatedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GatedStore({})", self.inner)
    }
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

// `ObjectStore` is declared with `#[async_trait]`; these are its desugared signatures.
impl ObjectStore for GatedStore {
    fn put_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFut<'async_trait, OsResult<PutResult>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        let is_sst = location.as_ref().contains("/sst/");
        if !(is_sst && self.armed.swap(false, Ordering::SeqCst)) {
            return self.inner.put_opts(location, payload, opts);
        }
        // The object is stored at once; only the response is held back.
        let (reached, release) = (Arc::clone(&self.reached), Arc::clone(&self.release));
        Box::pin(async move {
            let r = self.inner.put_opts(location, payload, opts).await;
            reached.notify_one();
            release.acquire().await.unwrap().forget();
            r
        })
    }

    fn put_multipart_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 Path,
        opts: PutMultipartOptions,
    ) -> BoxFut<'async_trait, OsResult<Box<dyn MultipartUpload>>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.put_multipart_opts(location, opts)
    }

    fn get_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 Path,
        options: GetOptions,
    ) -> BoxFut<'async_trait, OsResult<GetResult>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.get_opts(location, options)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, OsResult<Path>>,
    ) -> BoxStream<'static, OsResult<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, OsResult<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_delimiter<'life0, 'life1, 'async_trait>(
        &'life0 self,
        prefix: Option<&'life1 Path>,
    ) -> BoxFut<'async_trait, OsResult<ListResult>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.list_with_delimiter(prefix)
    }

    fn copy_opts<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        from: &'life1 Path,
        to: &'life2 Path,
        options: CopyOptions,
    ) -> BoxFut<'async_trait, OsResult<()>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.copy_opts(from, to, options)
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
    let gated = Arc::new(GatedStore {
        inner: Arc::new(InMemory::new()),
        armed: AtomicBool::new(false),
        reached: Arc::new(Notify::new()),
        release: Arc::new(Semaphore::new(0)),
    });
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
    gated.armed.store(true, Ordering::SeqCst);
    let flush = tokio::spawn({
        let db = Arc::clone(&db);
        async move { db.flush_memtables().await }
    });
    gated.reached.notified().await;
    // Let the wall clock move past the SST's timestamp (zero grace then does not cover it).
    let stored = unix_millis();
    while unix_millis() <= stored {
        std::hint::spin_loop();
    }
    let report = db.gc(Some(Duration::ZERO)).await.unwrap();
    gated.release.add_permits(1);
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
