//! Basic round trips through memtable, SST and reopen on a local directory.

use silt::{Db, Durability, Settings, WriteBatch, WriteOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_scan_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let db = Db::open(&url, Settings::small_for_tests()).await.unwrap();
    db.put("a", "1").await.unwrap();
    db.put("b", "2").await.unwrap();
    db.delete("a").await.unwrap();
    let mut b = WriteBatch::new();
    for i in 0..500 {
        b.put(format!("k{i:04}"), vec![b'x'; 100]);
    }
    db.write_with(b, &WriteOptions::with_durability(Durability::Buffered))
        .await
        .unwrap();
    db.flush_memtables().await.unwrap();
    db.put("c", "3").await.unwrap();
    assert_eq!(db.get("a").await.unwrap(), None);
    assert_eq!(db.get("b").await.unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(db.get("k0042").await.unwrap().unwrap().len(), 100);
    let all = db.scan::<&str>(..).unwrap().collect(10_000).await.unwrap();
    assert_eq!(all.len(), 502);
    let some = db
        .scan("k0010".."k0020")
        .unwrap()
        .collect(100)
        .await
        .unwrap();
    assert_eq!(some.len(), 10);
    db.close().await.unwrap();

    let db = Db::open(&url, Settings::small_for_tests()).await.unwrap();
    assert_eq!(db.get("a").await.unwrap(), None);
    assert_eq!(db.get("c").await.unwrap().as_deref(), Some(&b"3"[..]));
    let all = db.scan_prefix("k").unwrap().collect(10_000).await.unwrap();
    assert_eq!(all.len(), 500);
    db.close().await.unwrap();
}
