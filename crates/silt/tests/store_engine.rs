//! The engine against every store scheme whose state outlives a handle: `s3://` (`SeaweedFS`),
//! `az://` (Azurite), `gs://` (fake-gcs-server or a real bucket) and `file://`. What
//! `s3_engine.rs` asserts for S3, per scheme: Remote writes survive a reopen and read back
//! through ranged GETs, a second writer fences the first through a create-only PUT, a
//! compaction and a GC pass keep every live value, and a kill -9 loop (three lives of the
//! chaos child, each killed with SIGKILL mid-write) loses no acknowledged write. (`memory://` is left
//! out: each open of that URL is a new, empty store.)
//!
//! Emulator schemes read `SILT_TEST_S3_URL` / `SILT_TEST_AZURE_URL` / `SILT_TEST_GCS_URL` and
//! skip when it is unset, unless `SILT_REQUIRE_S3` / `SILT_REQUIRE_AZURE` /
//! `SILT_REQUIRE_GCS` is `1`.

mod chaos;
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use chaos::{verify, Child, Config, Known, Scenario};
use silt::{CloseReason, Db, ErrorKind, Settings};

#[test]
fn chaos_child() -> Result<()> {
    chaos::child_main()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    S3,
    Azure,
    Gcs,
    File,
}

/// A fresh database URL for `test` on `scheme` (and the temp dir of a `file://` one), or
/// `None` to skip.
fn db_url(scheme: Scheme, test: &str) -> Result<Option<(String, Option<tempfile::TempDir>)>> {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_nanos();
    let n = N.fetch_add(1, Ordering::Relaxed);
    let leaf = format!("engine-{test}-{nanos}-{}-{n}", std::process::id());
    let (url_var, require_var) = match scheme {
        Scheme::File => {
            let dir = tempfile::tempdir().context("tempdir")?;
            let url = format!("file://{}", dir.path().join(leaf).display());
            return Ok(Some((url, Some(dir))));
        }
        Scheme::S3 => ("SILT_TEST_S3_URL", "SILT_REQUIRE_S3"),
        Scheme::Azure => ("SILT_TEST_AZURE_URL", "SILT_REQUIRE_AZURE"),
        Scheme::Gcs => ("SILT_TEST_GCS_URL", "SILT_REQUIRE_GCS"),
    };
    Ok(common::emulator_url(url_var, require_var, test)
        .map(|base| (format!("{base}/{leaf}"), None)))
}

async fn reopen(scheme: Scheme) -> Result<()> {
    let Some((url, _dir)) = db_url(scheme, "reopen")? else {
        return Ok(());
    };
    let db = Arc::new(
        Db::open(&url, Settings::small_for_tests())
            .await
            .with_context(|| format!("open {url}"))?,
    );
    let mut tasks = Vec::new();
    for t in 0..4 {
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
    drop(db); // no close: the last write comes back from the WAL

    let db = Db::open(&url, Settings::small_for_tests())
        .await
        .context("reopen")?;
    for t in 0..4 {
        for i in 0..25 {
            let v = db
                .get(format!("k{t}-{i:03}"))
                .await
                .with_context(|| format!("get k{t}-{i:03}"))?;
            assert_eq!(
                v.as_deref(),
                Some(format!("v{t}-{i}").as_bytes()),
                "{scheme:?}"
            );
        }
    }
    assert_eq!(
        db.get("after-flush").await.context("get")?.as_deref(),
        Some(&b"wal-only"[..]),
        "{scheme:?}"
    );
    db.close().await.context("close")?;
    Ok(())
}

async fn fencing(scheme: Scheme) -> Result<()> {
    let Some((url, _dir)) = db_url(scheme, "fencing")? else {
        return Ok(());
    };
    let a = Db::open(&url, Settings::small_for_tests())
        .await
        .context("open writer a")?;
    a.put("from-a", "1").await.context("put from-a")?;
    let b = Db::open(&url, Settings::small_for_tests())
        .await
        .context("open writer b")?;
    let err = a
        .put("late-a", "2")
        .await
        .err()
        .context("the fenced writer's put succeeded")?;
    assert_eq!(
        err.kind(),
        ErrorKind::Closed(CloseReason::Fenced),
        "{scheme:?}: {err}"
    );
    assert_eq!(
        b.get("from-a").await.context("get from-a")?.as_deref(),
        Some(&b"1"[..])
    );
    b.put("from-b", "3").await.context("put from-b")?;
    b.close().await.context("close b")?;
    let c = silt::DbBuilder::from_url(&url)?
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

async fn compaction_and_gc(scheme: Scheme) -> Result<()> {
    let Some((url, _dir)) = db_url(scheme, "compaction_gc")? else {
        return Ok(());
    };
    let mut s = Settings::small_for_tests();
    s.gc.enabled = false;
    let db = Db::open(&url, s.clone()).await.context("open")?;
    for round in 0..3u32 {
        let mut b = silt::WriteBatch::new();
        for i in 0..300u32 {
            if round > 0 && i % 5 == 0 {
                b.delete(format!("key{i:05}"));
            } else {
                b.put(format!("key{i:05}"), format!("r{round}-{i}"));
            }
        }
        db.write(b).await.context("write")?;
        db.flush_memtables().await.context("flush_memtables")?;
    }
    db.compact().await.context("compact")?;
    let report = db.gc(Some(Duration::ZERO)).await.context("gc")?;
    assert!(
        report.sst > 0 || report.wal > 0 || report.manifests > 0,
        "{scheme:?}: GC deleted nothing after a compaction: {report:?}"
    );
    db.close().await.context("close")?;
    let db = Db::open(&url, s).await.context("reopen")?;
    let rows = db
        .scan::<&str>(..)
        .context("scan")?
        .collect(10_000)
        .await
        .context("scan")?;
    assert_eq!(
        rows.len(),
        240,
        "{scheme:?}: live keys after compaction and GC"
    );
    for (k, v) in rows {
        let i: u32 = std::str::from_utf8(&k)?.trim_start_matches("key").parse()?;
        assert_ne!(i % 5, 0, "{scheme:?}: a deleted key came back");
        assert_eq!(&v[..], format!("r2-{i}").as_bytes(), "{scheme:?}");
    }
    db.close().await.context("close")?;
    Ok(())
}

/// Three lives of the chaos child (Remote, Local and Buffered writers), each killed with
/// SIGKILL mid-write, each followed by a reopen that checks every acknowledged write.
async fn kill9_loop(scheme: Scheme) -> Result<()> {
    let Some((url, dir)) = db_url(scheme, "kill9")? else {
        return Ok(());
    };
    let local = tempfile::tempdir().context("the local-log directory")?;
    let sc = Scenario {
        child_test: "chaos_child",
        cfg: Config {
            url,
            dir: local.path().to_path_buf(),
            local: true,
            deadline: Duration::from_secs(60),
        },
        paused: false,
        may_fail: false,
    };
    let seed = chaos::seed(0x5707_e000);
    let mut known = Known::default();
    for life in 1..=3 {
        let mut child = Child::spawn(&sc, life, None)?;
        child.wait_until(|l| l.acks >= 150 * life)?;
        let log = child.kill()?;
        eprintln!("{scheme:?} life {life}: {log:?}");
        known.lives.insert(life, log);
        verify(&sc, &mut known, life, None, seed).await?;
    }
    drop(dir);
    Ok(())
}

macro_rules! engine {
    ($($module:ident => $scheme:expr),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn reopen() -> Result<()> {
                super::reopen($scheme).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fencing() -> Result<()> {
                super::fencing($scheme).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn compaction_and_gc() -> Result<()> {
                super::compaction_and_gc($scheme).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn kill9_loop() -> Result<()> {
                super::kill9_loop($scheme).await
            }
        }
    )*};
}

engine! {
    s3 => Scheme::S3,
    azure => Scheme::Azure,
    gcs => Scheme::Gcs,
    file => Scheme::File,
}
