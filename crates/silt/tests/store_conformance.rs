//! The object-store semantics Silt relies on, checked against every store URL scheme Silt
//! accepts: `s3://` (`SeaweedFS`), `az://` (Azurite), `gs://` (fake-gcs-server behind
//! `scripts/gcs-xml-front`), `file://` and `memory://`. Each store is built by `silt::objstore::store_from_url`, exactly as
//! `Db::open` builds it.
//!
//! What is checked: create-only PUT races (16 racers, exactly one winner, the rest
//! `AlreadyExists`), conditional update (`PutMode::Update`, a stale version fails with
//! `Precondition`), ranged GETs, LIST by prefix and `list_with_offset`, multipart upload,
//! DELETE of an absent object, and the error kinds Silt maps (not found, precondition,
//! wrong credentials).
//!
//! The emulator schemes read `SILT_TEST_S3_URL` / `SILT_TEST_AZURE_URL` /
//! `SILT_TEST_GCS_URL` and the provider's standard variables (`scripts/s3-server env`,
//! `scripts/azure-server env`, `scripts/gcs-server env`). A scheme whose URL is unset is
//! skipped, unless its `SILT_REQUIRE_S3` / `SILT_REQUIRE_AZURE` / `SILT_REQUIRE_GCS` is `1`.
//! `scripts/test` starts all three servers. See docs/emulators.md for where an emulator
//! differs from the real service.

mod common;

use common::{create, pattern, unique_id, update};

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, UpdateVersion};

const MIB: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    S3,
    Azure,
    Gcs,
    File,
    Memory,
}

impl Scheme {
    /// The env variables naming the emulator's URL and requiring it, for remote schemes.
    fn vars(self) -> Option<(&'static str, &'static str)> {
        match self {
            Scheme::S3 => Some(("SILT_TEST_S3_URL", "SILT_REQUIRE_S3")),
            Scheme::Azure => Some(("SILT_TEST_AZURE_URL", "SILT_REQUIRE_AZURE")),
            Scheme::Gcs => Some(("SILT_TEST_GCS_URL", "SILT_REQUIRE_GCS")),
            Scheme::File | Scheme::Memory => None,
        }
    }
}

/// A store, a unique prefix inside it for this test, and what keeps a local one alive.
struct Ctx {
    scheme: Scheme,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    _dir: Option<tempfile::TempDir>,
}

impl Ctx {
    fn path(&self, rel: &str) -> Path {
        Path::from(format!("{}/{rel}", self.prefix))
    }
}

/// The base URL of a scheme's store, or `None` (after a skip line) when its emulator is not
/// configured and not required.
fn base_url(scheme: Scheme, test: &str) -> Result<Option<(String, Option<tempfile::TempDir>)>> {
    match scheme {
        Scheme::File => {
            let dir = tempfile::tempdir().context("tempdir")?;
            let url = format!("file://{}", dir.path().join("store").display());
            Ok(Some((url, Some(dir))))
        }
        Scheme::Memory => Ok(Some(("memory://".to_string(), None))),
        _ => {
            let Some((url_var, require_var)) = scheme.vars() else {
                bail!("no variables for {scheme:?}");
            };
            Ok(common::emulator_url(url_var, require_var, test).map(|url| (url, None)))
        }
    }
}

fn ctx(scheme: Scheme, test: &str) -> Result<Option<Ctx>> {
    let Some((url, dir)) = base_url(scheme, test)? else {
        return Ok(None);
    };
    let (store, root) = silt::objstore::store_from_url(&url)
        .with_context(|| format!("building the store for {url}"))?;
    let prefix = root
        .clone()
        .join("conformance")
        .join(unique_id().as_str())
        .join(test);
    Ok(Some(Ctx {
        scheme,
        store,
        prefix,
        _dir: dir,
    }))
}

async fn read_all(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<Vec<u8>> {
    Ok(store
        .get(path)
        .await
        .with_context(|| format!("GET {path}"))?
        .bytes()
        .await
        .with_context(|| format!("body of {path}"))?
        .to_vec())
}

async fn list_set(store: &Arc<dyn ObjectStore>, prefix: &Path) -> Result<BTreeSet<String>> {
    store
        .list(Some(prefix))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .with_context(|| format!("LIST {prefix}"))
}

/// 16 create-only PUTs race on one path, three rounds: exactly one wins, every other one
/// fails with `AlreadyExists`, and the stored object is the winner's.
async fn create_race(scheme: Scheme) -> Result<()> {
    const RACERS: usize = 16;
    let Some(cx) = ctx(scheme, "create_race")? else {
        return Ok(());
    };
    for round in 0..3 {
        let path = cx.path(&format!("manifest/{round:020}.manifest"));
        let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
        let mut tasks = Vec::new();
        for racer in 0..RACERS {
            let (store, path, barrier) = (cx.store.clone(), path.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let body = PutPayload::from(format!("racer-{racer}").into_bytes());
                (racer, store.put_opts(&path, body, create()).await)
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            let (racer, res) = t.await.context("racer panicked")?;
            match res {
                Ok(_) => winners.push(racer),
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => bail!("{scheme:?} round {round}: racer {racer}: unexpected {e:?}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "{scheme:?} round {round}: winners {winners:?}"
        );
        assert_eq!(
            read_all(&cx.store, &path).await?,
            format!("racer-{}", winners[0]).into_bytes(),
            "{scheme:?}: the stored object is the winner's"
        );
    }
    Ok(())
}

/// `PutMode::Update` with the current version succeeds, with a stale one fails with
/// `Precondition` and leaves the object alone; 16 CAS racers from one version: one wins.
async fn conditional_update(scheme: Scheme) -> Result<()> {
    const RACERS: usize = 16;
    let Some(cx) = ctx(scheme, "conditional_update")? else {
        return Ok(());
    };
    let path = cx.path("checkpoints/a.json");
    if scheme == Scheme::File {
        // object_store's LocalFileSystem does not implement `PutMode::Update`. Silt never
        // issues one (it fences with create-only PUTs), so this is only recorded here.
        let put = cx
            .store
            .put_opts(&path, PutPayload::from_static(b"v1"), create())
            .await
            .context("create v1")?;
        match cx
            .store
            .put_opts(&path, PutPayload::from_static(b"v2"), update(put.into()))
            .await
        {
            Err(object_store::Error::NotImplemented { .. }) => return Ok(()),
            other => bail!("file://: PutMode::Update is now {other:?}: extend this test"),
        }
    }
    let v1: UpdateVersion = cx
        .store
        .put_opts(&path, PutPayload::from_static(b"v1"), create())
        .await
        .context("create v1")?
        .into();
    let v2: UpdateVersion = cx
        .store
        .put_opts(&path, PutPayload::from_static(b"v2"), update(v1.clone()))
        .await
        .context("update with the current version")?
        .into();
    match cx
        .store
        .put_opts(&path, PutPayload::from_static(b"stale"), update(v1))
        .await
    {
        Err(object_store::Error::Precondition { .. }) => {}
        other => bail!("{scheme:?}: a stale update must fail with Precondition, got {other:?}"),
    }
    assert_eq!(read_all(&cx.store, &path).await?, b"v2");

    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for racer in 0..RACERS {
        let (store, path, barrier, v) =
            (cx.store.clone(), path.clone(), barrier.clone(), v2.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let body = PutPayload::from(format!("cas-{racer}").into_bytes());
            (racer, store.put_opts(&path, body, update(v)).await)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (racer, res) = t.await.context("racer panicked")?;
        match res {
            Ok(_) => winners.push(racer),
            Err(object_store::Error::Precondition { .. }) => {}
            Err(e) => bail!("{scheme:?}: CAS racer {racer}: unexpected {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{scheme:?}: CAS winners {winners:?}");
    assert_eq!(
        read_all(&cx.store, &path).await?,
        format!("cas-{}", winners[0]).into_bytes()
    );
    Ok(())
}

/// Ranged GETs return exactly the bytes asked for, including `get_ranges`.
async fn ranged_get(scheme: Scheme) -> Result<()> {
    let Some(cx) = ctx(scheme, "ranged_get")? else {
        return Ok(());
    };
    let path = cx.path("sst/x.sst");
    let data = pattern(MIB + 12_345, 7);
    cx.store
        .put(&path, PutPayload::from(data.clone()))
        .await
        .context("put")?;
    let len = data.len() as u64;
    assert_eq!(cx.store.head(&path).await.context("head")?.size, len);
    for range in [
        0..1,
        0..4096,
        4095..4097,
        123_456..654_321,
        len - 1..len,
        0..len,
    ] {
        let got = cx
            .store
            .get_range(&path, range.clone())
            .await
            .with_context(|| format!("{scheme:?}: GET range {range:?}"))?;
        let want = &data[usize::try_from(range.start)?..usize::try_from(range.end)?];
        assert!(
            got.as_ref() == want,
            "{scheme:?}: bytes of range {range:?} differ"
        );
    }
    let many = cx
        .store
        .get_ranges(&path, &[10..20, 500_000..500_100, len - 3..len])
        .await
        .context("get_ranges")?;
    assert_eq!(many[0].as_ref(), &data[10..20]);
    assert_eq!(many[1].as_ref(), &data[500_000..500_100]);
    assert_eq!(many[2].as_ref(), &data[data.len() - 3..]);
    Ok(())
}

/// LIST under a prefix returns exactly the objects under it (not string-prefix decoys);
/// `list_with_offset` returns those after the offset, as Silt's WAL and manifest scans use it.
async fn list_prefix_and_offset(scheme: Scheme) -> Result<()> {
    let Some(cx) = ctx(scheme, "list")? else {
        return Ok(());
    };
    let wal: Vec<String> = (1..=5).map(|i| format!("db/wal/{i:020}.wal")).collect();
    let others = ["db/manifest/00000000000000000001.manifest", "db/sst/a.sst"];
    let decoys = ["db2/wal/00000000000000000001.wal", "dbx", "db/walrus"];
    for key in wal.iter().map(String::as_str).chain(others).chain(decoys) {
        cx.store
            .put(&cx.path(key), PutPayload::from(key.as_bytes().to_vec()))
            .await
            .with_context(|| format!("put {key}"))?;
    }
    let want_wal: BTreeSet<String> = wal.iter().map(|k| cx.path(k).to_string()).collect();
    assert_eq!(
        list_set(&cx.store, &cx.path("db/wal")).await?,
        want_wal,
        "{scheme:?}"
    );
    let mut want_db = want_wal.clone();
    want_db.extend(others.iter().map(|k| cx.path(k).to_string()));
    want_db.insert(cx.path("db/walrus").to_string());
    assert_eq!(
        list_set(&cx.store, &cx.path("db")).await?,
        want_db,
        "{scheme:?}"
    );

    let after: BTreeSet<String> = cx
        .store
        .list_with_offset(Some(&cx.path("db/wal")), &cx.path(&wal[2]))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .context("list_with_offset")?;
    let want_after: BTreeSet<String> = wal[3..].iter().map(|k| cx.path(k).to_string()).collect();
    assert_eq!(after, want_after, "{scheme:?}: list_with_offset");

    let delimited = cx
        .store
        .list_with_delimiter(Some(&cx.path("db")))
        .await
        .context("list_with_delimiter")?;
    let dirs: BTreeSet<String> = delimited
        .common_prefixes
        .iter()
        .map(ToString::to_string)
        .collect();
    let want_dirs: BTreeSet<String> = ["db/manifest", "db/sst", "db/wal"]
        .iter()
        .map(|k| cx.path(k).to_string())
        .collect();
    assert_eq!(dirs, want_dirs, "{scheme:?}: common prefixes");

    // An empty prefix lists nothing (not an error).
    assert!(list_set(&cx.store, &cx.path("nothing-here"))
        .await?
        .is_empty());
    Ok(())
}

/// A multipart upload (Silt's path for SSTs over 16 MiB, 8 MiB parts) round-trips; an
/// aborted one leaves nothing.
async fn multipart(scheme: Scheme) -> Result<()> {
    let Some(cx) = ctx(scheme, "multipart")? else {
        return Ok(());
    };
    let path = cx.path("sst/big.sst");
    let part = 8 * MIB;
    let data = pattern(2 * part + 4321, 42);
    let mut upload = cx
        .store
        .put_multipart(&path)
        .await
        .context("start multipart")?;
    for chunk in data.chunks(part) {
        upload
            .put_part(PutPayload::from(chunk.to_vec()))
            .await
            .context("put_part")?;
    }
    upload.complete().await.context("complete multipart")?;
    assert_eq!(
        cx.store.head(&path).await.context("head")?.size,
        data.len() as u64
    );
    assert!(
        read_all(&cx.store, &path).await? == data,
        "{scheme:?}: multipart bytes differ"
    );
    let got = cx
        .store
        .get_range(&path, (part - 10) as u64..(part + 10) as u64)
        .await
        .context("range across a part boundary")?;
    assert_eq!(got.as_ref(), &data[part - 10..part + 10]);

    let aborted = cx.path("sst/aborted.sst");
    let mut upload = cx
        .store
        .put_multipart(&aborted)
        .await
        .context("start second")?;
    upload
        .put_part(PutPayload::from(pattern(part, 3)))
        .await
        .context("put_part")?;
    upload.abort().await.context("abort")?;
    match cx.store.head(&aborted).await {
        Err(object_store::Error::NotFound { .. }) => {}
        other => bail!("{scheme:?}: an aborted upload must not create the object: {other:?}"),
    }
    Ok(())
}

/// DELETE of an absent object succeeds (Silt's GC deletes idempotently); GET and HEAD of an
/// absent object fail with `NotFound`, which Silt reports as `ErrorKind::Corrupt` for an
/// object the database references.
async fn absent_objects(scheme: Scheme) -> Result<()> {
    let Some(cx) = ctx(scheme, "absent")? else {
        return Ok(());
    };
    let path = cx.path("sst/never-written.sst");
    // S3 (and SeaweedFS) and memory:// answer a DELETE of an absent object with success;
    // Azure (and Azurite), GCS and file:// with NotFound. Silt's `Storage::delete` treats
    // NotFound as done, so GC is idempotent on every store; anything else is an error.
    match cx.store.delete(&path).await {
        Ok(()) => assert!(
            matches!(scheme, Scheme::S3 | Scheme::Memory),
            "{scheme:?}: DELETE of an absent object succeeded: update the comment above"
        ),
        Err(object_store::Error::NotFound { .. }) => assert!(
            matches!(scheme, Scheme::Azure | Scheme::Gcs | Scheme::File),
            "{scheme:?}: DELETE of an absent object gave NotFound: update the comment above"
        ),
        Err(e) => bail!("{scheme:?}: DELETE of an absent object: {e:?}"),
    }
    match cx.store.get(&path).await {
        Err(object_store::Error::NotFound { .. }) => {}
        other => bail!(
            "{scheme:?}: GET of an absent object: {:?}",
            other.map(|_| ())
        ),
    }
    match cx.store.head(&path).await {
        Err(object_store::Error::NotFound { .. }) => {}
        other => bail!("{scheme:?}: HEAD of an absent object: {other:?}"),
    }
    match cx.store.get_range(&path, 0..10).await {
        Err(object_store::Error::NotFound { .. }) => {}
        other => bail!("{scheme:?}: ranged GET of an absent object: {other:?}"),
    }
    // Put, delete, delete again.
    cx.store
        .put(&path, PutPayload::from_static(b"x"))
        .await
        .context("put")?;
    cx.store.delete(&path).await.context("delete")?;
    match cx.store.head(&path).await {
        Err(object_store::Error::NotFound { .. }) => {}
        other => bail!("{scheme:?}: HEAD after DELETE: {other:?}"),
    }
    Ok(())
}

/// The same store with wrong credentials, where the emulator checks them.
fn wrong_credentials(cx: &Ctx) -> Result<Option<Arc<dyn ObjectStore>>> {
    let url_var = match cx.scheme {
        Scheme::S3 => "SILT_TEST_S3_URL",
        Scheme::Azure => "SILT_TEST_AZURE_URL",
        // fake-gcs-server accepts any (or no) credentials; file and memory have none.
        Scheme::Gcs | Scheme::File | Scheme::Memory => return Ok(None),
    };
    let url = std::env::var(url_var).context(url_var)?;
    let bucket = url
        .split_once("://")
        .map_or(url.as_str(), |(_, r)| r)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    Ok(Some(match cx.scheme {
        Scheme::S3 => Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_secret_access_key("not-the-secret")
                .build()?,
        ),
        _ => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_container_name(bucket)
                // A valid base64 key that is not the account's.
                .with_access_key("bm90LXRoZS1hY2NvdW50LWtleS1ub3QtdGhlLWFjY291bnQta2V5")
                .build()?,
        ),
    }))
}

/// Wrong credentials fail with `PermissionDenied` or `Unauthenticated`, and Silt refuses to
/// open a database with them as `ErrorKind::InvalidInput` (not retried as a transient
/// failure). A stale update is `Precondition`; Silt sees it as contention (`Unavailable`).
async fn error_kinds(scheme: Scheme) -> Result<()> {
    let Some(cx) = ctx(scheme, "errors")? else {
        return Ok(());
    };
    let Some(bad) = wrong_credentials(&cx)? else {
        eprintln!("{scheme:?}: wrong credentials are not testable here (no authentication)");
        return Ok(());
    };
    let path = cx.path("x");
    match bad.put(&path, PutPayload::from_static(b"x")).await {
        Err(
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. },
        ) => {}
        other => bail!("{scheme:?}: PUT with wrong credentials: {other:?}"),
    }
    match bad.get(&path).await {
        Err(
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. },
        ) => {}
        other => bail!(
            "{scheme:?}: GET with wrong credentials: {:?}",
            other.map(|_| ())
        ),
    }
    let err = silt::DbBuilder::new(bad, cx.path("db"))
        .settings(silt::Settings::small_for_tests())
        .open()
        .await
        .err()
        .with_context(|| {
            format!("{scheme:?}: opening a database with wrong credentials succeeded")
        })?;
    assert_eq!(
        err.kind(),
        silt::ErrorKind::InvalidInput,
        "{scheme:?}: {err}"
    );
    Ok(())
}

macro_rules! conformance {
    ($($module:ident => $scheme:expr),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn create_race() -> Result<()> {
                super::create_race($scheme).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn conditional_update() -> Result<()> {
                super::conditional_update($scheme).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ranged_get() -> Result<()> {
                super::ranged_get($scheme).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn list_prefix_and_offset() -> Result<()> {
                super::list_prefix_and_offset($scheme).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn multipart() -> Result<()> {
                super::multipart($scheme).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn absent_objects() -> Result<()> {
                super::absent_objects($scheme).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn error_kinds() -> Result<()> {
                super::error_kinds($scheme).await
            }
        }
    )*};
}

conformance! {
    s3 => Scheme::S3,
    azure => Scheme::Azure,
    gcs => Scheme::Gcs,
    file => Scheme::File,
    memory => Scheme::Memory,
}
