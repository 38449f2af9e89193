//! A scan that meets a failed block GET: the error is reported, and calling `next` again
//! either reports it again or goes on with exactly the key that was due. It never skips
//! keys (the failed source dropped from the merge) or returns them twice.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use common::{BoxFut, Hook, HookStore};
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::{GetOptions, GetResult, ObjectStore, Result as OsResult};
use silt::{Bytes, Db, Settings, WriteBatch};

/// Once armed, the next ranged GET of an SST fails (once).
#[derive(Debug, Default)]
struct FailOneSstBlockGet {
    armed: AtomicBool,
    failed: AtomicUsize,
}

impl Hook for FailOneSstBlockGet {
    fn get_opts<'a>(
        &'a self,
        inner: &'a Arc<dyn ObjectStore>,
        location: &'a Path,
        options: GetOptions,
    ) -> BoxFut<'a, OsResult<GetResult>> {
        let block = location.as_ref().contains("/sst/") && options.range.is_some();
        if block && self.armed.swap(false, Ordering::SeqCst) {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Box::pin(async {
                // Not transient: a transient failure is retried and never reaches the scan.
                Err(silt::object_store::Error::PermissionDenied {
                    path: "sst".into(),
                    source: "injected block GET failure".into(),
                })
            });
        }
        inner.get_opts(location, options)
    }
}

fn settings() -> Settings {
    let mut s = Settings::small_for_tests();
    // About two entries per block: the scan fetches a block every other key.
    s.sst.block_bytes = 256;
    s.compaction.enabled = false;
    s
}

fn key(i: usize) -> String {
    format!("k{i:04}")
}

/// The keys of a scan's pairs, for readable assertions (values are checked separately).
fn keys(kvs: &[(Bytes, Bytes)]) -> Vec<String> {
    kvs.iter()
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .collect()
}

/// Fails one block GET after `ok_before` pairs were returned (0: while the scan loads its
/// first entries).
async fn scan_with_one_failed_get(ok_before: usize) -> Result<()> {
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = HookStore::new(Arc::clone(&mem), FailOneSstBlockGet::default());
    let root = Path::from("db");
    let db = Db::open_with_store(store.clone(), root.clone(), settings())
        .await
        .context("open")?;
    // Even keys in an SST, odd keys in the memtable: the scan merges both.
    let n = 200;
    let value = |i: usize| Bytes::from(format!("{i:0>100}"));
    let batch = |first: usize| {
        let mut b = WriteBatch::new();
        for i in (first..n).step_by(2) {
            b.put(key(i), value(i));
        }
        b
    };
    db.write(batch(0)).await.context("write batch 0")?;
    db.flush_memtables().await.context("flush_memtables")?;
    db.write(batch(1)).await.context("write batch 1")?;
    let expected: Vec<(Bytes, Bytes)> = (0..n).map(|i| (Bytes::from(key(i)), value(i))).collect();

    let mut scan = db.scan::<&str>(..).context("scan")?;
    let mut got = Vec::new();
    for _ in 0..ok_before {
        got.push(
            scan.next()
                .await
                .context("scan before the fault")?
                .context("the scan ended before the fault")?,
        );
    }
    store.hook.armed.store(true, Ordering::SeqCst);
    let mut errors = 0;
    loop {
        match scan.next().await {
            Ok(Some(kv)) => {
                assert!(errors <= 1, "a key after a sticky error");
                got.push(kv);
            }
            Ok(None) => break,
            Err(e) => {
                errors += 1;
                assert!(e.to_string().contains("injected"), "{e}");
                if errors == 3 {
                    // Sticky: it keeps failing. What came before is a prefix.
                    break;
                }
            }
        }
    }
    assert_eq!(store.hook.failed.load(Ordering::SeqCst), 1);
    assert!(errors >= 1, "the failure was never met");
    if errors == 1 {
        assert_eq!(
            keys(&got),
            keys(&expected),
            "the scan resumed but skipped or repeated keys"
        );
    } else {
        assert_eq!(
            keys(&got),
            keys(&expected[..got.len()]),
            "keys before the error"
        );
    }
    assert_eq!(got, expected[..got.len()]);
    db.close().await.context("close")?;

    // Nothing was lost either.
    let reopened = Db::open_with_store(mem, root, settings())
        .await
        .context("reopen")?;
    let all = reopened
        .scan::<&str>(..)
        .context("scan after reopening")?
        .collect(usize::MAX)
        .await
        .context("scan after reopening")?;
    assert_eq!(all, expected);
    reopened.close().await.context("close after reopening")?;
    Ok(())
}

#[tokio::test]
async fn a_failed_block_get_mid_scan_neither_skips_nor_repeats_keys() -> Result<()> {
    scan_with_one_failed_get(20).await?;
    Ok(())
}

#[tokio::test]
async fn a_failed_block_get_on_the_first_next_neither_skips_nor_repeats_keys() -> Result<()> {
    scan_with_one_failed_get(0).await?;
    Ok(())
}
