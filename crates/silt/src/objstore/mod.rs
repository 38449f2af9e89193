//! All object-store access goes through [`Storage`]: the store, the database root and the
//! object layout (`manifest/`, `wal/`, `sst/`).
//!
//! # Store wrappers
//!
//! The store the engine is given is wrapped, one concern per wrapper, in this order:
//!
//! ```text
//! Storage → InstrumentedStore → FaultStore → LatencyStore → real store
//! ```
//!
//! [`InstrumentedStore`] is on top so it records what the engine experiences: its latency
//! histograms include the delay a [`LatencyStore`] injects, and its request and error
//! counts include the failures a [`FaultStore`] injects (an injected failure is a request
//! the engine made and saw fail, and retries). The [`FaultStore`] is above the
//! [`LatencyStore`] so an injected error fails when the request is issued, without
//! reaching or waiting for the store below, while a lost PUT (applied by the store, its
//! response then replaced by an error) pays the store's latency. [`wrap`] builds this
//! stack (without the latency layer when it is `None` or zero, without the fault layer
//! when it is `None` or empty).
//!
//! Each wrapper is a [`Layered`] store over the next one: [`Layered`] implements
//! `ObjectStore` once, forwarding every method (the provided `get_ranges`,
//! `list_with_offset` and `rename_opts` too) to the inner store through the hooks of a
//! [`Layer`] ([`layer`] describes them), and the wrapper is just its layer
//! ([`instrumented::Instrumentation`], [`faults::Faults`], [`latency::Delay`]).

pub mod faults;
pub mod instrumented;
pub mod latency;
pub mod layer;
mod retries;
mod url;

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

pub use self::faults::{FaultCounters, FaultSnapshot, FaultSpec, FaultStore, ParseFaultError};
pub use self::instrumented::{
    wrap, InstrumentedStore, LatencySummary, RequestCost, RequestKind, RequestPrices, StoreMetrics,
    StoreMetricsSnapshot,
};
pub use self::latency::{LatencySpec, LatencyStore, ParseLatencyError};
pub use self::layer::{Layer, Layered, Reply, ReplyView, Request};
use self::retries::{Cause, RetryOp};
pub use self::retries::{RetryCounters, RetrySnapshot};
pub use self::url::store_from_url;
use crate::clock::Clock;
use crate::config::RetrySettings;
use crate::error::{Error, Result};
use crate::retry::Backoff;

/// Objects larger than this are uploaded with multipart.
pub(crate) const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// Part size of multipart uploads (S3's minimum is 5 MiB).
pub(crate) const MULTIPART_PART: usize = 8 * 1024 * 1024;

/// Create-only PUTs refused while nothing is at the path (a lost race, see
/// [`Storage::put_create_resolved`]) are tried this many times in all.
const CREATE_ATTEMPTS: u32 = 3;

/// Whose object a create-only PUT ([`Storage::put_create_resolved`]) left at the path.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Created {
    /// Our bytes: this PUT created the object, or an earlier attempt of ours whose response
    /// was lost did.
    Ours,
    /// Another writer's object, with its bytes; ours was not stored.
    Theirs(Bytes),
}

/// An object found by a listing.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub id: u64,
    pub size: u64,
}

/// The object store plus the database root, with the object naming in one place.
///
/// Every request the engine makes goes through here, and every one is retried on a
/// transient error (kind `Unavailable`: transport, 5xx, throttling, a conflict that
/// outlived the create resolution) with jittered exponential backoff until
/// `store.retry.deadline`, then fails with the last error. Retries are counted by request
/// class and cause ([`RetryCounters`]).
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    root: Path,
    retry: RetrySettings,
    clock: Arc<dyn Clock>,
    retries: Arc<RetryCounters>,
}

impl Storage {
    /// Wrap `store`, with every object of the database under `root`, retrying by the
    /// default `store.retry` on tokio's clock.
    pub fn new(store: Arc<dyn ObjectStore>, root: Path) -> Self {
        Storage {
            store,
            root,
            retry: RetrySettings::default(),
            clock: Arc::new(crate::clock::TokioClock),
            retries: Arc::default(),
        }
    }

    /// The same, retrying by `retry` on `clock`.
    #[must_use]
    pub(crate) fn with_retry(mut self, retry: RetrySettings, clock: Arc<dyn Clock>) -> Self {
        self.retry = retry;
        self.clock = clock;
        self
    }

    /// Retried requests so far.
    pub fn retries(&self) -> &Arc<RetryCounters> {
        &self.retries
    }

    /// Run `attempt` until it succeeds, fails for good, or transient failures have lasted
    /// `store.retry.deadline`.
    async fn retrying<T, F, Fut>(&self, op: RetryOp, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let started = self.clock.now();
        let mut backoff = Backoff::new(&self.retry);
        loop {
            let e = match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let Error::Store {
                source,
                op: what,
                path,
            } = &e
            else {
                return Err(e);
            };
            if !e.is_transient() {
                return Err(e);
            }
            let waited = self.clock.now().saturating_duration_since(started);
            if waited >= self.retry.deadline {
                self.retries.gave_up();
                return Err(e);
            }
            let cause = Cause::of(source);
            self.retries.record(op, cause);
            let pause = backoff.next_pause();
            tracing::debug!(op = what, %path, ?cause, ?pause, error = %source, "retrying a store request");
            self.clock.sleep_until(self.clock.now() + pause).await;
        }
    }

    /// The wrapped store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The database root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn child(&self, dir: &str, name: &str) -> Path {
        self.root.clone().join(dir).join(name)
    }

    pub(crate) fn manifest_path(&self, id: u64) -> Path {
        self.child("manifest", &format!("{id:020}.manifest"))
    }

    pub(crate) fn wal_path(&self, id: u64) -> Path {
        self.child("wal", &format!("{id:020}.wal"))
    }

    pub(crate) fn sst_path(&self, id: &str) -> Path {
        self.child("sst", &format!("{id}.sst"))
    }

    /// `checkpoints/<name>.json` (the name is validated by the caller).
    pub(crate) fn checkpoint_path(&self, name: &str) -> Path {
        self.child("checkpoints", &format!("{name}.json"))
    }

    /// Plain PUT, overwriting whatever is at `path` (a checkpoint's renewal: the only
    /// object the engine overwrites).
    pub(crate) async fn put_overwrite(&self, path: &Path, data: Bytes) -> Result<()> {
        self.retrying(RetryOp::Put, || async {
            self.store
                .put_opts(path, PutPayload::from(data.clone()), PutOptions::default())
                .await
                .map(|_| ())
                .map_err(|e| Error::store("put", path, e))
        })
        .await
    }

    /// PUT with `PutMode::Create` (never overwrites), with an uncertain outcome resolved.
    ///
    /// A refusal (`AlreadyExists` or `Precondition`) does not prove that someone else wrote
    /// the object: `object_store` retries a PUT whose response was lost (timeout, 5xx) and
    /// the retry meets our own first attempt (412); S3 answers two racing conditional PUTs
    /// with 409 `ConditionalRequestConflict`, which `object_store` also maps to
    /// `AlreadyExists`, although the other PUT may not land. So the object is read back:
    /// our bytes → [`Created::Ours`], other bytes → [`Created::Theirs`], nothing there →
    /// the create is tried again, [`CREATE_ATTEMPTS`] times in all.
    ///
    /// This relies on no two writers creating byte-identical objects under one name: WAL
    /// segments carry the writer's epoch, manifests its epoch and random `writer_nonce`,
    /// SSTs have fresh ULID names.
    pub(crate) async fn put_create_resolved(&self, path: &Path, data: Bytes) -> Result<Created> {
        // Retrying the whole resolution is safe: an attempt that landed reads back as ours.
        self.retrying(RetryOp::Put, || {
            self.put_create_resolved_once(path, data.clone())
        })
        .await
    }

    async fn put_create_resolved_once(&self, path: &Path, data: Bytes) -> Result<Created> {
        let mut attempt = 1;
        loop {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            let refused = match self
                .store
                .put_opts(path, PutPayload::from(data.clone()), opts)
                .await
            {
                Ok(_) => return Ok(Created::Ours),
                Err(
                    e @ (object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. }),
                ) => e,
                Err(e) => return Err(Error::store("put", path, e)),
            };
            match self.get_opt_once(path).await? {
                Some(existing) if existing == data => return Ok(Created::Ours),
                Some(existing) => return Ok(Created::Theirs(existing)),
                None if attempt < CREATE_ATTEMPTS => {
                    attempt += 1;
                    tracing::warn!(
                        %path,
                        attempt,
                        "create-only PUT refused but nothing is there; retrying"
                    );
                }
                None => return Err(Error::store("put", path, refused)),
            }
        }
    }

    /// GET a whole object; `Ok(None)` when it does not exist.
    pub(crate) async fn get_opt(&self, path: &Path) -> Result<Option<Bytes>> {
        self.retrying(RetryOp::Get, || self.get_opt_once(path))
            .await
    }

    async fn get_opt_once(&self, path: &Path) -> Result<Option<Bytes>> {
        match self.store.get(path).await {
            Ok(r) => Ok(Some(
                r.bytes().await.map_err(|e| Error::store("get", path, e))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store("get", path, e)),
        }
    }

    /// GET a whole object that must exist.
    pub(crate) async fn get(&self, path: &Path) -> Result<Bytes> {
        self.retrying(RetryOp::Get, || async {
            let r = self
                .store
                .get(path)
                .await
                .map_err(|e| Error::store("get", path, e))?;
            r.bytes().await.map_err(|e| Error::store("get", path, e))
        })
        .await
    }

    /// Ranged GET.
    pub(crate) async fn get_range(
        &self,
        path: &Path,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes> {
        self.retrying(RetryOp::GetRange, || async {
            self.store
                .get_range(path, range.clone())
                .await
                .map_err(|e| Error::store("get_range", path, e))
        })
        .await
    }

    /// DELETE (a missing object is not an error).
    pub(crate) async fn delete(&self, path: &Path) -> Result<()> {
        self.retrying(RetryOp::Delete, || async {
            match self.store.delete(path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(Error::store("delete", path, e)),
            }
        })
        .await
    }

    /// LIST everything under `prefix`.
    async fn list_all(&self, prefix: &Path) -> Result<Vec<object_store::ObjectMeta>> {
        self.retrying(RetryOp::List, || async {
            self.store
                .list(Some(prefix))
                .try_collect()
                .await
                .map_err(|e| Error::store("list", prefix, e))
        })
        .await
    }

    /// List the numbered objects of `dir` (`manifest` or `wal`) ending in `.{ext}`, by id.
    /// Names that do not parse are ignored (they are not ours).
    pub(crate) async fn list_numbered(&self, dir: &str, ext: &str) -> Result<Vec<Listed>> {
        let prefix = self.root.clone().join(dir);
        let metas = self.list_all(&prefix).await?;
        let suffix = format!(".{ext}");
        let mut out: Vec<Listed> = metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?;
                let id = name.strip_suffix(&suffix)?.parse::<u64>().ok()?;
                Some(Listed { id, size: m.size })
            })
            .collect();
        out.sort_by_key(|l| l.id);
        Ok(out)
    }

    /// The numbered objects of `dir` ending in `.{ext}` whose id is above `after`, by id:
    /// one LIST starting past `after`'s name (`list_with_offset`; names are zero-padded,
    /// so name order is id order). A follower's cheap look at what is new.
    pub(crate) async fn list_numbered_after(
        &self,
        dir: &str,
        ext: &str,
        after: u64,
    ) -> Result<Vec<Listed>> {
        let prefix = self.root.clone().join(dir);
        let offset = self.child(dir, &format!("{after:020}.{ext}"));
        let metas: Vec<object_store::ObjectMeta> = self
            .retrying(RetryOp::List, || async {
                self.store
                    .list_with_offset(Some(&prefix), &offset)
                    .try_collect()
                    .await
                    .map_err(|e| Error::store("list", &prefix, e))
            })
            .await?;
        let suffix = format!(".{ext}");
        let mut out: Vec<Listed> = metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?;
                let id = name.strip_suffix(&suffix)?.parse::<u64>().ok()?;
                (id > after).then_some(Listed { id, size: m.size })
            })
            .collect();
        out.sort_by_key(|l| l.id);
        Ok(out)
    }

    /// Every object under `dir` with its metadata (size, last modified).
    pub(crate) async fn list_meta(&self, dir: &str) -> Result<Vec<object_store::ObjectMeta>> {
        let prefix = self.root.clone().join(dir);
        self.list_all(&prefix).await
    }

    /// PUT a new immutable object under a fresh unique name (an SST): create-only, resolved
    /// as by [`Storage::put_create_resolved`].
    ///
    /// Objects above [`MULTIPART_THRESHOLD`] go up as a multipart upload of
    /// [`MULTIPART_PART`]-sized parts, which `object_store` cannot make create-only. That is
    /// safe because the name is a fresh ULID no other writer uses: there is nothing under it
    /// to overwrite but our own bytes, so a completed upload reports [`Created::Ours`].
    pub(crate) async fn put_new(&self, path: &Path, data: Bytes) -> Result<Created> {
        if data.len() <= MULTIPART_THRESHOLD {
            return self.put_create_resolved(path, data).await;
        }
        // A failed upload starts over (under the same fresh name).
        self.retrying(RetryOp::Multipart, || self.put_multipart_once(path, &data))
            .await
    }

    async fn put_multipart_once(&self, path: &Path, data: &Bytes) -> Result<Created> {
        let mut upload = self
            .store
            .put_multipart(path)
            .await
            .map_err(|e| Error::store("put_multipart", path, e))?;
        let mut offset = 0;
        while offset < data.len() {
            let end = (offset + MULTIPART_PART).min(data.len());
            if let Err(e) = upload
                .put_part(PutPayload::from(data.slice(offset..end)))
                .await
            {
                let _ = upload.abort().await;
                return Err(Error::store("put_part", path, e));
            }
            offset = end;
        }
        upload
            .complete()
            .await
            .map_err(|e| Error::store("complete_multipart", path, e))?;
        Ok(Created::Ours)
    }

    /// Total bytes of every object under `dir`.
    pub(crate) async fn dir_bytes(&self, dir: &str) -> Result<(usize, u64)> {
        let prefix = self.root.clone().join(dir);
        let metas = self.list_all(&prefix).await?;
        Ok((metas.len(), metas.iter().map(|m| m.size).sum()))
    }
}
