//! The engine against a real S3-compatible server (SeaweedFS started by `scripts/test`):
//! durable writes, recovery, fencing through conditional PUT, ranged SST reads, large values.
//!
//! Reads `SILT_TEST_S3_URL` (e.g. `s3://silt-test`) and the `AWS_*` variables. Skips when it
//! is unset, unless `SILT_REQUIRE_S3=1`, in which case it fails.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use silt::{CloseReason, Db, ErrorKind, Settings};

/// A fresh database URL under the test bucket, or `None` to skip.
fn db_url(test: &str) -> Option<String> {
    let base = common::s3_base_url(test)?;
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = N.fetch_add(1, Ordering::Relaxed);
    Some(format!("{base}/engine-{test}-{nanos}-{n}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_writes_survive_reopen_and_read_through_ranged_gets() {
    let Some(url) = db_url("reopen") else { return };
    let db = Db::open(&url, Settings::small_for_tests()).await.unwrap();
    let mut tasks = Vec::new();
    let db = std::sync::Arc::new(db);
    for t in 0..8 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                db.put(format!("k{t}-{i:03}"), format!("v{t}-{i}"))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    db.flush_memtables().await.unwrap();
    db.put("after-flush", "wal-only").await.unwrap();
    drop(db); // no close: the last write must come back from the WAL

    let db = Db::open(&url, Settings::small_for_tests()).await.unwrap();
    // These reads go to the SST through ranged GETs (a fresh process has no cached blocks).
    for t in 0..8 {
        for i in 0..25 {
            let v = db.get(format!("k{t}-{i:03}")).await.unwrap();
            assert_eq!(v.as_deref(), Some(format!("v{t}-{i}").as_bytes()));
        }
    }
    assert_eq!(
        db.get("after-flush").await.unwrap().as_deref(),
        Some(&b"wal-only"[..])
    );
    let all = db.scan_prefix("k3-").unwrap().collect(1000).await.unwrap();
    assert_eq!(all.len(), 25);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_writer_fences_the_first_through_conditional_put() {
    let Some(url) = db_url("fencing") else { return };
    let a = Db::open(&url, Settings::small_for_tests()).await.unwrap();
    a.put("from-a", "1").await.unwrap();
    let b = Db::open(&url, Settings::small_for_tests()).await.unwrap();
    let err = a.put("late-a", "2").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed(CloseReason::Fenced), "{err}");
    assert_eq!(b.get("from-a").await.unwrap().as_deref(), Some(&b"1"[..]));
    b.put("from-b", "3").await.unwrap();
    b.close().await.unwrap();
    let c = silt::DbBuilder::from_url(&url)
        .unwrap()
        .read_only()
        .open()
        .await
        .unwrap();
    assert_eq!(c.get("late-a").await.unwrap(), None);
    assert_eq!(c.get("from-b").await.unwrap().as_deref(), Some(&b"3"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_round_trip() {
    let Some(url) = db_url("large") else { return };
    let db = Db::open(&url, Settings::default()).await.unwrap();
    let big: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    db.put("big", &big).await.unwrap();
    db.flush_memtables().await.unwrap();
    db.close().await.unwrap();
    let db = Db::open(&url, Settings::default()).await.unwrap();
    assert_eq!(db.get("big").await.unwrap().as_deref(), Some(&big[..]));
    db.close().await.unwrap();
}
