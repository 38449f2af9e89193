//! Expiring puts (`Expiry`, `WriteBatch::put_expiring`): invisible from their expiry on,
//! their expiry kept through the WAL, the local log, flushes and compactions, and dropped by
//! compaction without bringing back what they hid. The wall clock is a
//! [`ManualWallClock`], so nothing here waits for real time to pass.
//!
//! (`tests/model.rs` checks expiring puts against a `BTreeMap` model among every other
//! operation.)

use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use silt::clock::{Clock, ManualWallClock};
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::ObjectStore;
use silt::{
    Db, Durability, ErrorKind, Expiry, LocalLogSettings, Settings, WriteBatch, WriteOptions,
};

const START: u64 = 1_796_083_200_000;

async fn open(
    store: &Arc<dyn ObjectStore>,
    wall: &Arc<ManualWallClock>,
    settings: Settings,
) -> Result<Db> {
    let clock: Arc<dyn Clock> = Arc::clone(wall) as Arc<dyn Clock>;
    Db::builder(Arc::clone(store), Path::from("db"))
        .settings(settings)
        .clock(clock)
        .open()
        .await
        .context("open")
}

fn ttl(ms: u64) -> WriteOptions {
    WriteOptions::with_durability(Durability::Remote)
        .expiring(Expiry::After(Duration::from_millis(ms)))
}

async fn keys(db: &Db) -> Result<Vec<String>> {
    let rows = db.scan::<&[u8]>(..)?.collect(usize::MAX).await?;
    Ok(rows
        .into_iter()
        .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
        .collect())
}

// Paused tokio time: the Remote puts' WAL linger costs no wall-clock time.
#[tokio::test(start_paused = true)]
async fn expired_values_vanish_and_compaction_drops_them_without_resurrecting_older_ones(
) -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let wall = Arc::new(ManualWallClock::new(START));
    let db = open(&store, &wall, Settings::small_for_tests()).await?;

    // An old plain value at the bottom of the tree, under a later expiring one.
    db.put("shadowed", "old").await?;
    db.flush_memtables().await?;
    db.compact().await?;
    db.put_with("shadowed", "new", &ttl(1_000)).await?;
    // Many expiring values, a plain one, one expiring later, and a batch.
    for i in 0..300 {
        db.put_with(format!("e{i:03}"), vec![7u8; 200], &ttl(1_000))
            .await?;
    }
    db.put("plain", "p").await?;
    db.put_with(
        "later",
        "l",
        &WriteOptions::default().expiring(Expiry::AtUnixMillis(START + 5_000)),
    )
    .await?;
    let mut b = WriteBatch::new();
    b.put_expiring("batch", "b", START + 1_000);
    db.write(b).await?;

    let (v, at) = db
        .get_with_expiry("shadowed")
        .await?
        .context("shadowed before expiry")?;
    ensure!(v == "new" && at == Some(START + 1_000), "{v:?} {at:?}");
    ensure!(db.get_with_expiry("plain").await? == Some(("p".into(), None)));
    ensure!(keys(&db).await?.len() == 304);

    // One millisecond before: still there. At the expiry: gone, everywhere.
    wall.advance(Duration::from_millis(999));
    ensure!(db.get("batch").await?.is_some());
    let snap = db.snapshot();
    wall.advance(Duration::from_millis(1));
    for k in ["shadowed", "batch", "e000", "e299"] {
        ensure!(db.get(k).await?.is_none(), "{k} visible after its expiry");
        ensure!(
            snap.get(k).await?.is_none(),
            "{k} visible in a snapshot after its expiry"
        );
    }
    ensure!(
        keys(&db).await? == ["later", "plain"],
        "{:?}",
        keys(&db).await?
    );
    ensure!(db.scan_prefix("e")?.collect(10).await?.is_empty());
    drop(snap);

    // Flushed and compacted to the bottom: the expired puts go, their space with them,
    // and the old value they hid does not come back.
    db.flush_memtables().await?;
    let before = db.metrics().engine;
    db.compact().await?;
    let after = db.metrics().engine;
    let expired = after.compaction_expired - before.compaction_expired;
    ensure!(
        expired == 302,
        "compaction expired {expired} puts, expected 302"
    );
    ensure!(
        after.compaction_bytes_out - before.compaction_bytes_out < 8 * 1024,
        "the compacted run still holds the expired values: {} bytes",
        after.compaction_bytes_out - before.compaction_bytes_out
    );
    ensure!(
        db.get("shadowed").await?.is_none(),
        "the old value came back"
    );
    ensure!(keys(&db).await? == ["later", "plain"]);
    ensure!(
        db.get_with_expiry("later").await? == Some(("l".into(), Some(START + 5_000))),
        "an unexpired expiry survives compaction"
    );
    db.close().await?;

    // And after a reopen.
    let db = open(&store, &wall, Settings::small_for_tests()).await?;
    ensure!(db.get("shadowed").await?.is_none());
    ensure!(keys(&db).await? == ["later", "plain"]);
    db.close().await?;
    Ok(())
}

#[tokio::test]
async fn expiries_survive_wal_and_local_log_replay() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let wall = Arc::new(ManualWallClock::new(START));
    let mut settings = Settings::small_for_tests();
    settings.local_log = Some(LocalLogSettings {
        dir: dir.path().join("local-log"),
        ..LocalLogSettings::default()
    });
    // The remote WAL lags (one PUT per two seconds, long linger), so Local writes are
    // first recovered from the local log.
    settings.wal.max_puts_per_sec = 0.5;
    settings.wal.put_burst = 1;
    settings.wal.flush_interval = Duration::from_secs(5);
    let db = open(&store, &wall, settings.clone()).await?;
    let local = WriteOptions::with_durability(Durability::Local);
    for i in 0..50u64 {
        let o = local.expiring(Expiry::AtUnixMillis(START + 1_000 + i));
        db.put_with(format!("k{i:02}"), format!("v{i}"), &o).await?;
    }
    db.put_with("forever", "f", &local).await?;
    // No close: the handle goes away with the writes in the local log (and maybe the WAL).
    drop(db);

    let db = open(&store, &wall, settings.clone()).await?;
    for i in 0..50u64 {
        let got = db.get_with_expiry(format!("k{i:02}")).await?;
        ensure!(
            got == Some((format!("v{i}").into(), Some(START + 1_000 + i))),
            "k{i:02} after replay: {got:?}"
        );
    }
    ensure!(db.get_with_expiry("forever").await? == Some(("f".into(), None)));
    wall.advance(Duration::from_millis(1_025));
    ensure!(keys(&db).await?.len() == 1 + 24, "{:?}", keys(&db).await?);
    db.close().await?;

    // Closed cleanly (WAL and memtables flushed), reopened: the same.
    let db = open(&store, &wall, settings).await?;
    ensure!(keys(&db).await?.len() == 1 + 24);
    ensure!(db.get("k25").await?.is_none() && db.get("k26").await?.is_some());
    db.close().await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn only_put_with_takes_an_expiry() -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let wall = Arc::new(ManualWallClock::new(START));
    let db = open(&store, &wall, Settings::small_for_tests()).await?;
    let o = ttl(1_000);
    let mut b = WriteBatch::new();
    b.put("k", "v");
    let e = db
        .write_with(b, &o)
        .await
        .err()
        .context("write_with took an expiry")?;
    ensure!(e.kind() == ErrorKind::InvalidInput, "{e}");
    let e = db
        .delete_with("k", &o)
        .await
        .err()
        .context("delete_with took an expiry")?;
    ensure!(e.kind() == ErrorKind::InvalidInput, "{e}");
    // An expiry already past hides the key at once, older versions included.
    db.put("k", "old").await?;
    let past = WriteOptions::default().expiring(Expiry::AtUnixMillis(START - 1));
    db.put_with("k", "new", &past).await?;
    ensure!(db.get("k").await?.is_none());
    db.close().await?;
    Ok(())
}
