//! The engine against a real S3-compatible server (`SeaweedFS` started by `scripts/test`):
//! durable writes, recovery, fencing through conditional PUT, ranged SST reads, large values.
//!
//! Reads `SILT_TEST_S3_URL` (e.g. `s3://silt-test`) and the `AWS_*` variables. Skips when it
//! is unset, unless `SILT_REQUIRE_S3=1`, in which case it fails.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use silt::{CloseReason, Db, ErrorKind, Settings};

/// A fresh database URL under the test bucket, or `None` to skip.
fn db_url(test: &str) -> Result<Option<String>> {
    static N: AtomicU64 = AtomicU64::new(0);
    let Some(base) = common::s3_base_url(test) else {
        return Ok(None);
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_nanos();
    let n = N.fetch_add(1, Ordering::Relaxed);
    Ok(Some(format!("{base}/engine-{test}-{nanos}-{n}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_writes_survive_reopen_and_read_through_ranged_gets() -> Result<()> {
    let Some(url) = db_url("reopen")? else {
        return Ok(());
    };
    let db = Db::open(&url, Settings::small_for_tests())
        .await
        .context("open")?;
    let mut tasks = Vec::new();
    let db = std::sync::Arc::new(db);
    for t in 0..8 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                db.put(format!("k{t}-{i:03}"), format!("v{t}-{i}"))
                    .await
                    .with_context(|| format!("put k{t}-{i:03}"))?;
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await.context("a writer task panicked")??;
    }
    db.flush_memtables().await.context("flush_memtables")?;
    db.put("after-flush", "wal-only")
        .await
        .context("put after-flush")?;
    drop(db); // no close: the last write must come back from the WAL

    let db = Db::open(&url, Settings::small_for_tests())
        .await
        .context("reopen")?;
    // These reads go to the SST through ranged GETs (a fresh process has no cached blocks).
    for t in 0..8 {
        for i in 0..25 {
            let v = db
                .get(format!("k{t}-{i:03}"))
                .await
                .with_context(|| format!("get k{t}-{i:03}"))?;
            assert_eq!(v.as_deref(), Some(format!("v{t}-{i}").as_bytes()));
        }
    }
    assert_eq!(
        db.get("after-flush")
            .await
            .context("get after-flush")?
            .as_deref(),
        Some(&b"wal-only"[..])
    );
    let all = db
        .scan_prefix("k3-")
        .context("scan_prefix k3-")?
        .collect(1000)
        .await
        .context("scan_prefix k3-")?;
    assert_eq!(all.len(), 25);
    db.close().await.context("close")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_writer_fences_the_first_through_conditional_put() -> Result<()> {
    let Some(url) = db_url("fencing")? else {
        return Ok(());
    };
    let a = Db::open(&url, Settings::small_for_tests())
        .await
        .context("open writer a")?;
    a.put("from-a", "1").await.context("put from-a")?;
    let b = Db::open(&url, Settings::small_for_tests())
        .await
        .context("open writer b")?;
    let err = a.put("late-a", "2").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed(CloseReason::Fenced), "{err}");
    assert_eq!(
        b.get("from-a").await.context("get from-a")?.as_deref(),
        Some(&b"1"[..])
    );
    b.put("from-b", "3").await.context("put from-b")?;
    b.close().await.context("close b")?;
    let c = silt::DbBuilder::from_url(&url)
        .with_context(|| format!("parsing the store URL {url}"))?
        .read_only()
        .open()
        .await
        .context("open read-only")?;
    assert_eq!(c.get("late-a").await.context("get late-a")?, None);
    assert_eq!(
        c.get("from-b").await.context("get from-b")?.as_deref(),
        Some(&b"3"[..])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_round_trip() -> Result<()> {
    let Some(url) = db_url("large")? else {
        return Ok(());
    };
    let db = Db::open(&url, Settings::default()).await.context("open")?;
    let big: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    db.put("big", &big).await.context("put big")?;
    db.flush_memtables().await.context("flush_memtables")?;
    db.close().await.context("close")?;
    let db = Db::open(&url, Settings::default())
        .await
        .context("reopen")?;
    assert_eq!(
        db.get("big").await.context("get big")?.as_deref(),
        Some(&big[..])
    );
    db.close().await.context("close")?;
    Ok(())
}
