//! All object-store access goes through [`Storage`]: the store, the database root and the
//! object layout (`manifest/`, `wal/`, `sst/`).

pub mod instrumented;
pub mod latency;
mod url;

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

pub use self::instrumented::{
    wrap, InstrumentedStore, LatencySummary, RequestKind, StoreMetrics, StoreMetricsSnapshot,
};
pub use self::latency::{LatencySpec, LatencyStore, ParseLatencyError};
pub use self::url::store_from_url;
use crate::error::{Error, Result};

/// Objects larger than this are uploaded with multipart.
pub(crate) const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// Part size of multipart uploads (S3's minimum is 5 MiB).
pub(crate) const MULTIPART_PART: usize = 8 * 1024 * 1024;

/// Outcome of a create-only PUT.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CreateOutcome {
    /// The object did not exist and now holds our bytes.
    Created,
    /// An object already exists at that path.
    AlreadyExists,
}

/// An object found by a listing.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub id: u64,
    pub size: u64,
}

/// The object store plus the database root, with the object naming in one place.
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    root: Path,
}

impl Storage {
    /// Wrap `store`, with every object of the database under `root`.
    pub fn new(store: Arc<dyn ObjectStore>, root: Path) -> Self {
        Storage { store, root }
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

    /// PUT with `PutMode::Create`: never overwrites.
    pub(crate) async fn put_create(&self, path: &Path, data: Bytes) -> Result<CreateOutcome> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(path, PutPayload::from(data), opts)
            .await
        {
            Ok(_) => Ok(CreateOutcome::Created),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(CreateOutcome::AlreadyExists),
            Err(e) => Err(Error::store("put", path, e)),
        }
    }

    /// GET a whole object; `Ok(None)` when it does not exist.
    pub(crate) async fn get_opt(&self, path: &Path) -> Result<Option<Bytes>> {
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
        let r = self
            .store
            .get(path)
            .await
            .map_err(|e| Error::store("get", path, e))?;
        r.bytes().await.map_err(|e| Error::store("get", path, e))
    }

    /// Ranged GET.
    pub(crate) async fn get_range(
        &self,
        path: &Path,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes> {
        self.store
            .get_range(path, range)
            .await
            .map_err(|e| Error::store("get_range", path, e))
    }

    /// DELETE (a missing object is not an error).
    pub(crate) async fn delete(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store("delete", path, e)),
        }
    }

    /// List the numbered objects of `dir` (`manifest` or `wal`) ending in `.{ext}`, by id.
    /// Names that do not parse are ignored (they are not ours).
    pub(crate) async fn list_numbered(&self, dir: &str, ext: &str) -> Result<Vec<Listed>> {
        let prefix = self.root.clone().join(dir);
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| Error::store("list", &prefix, e))?;
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

    /// Every object under `dir` with its metadata (size, last modified).
    pub(crate) async fn list_meta(&self, dir: &str) -> Result<Vec<object_store::ObjectMeta>> {
        let prefix = self.root.clone().join(dir);
        self.store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| Error::store("list", &prefix, e))
    }

    /// PUT a new immutable object (unique name); objects above [`MULTIPART_THRESHOLD`] go
    /// up as a multipart upload of [`MULTIPART_PART`]-sized parts.
    pub(crate) async fn put_new(&self, path: &Path, data: Bytes) -> Result<()> {
        if data.len() <= MULTIPART_THRESHOLD {
            return match self.put_create(path, data).await? {
                CreateOutcome::Created => Ok(()),
                CreateOutcome::AlreadyExists => {
                    Err(Error::Internal(format!("object {path} already exists")))
                }
            };
        }
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
        Ok(())
    }

    /// Total bytes of every object under `dir`.
    pub(crate) async fn dir_bytes(&self, dir: &str) -> Result<(usize, u64)> {
        let prefix = self.root.clone().join(dir);
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| Error::store("list", &prefix, e))?;
        Ok((metas.len(), metas.iter().map(|m| m.size).sum()))
    }
}
