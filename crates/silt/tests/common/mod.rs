//! Helpers shared by the integration tests: [`HookStore`], an `ObjectStore` that delegates
//! every call to an inner store except where its [`Hook`] steps in, and [`Gate`], which
//! holds one request until the test releases it.

// Every test binary that declares `mod common;` compiles all of this but uses only part of
// it; what one binary leaves unused is not dead code.
#![allow(dead_code)]

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::stream::BoxStream;
use silt::object_store::path::Path;
use silt::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result as OsResult,
    UpdateVersion,
};
use silt::Bytes;
use tokio::sync::{Notify, Semaphore};

/// The boxed future of an `#[async_trait]` method.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a [`HookStore`] does in place of plain delegation. Each method gets the inner store
/// and by default just calls it.
pub trait Hook: fmt::Debug + Send + Sync + 'static {
    /// `ObjectStore::put_opts`.
    fn put_opts<'a>(
        &'a self,
        inner: &'a Arc<dyn ObjectStore>,
        location: &'a Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFut<'a, OsResult<PutResult>> {
        inner.put_opts(location, payload, opts)
    }

    /// `ObjectStore::get_opts` (also behind the provided `get`, `get_range` and `head`).
    fn get_opts<'a>(
        &'a self,
        inner: &'a Arc<dyn ObjectStore>,
        location: &'a Path,
        options: GetOptions,
    ) -> BoxFut<'a, OsResult<GetResult>> {
        inner.get_opts(location, options)
    }

    /// `ObjectStore::list` (also behind the default `list_with_offset`).
    fn list(
        &self,
        inner: &Arc<dyn ObjectStore>,
        prefix: Option<&Path>,
    ) -> BoxStream<'static, OsResult<ObjectMeta>> {
        inner.list(prefix)
    }
}

/// Delegates every `ObjectStore` method to `inner`, except `put_opts`, `get_opts` and
/// `list`, which go through `hook`. The provided methods `get`, `get_range`, `head`,
/// `list_with_offset` and `rename_opts` keep their defaults, so they too pass through the
/// hooked `get_opts` and `list` and the delegating `copy_opts` (`get_ranges` is delegated
/// to `inner` directly).
#[derive(Debug)]
pub struct HookStore<H> {
    /// The store everything is delegated to.
    pub inner: Arc<dyn ObjectStore>,
    /// The hook.
    pub hook: H,
}

impl<H: Hook> HookStore<H> {
    pub fn new(inner: Arc<dyn ObjectStore>, hook: H) -> Arc<Self> {
        Arc::new(HookStore { inner, hook })
    }
}

impl<H> fmt::Display for HookStore<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HookStore({})", self.inner)
    }
}

// `ObjectStore` is declared with `#[async_trait]`; these are its desugared signatures, each
// returning the inner store's (or the hook's) boxed future.
impl<H: Hook> ObjectStore for HookStore<H> {
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
        self.hook.put_opts(&self.inner, location, payload, opts)
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
        self.hook.get_opts(&self.inner, location, options)
    }

    fn get_ranges<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        location: &'life1 Path,
        ranges: &'life2 [Range<u64>],
    ) -> BoxFut<'async_trait, OsResult<Vec<Bytes>>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.get_ranges(location, ranges)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, OsResult<Path>>,
    ) -> BoxStream<'static, OsResult<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, OsResult<ObjectMeta>> {
        self.hook.list(&self.inner, prefix)
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

/// Where a [`HoldPut`] holds its PUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldAt {
    /// Before it reaches the store (the object is not there while held).
    Request,
    /// After the store applied it, before its response returns (a slow response).
    Response,
}

/// A hook holding the next PUT that `matches` at `gate` (while the gate is armed), at
/// the request or the response; every other request passes straight through.
#[derive(Debug)]
pub struct HoldPut {
    /// The gate the held PUT waits at.
    pub gate: Arc<Gate>,
    /// Request or response.
    pub at: HoldAt,
    /// Which PUTs qualify (e.g. `|p, _| in_dir(p, "wal")`).
    pub matches: fn(&Path, &PutOptions) -> bool,
}

impl HoldPut {
    /// Holds the next PUT for which `matches` is true, at `at`.
    pub fn new(gate: &Arc<Gate>, at: HoldAt, matches: fn(&Path, &PutOptions) -> bool) -> Self {
        HoldPut {
            gate: Arc::clone(gate),
            at,
            matches,
        }
    }
}

impl Hook for HoldPut {
    fn put_opts<'a>(
        &'a self,
        inner: &'a Arc<dyn ObjectStore>,
        location: &'a Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFut<'a, OsResult<PutResult>> {
        if !((self.matches)(location, &opts) && self.gate.trip()) {
            return inner.put_opts(location, payload, opts);
        }
        Box::pin(async move {
            if self.at == HoldAt::Request {
                self.gate.hold().await;
            }
            let r = inner.put_opts(location, payload, opts).await;
            if self.at == HoldAt::Response {
                self.gate.hold().await;
            }
            r
        })
    }
}

/// `path` is in the database's `dir` directory (`wal`, `sst`, `manifest`).
pub fn in_dir(path: &Path, dir: &str) -> bool {
    path.as_ref().contains(&format!("/{dir}/"))
}

/// The local S3 server's base URL (`SILT_TEST_S3_URL`), or `None` to skip, unless
/// `SILT_REQUIRE_S3=1` makes its absence a failure.
pub fn s3_base_url(test: &str) -> Option<String> {
    emulator_url("SILT_TEST_S3_URL", "SILT_REQUIRE_S3", test)
}

/// A local emulator's base URL from `url_var` (`scripts/<x>-server env`), without a
/// trailing slash, or `None` to skip `test`, unless `require_var=1` makes its absence a
/// failure (`scripts/test` sets it).
pub fn emulator_url(url_var: &str, require_var: &str, test: &str) -> Option<String> {
    match std::env::var(url_var) {
        Ok(u) if !u.trim().is_empty() => Some(u.trim().trim_end_matches('/').to_owned()),
        _ => {
            assert!(
                std::env::var(require_var).as_deref() != Ok("1"),
                "{require_var}=1 but {url_var} is unset: run scripts/test"
            );
            eprintln!("skipping {test}: {url_var} is unset (run scripts/test)");
            None
        }
    }
}

/// Holds one request of a hook until the test releases it: a hook that finds the gate armed
/// (and disarms it, [`Gate::trip`]) calls [`Gate::hold`], which notifies `reached` and waits
/// for a permit of `release`.
#[derive(Debug)]
pub struct Gate {
    /// Set: the next matching request is held.
    pub armed: AtomicBool,
    /// Notified when the held request reaches the gate.
    pub reached: Notify,
    /// One permit lets the held request go on.
    pub release: Semaphore,
}

impl Gate {
    pub fn new(armed: bool) -> Arc<Self> {
        Arc::new(Gate {
            armed: AtomicBool::new(armed),
            reached: Notify::new(),
            release: Semaphore::new(0),
        })
    }

    /// Disarms the gate; true if it was armed, i.e. the caller's request is to be held.
    pub fn trip(&self) -> bool {
        self.armed.swap(false, Ordering::SeqCst)
    }

    /// Tells the test the request has arrived, then waits for its release.
    pub async fn hold(&self) {
        self.reached.notify_one();
        self.release.acquire().await.unwrap().forget();
    }
}

/// splitmix64: a tiny seeded generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

/// A per-process-unique, roughly time-ordered id: nanos since the epoch,
/// process id and a counter.
pub fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:x}-{:x}-{n}", std::process::id())
}

/// Deterministic pseudo-random bytes (xorshift), so mismatches show up at
/// every offset rather than hiding in repeated patterns.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Create-only PUT options.
pub fn create() -> PutOptions {
    PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    }
}

/// Conditional-update PUT options against `version`.
pub fn update(version: UpdateVersion) -> PutOptions {
    PutOptions {
        mode: PutMode::Update(version),
        ..Default::default()
    }
}
