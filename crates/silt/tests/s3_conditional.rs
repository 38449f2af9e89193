//! Integration tests against a real S3-compatible server (`SeaweedFS`, see
//! `scripts/s3-server` and `docs/s3-server.md`).
//!
//! These tests check the object-store semantics Silt relies on, using only
//! the `object_store` crate: conditional create (`If-None-Match: *`),
//! conditional update (`If-Match`), ranged reads, prefix listing and
//! multipart upload.
//!
//! They read `SILT_TEST_S3_URL` (e.g. `s3://silt-test` or
//! `s3://silt-test/some/prefix`) plus the standard `AWS_*` variables read by
//! `AmazonS3Builder::from_env()`. When `SILT_TEST_S3_URL` is unset they skip,
//! unless `SILT_REQUIRE_S3=1`, in which case they fail. `scripts/test` starts
//! the server and sets everything up.

mod common;

use common::{create, pattern, unique_id, update};

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::{Context, Result};
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, UpdateVersion};

const MIB: usize = 1024 * 1024;

/// A store plus a unique prefix under which this test writes.
struct Ctx {
    store: Arc<AmazonS3>,
    prefix: String,
}

impl Ctx {
    fn path(&self, rel: &str) -> Path {
        Path::from(format!("{}/{}", self.prefix, rel))
    }
}

/// Builds the store, or returns `None` (after printing a skip line) when no
/// S3 server is configured and S3 is not required.
fn ctx(test: &str) -> Result<Option<Ctx>> {
    let Some(url) = common::s3_base_url(test) else {
        return Ok(None);
    };
    let rest = url.strip_prefix("s3://").with_context(|| {
        format!("SILT_TEST_S3_URL must look like s3://bucket[/prefix], got {url:?}")
    })?;
    let (bucket, base) = match rest.split_once('/') {
        Some((bucket, base)) => (bucket, base.trim_matches('/')),
        None => (rest, ""),
    };
    assert!(
        !bucket.is_empty(),
        "SILT_TEST_S3_URL has no bucket: {url:?}"
    );

    let store = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .with_context(|| format!("building S3 store for {url:?} from AWS_* env failed"))?;

    let unique = unique_id();
    let prefix = if base.is_empty() {
        format!("s3-conditional-tests/{unique}/{test}")
    } else {
        format!("{base}/s3-conditional-tests/{unique}/{test}")
    };
    Ok(Some(Ctx {
        store: Arc::new(store),
        prefix,
    }))
}

async fn read_all(store: &AmazonS3, path: &Path) -> Result<Vec<u8>> {
    Ok(store
        .get(path)
        .await
        .with_context(|| format!("GET {path} failed"))?
        .bytes()
        .await
        .with_context(|| format!("reading body of {path} failed"))?
        .to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_if_absent_rejects_second_create() -> Result<()> {
    let Some(cx) = ctx("create_if_absent")? else {
        return Ok(());
    };
    let path = cx.path("manifest/00000001");

    let first = cx
        .store
        .put_opts(&path, PutPayload::from_static(b"first"), create())
        .await
        .context("first PutMode::Create on a fresh key must succeed")?;
    assert!(first.e_tag.is_some(), "server returned no ETag on PUT");

    let second = cx
        .store
        .put_opts(&path, PutPayload::from_static(b"second"), create())
        .await;
    match second {
        Err(object_store::Error::AlreadyExists { .. }) => {}
        other => panic!("second PutMode::Create must fail with AlreadyExists, got {other:?}"),
    }

    // The loser must not have changed the object.
    assert_eq!(read_all(&cx.store, &path).await?, b"first");

    // A plain overwrite still works.
    cx.store
        .put(&path, PutPayload::from_static(b"third"))
        .await
        .context("unconditional overwrite")?;
    assert_eq!(read_all(&cx.store, &path).await?, b"third");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_creators_exactly_one_wins() -> Result<()> {
    const RACERS: usize = 16;
    const ROUNDS: usize = 3;
    let Some(cx) = ctx("racers")? else {
        return Ok(());
    };

    for round in 0..ROUNDS {
        let path = cx.path(&format!("race-{round}"));
        let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
        let mut tasks = Vec::with_capacity(RACERS);
        for racer in 0..RACERS {
            let store = Arc::clone(&cx.store);
            let path = path.clone();
            let barrier = Arc::clone(&barrier);
            tasks.push(tokio::spawn(async move {
                let body = format!("racer-{racer}").into_bytes();
                barrier.wait().await;
                let res = store
                    .put_opts(&path, PutPayload::from(body), create())
                    .await;
                (racer, res)
            }));
        }

        let mut winners = Vec::new();
        let mut losers = 0;
        for task in tasks {
            let (racer, res) = task.await.context("racer task panicked")?;
            match res {
                Ok(_) => winners.push(racer),
                Err(object_store::Error::AlreadyExists { .. }) => losers += 1,
                Err(e) => panic!("racer {racer} got an unexpected error: {e:?}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one creator must win, winners: {winners:?}"
        );
        assert_eq!(losers, RACERS - 1, "round {round}");

        let stored = read_all(&cx.store, &path).await?;
        assert_eq!(
            stored,
            format!("racer-{}", winners[0]).into_bytes(),
            "round {round}: stored object must be the winner's payload"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_update_if_match() -> Result<()> {
    const RACERS: usize = 16;
    let Some(cx) = ctx("if_match")? else {
        return Ok(());
    };
    let path = cx.path("CURRENT");

    let v1 = cx
        .store
        .put_opts(&path, PutPayload::from_static(b"v1"), create())
        .await
        .context("create v1")?;
    let v1: UpdateVersion = v1.into();

    let v2 = cx
        .store
        .put_opts(&path, PutPayload::from_static(b"v2"), update(v1.clone()))
        .await
        .context("If-Match with the current ETag must succeed")?;
    assert_eq!(read_all(&cx.store, &path).await?, b"v2");

    // Stale version: must be rejected and leave the object alone.
    match cx
        .store
        .put_opts(&path, PutPayload::from_static(b"stale"), update(v1))
        .await
    {
        Err(object_store::Error::Precondition { .. }) => {}
        other => panic!("If-Match with a stale ETag must fail with Precondition, got {other:?}"),
    }
    assert_eq!(read_all(&cx.store, &path).await?, b"v2");

    // Concurrent compare-and-swap from the same version: exactly one wins.
    let v2: UpdateVersion = v2.into();
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = Vec::with_capacity(RACERS);
    for racer in 0..RACERS {
        let store = Arc::clone(&cx.store);
        let path = path.clone();
        let barrier = Arc::clone(&barrier);
        let version = v2.clone();
        tasks.push(tokio::spawn(async move {
            let body = format!("cas-{racer}").into_bytes();
            barrier.wait().await;
            let res = store
                .put_opts(&path, PutPayload::from(body), update(version))
                .await;
            (racer, res)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (racer, res) = task.await.context("racer task panicked")?;
        match res {
            Ok(_) => winners.push(racer),
            Err(object_store::Error::Precondition { .. }) => {}
            Err(e) => panic!("CAS racer {racer} got an unexpected error: {e:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one CAS must win, winners: {winners:?}"
    );
    assert_eq!(
        read_all(&cx.store, &path).await?,
        format!("cas-{}", winners[0]).into_bytes()
    );

    // If-Match on a key that does not exist must not create it.
    let missing = cx.path("missing");
    let res = cx
        .store
        .put_opts(
            &missing,
            PutPayload::from_static(b"x"),
            update(UpdateVersion {
                e_tag: Some("\"0123456789abcdef0123456789abcdef\"".to_string()),
                version: None,
            }),
        )
        .await;
    assert!(
        matches!(
            res,
            Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. })
        ),
        "If-Match on a missing key must fail, got {res:?}"
    );
    match cx.store.head(&missing).await {
        Err(object_store::Error::NotFound { .. }) => {}
        other => panic!("failed If-Match must not create the key, HEAD gave {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ranged_get_returns_exact_bytes() -> Result<()> {
    let Some(cx) = ctx("ranged_get")? else {
        return Ok(());
    };
    let path = cx.path("sst/000001.sst");
    let data = pattern(MIB + 12_345, 7);
    cx.store
        .put(&path, PutPayload::from(data.clone()))
        .await
        .context("put object")?;

    let meta = cx.store.head(&path).await.context("head")?;
    assert_eq!(meta.size, data.len() as u64);

    let len = data.len() as u64;
    let ranges = [
        0..1,
        0..4096,
        1..2,
        4095..4097,
        123_456..654_321,
        len - 1..len,
        len - 100..len,
        0..len,
    ];
    for range in ranges {
        let got = cx
            .store
            .get_range(&path, range.clone())
            .await
            .unwrap_or_else(|e| panic!("GET range {range:?} failed: {e}"));
        let want = &data[range.start as usize..range.end as usize];
        assert_eq!(got.len(), want.len(), "length of range {range:?}");
        assert!(got.as_ref() == want, "bytes of range {range:?} differ");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_with_prefix_returns_exactly_written_keys() -> Result<()> {
    let Some(cx) = ctx("list")? else {
        return Ok(());
    };
    let written = [
        "db/CURRENT",
        "db/manifest/00000001.json",
        "db/manifest/00000002.json",
        "db/sst/a.sst",
        "db/sst/b.sst",
        "db/wal/0000000000000001.wal",
    ];
    // Decoys that share a string prefix but not a path prefix.
    let decoys = ["db2/sst/c.sst", "dbx", "other/db/d.sst"];
    for key in written.iter().chain(decoys.iter()) {
        cx.store
            .put(&cx.path(key), PutPayload::from(key.as_bytes().to_vec()))
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
    }

    let listed: BTreeSet<String> = cx
        .store
        .list(Some(&cx.path("db")))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .context("list")?;
    let want: BTreeSet<String> = written.iter().map(|k| cx.path(k).to_string()).collect();
    assert_eq!(listed, want);

    let sst: BTreeSet<String> = cx
        .store
        .list(Some(&cx.path("db/sst")))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .context("list sst")?;
    let want_sst: BTreeSet<String> = ["db/sst/a.sst", "db/sst/b.sst"]
        .iter()
        .map(|k| cx.path(k).to_string())
        .collect();
    assert_eq!(sst, want_sst);

    let delimited = cx
        .store
        .list_with_delimiter(Some(&cx.path("db")))
        .await
        .context("list_with_delimiter")?;
    let objects: BTreeSet<String> = delimited
        .objects
        .iter()
        .map(|m| m.location.to_string())
        .collect();
    let dirs: BTreeSet<String> = delimited
        .common_prefixes
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    assert_eq!(objects, BTreeSet::from([cx.path("db/CURRENT").to_string()]));
    assert_eq!(
        dirs,
        ["db/manifest", "db/sst", "db/wal"]
            .iter()
            .map(|k| cx.path(k).to_string())
            .collect::<BTreeSet<_>>()
    );

    // After a delete the key is gone from listings.
    cx.store
        .delete(&cx.path("db/sst/a.sst"))
        .await
        .context("delete")?;
    let after: BTreeSet<String> = cx
        .store
        .list(Some(&cx.path("db/sst")))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .context("list after delete")?;
    assert_eq!(after, BTreeSet::from([cx.path("db/sst/b.sst").to_string()]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multipart_upload_round_trips() -> Result<()> {
    let Some(cx) = ctx("multipart")? else {
        return Ok(());
    };
    let path = cx.path("sst/big.sst");
    // Two full 5 MiB parts plus a short tail: ~12 MiB in total.
    let data = pattern(12 * MIB + 4321, 42);
    let part = 5 * MIB;

    let mut upload = cx
        .store
        .put_multipart(&path)
        .await
        .context("start multipart upload")?;
    for chunk in data.chunks(part) {
        upload
            .put_part(PutPayload::from(chunk.to_vec()))
            .await
            .context("upload part")?;
    }
    upload
        .complete()
        .await
        .context("complete multipart upload")?;

    let meta = cx.store.head(&path).await.context("head")?;
    assert_eq!(meta.size, data.len() as u64);

    let got = read_all(&cx.store, &path).await?;
    assert_eq!(got.len(), data.len());
    assert!(
        got == data,
        "multipart object differs from what was uploaded"
    );

    // Ranged reads across the part boundaries.
    for boundary in [part, 2 * part] {
        let range = (boundary - 10) as u64..(boundary + 10) as u64;
        let got = cx
            .store
            .get_range(&path, range)
            .await
            .context("ranged get across part boundary")?;
        assert_eq!(got.as_ref(), &data[boundary - 10..boundary + 10]);
    }

    // An aborted upload leaves nothing behind.
    let aborted = cx.path("sst/aborted.sst");
    let mut upload = cx
        .store
        .put_multipart(&aborted)
        .await
        .context("start second multipart upload")?;
    upload
        .put_part(PutPayload::from(pattern(part, 3)))
        .await
        .context("upload part")?;
    upload.abort().await.context("abort multipart upload")?;
    match cx.store.head(&aborted).await {
        Err(object_store::Error::NotFound { .. }) => {}
        other => panic!("aborted multipart upload must not create the object, got {other:?}"),
    }
    Ok(())
}
