//! Basic round trips through memtable, SST and reopen on a local directory.

use anyhow::{Context, Result};
use silt::{Db, Durability, Settings, WriteBatch, WriteOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_scan_reopen() -> Result<()> {
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let url = format!("file://{}", dir.path().display());
    let db = Db::open(&url, Settings::small_for_tests())
        .await
        .context("open")?;
    db.put("a", "1").await.context("put a")?;
    db.put("b", "2").await.context("put b")?;
    db.delete("a").await.context("delete a")?;
    let mut b = WriteBatch::new();
    for i in 0..500 {
        b.put(format!("k{i:04}"), vec![b'x'; 100]);
    }
    db.write_with(b, &WriteOptions::with_durability(Durability::Buffered))
        .await
        .context("write_with")?;
    db.flush_memtables().await.context("flush_memtables")?;
    db.put("c", "3").await.context("put c")?;
    assert_eq!(db.get("a").await.context("get a")?, None);
    assert_eq!(
        db.get("b").await.context("get b")?.as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(
        db.get("k0042")
            .await
            .context("get k0042")?
            .context("k0042 missing")?
            .len(),
        100
    );
    let all = db
        .scan::<&str>(..)
        .context("scan")?
        .collect(10_000)
        .await
        .context("collecting the scan")?;
    assert_eq!(all.len(), 502);
    let some = db
        .scan("k0010".."k0020")
        .context("scan")?
        .collect(100)
        .await
        .context("collecting the scan")?;
    assert_eq!(some.len(), 10);
    db.close().await.context("close")?;

    let db = Db::open(&url, Settings::small_for_tests())
        .await
        .context("reopen")?;
    assert_eq!(db.get("a").await.context("get a")?, None);
    assert_eq!(
        db.get("c").await.context("get c")?.as_deref(),
        Some(&b"3"[..])
    );
    let all = db
        .scan_prefix("k")
        .context("scan_prefix k")?
        .collect(10_000)
        .await
        .context("collecting the scan")?;
    assert_eq!(all.len(), 500);
    db.close().await.context("close the reopened db")?;
    Ok(())
}
