//! Opening, using and dropping databases many times leaves no live engine objects behind
//! and no memory growth.
//!
//! This file holds a single test so no other database shares the process counters.

use std::sync::Arc;

use anyhow::{Context, Result};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;
use silt::{live_objects, Db, Durability, LiveObjects, Settings, WriteOptions};

async fn use_once(store: &Arc<dyn ObjectStore>, round: u32, close: bool) -> Result<()> {
    let db = Db::open_with_store(store.clone(), Path::from("db"), Settings::small_for_tests())
        .await
        .with_context(|| format!("round {round}: open"))?;
    let buffered = WriteOptions::with_durability(Durability::Buffered);
    for i in 0..200u32 {
        db.put_with(
            format!("k{:04}", (i * 7 + round) % 500),
            vec![b'v'; 64],
            &buffered,
        )
        .await
        .with_context(|| format!("round {round}: put_with k{:04}", (i * 7 + round) % 500))?;
    }
    db.put("last", "remote")
        .await
        .with_context(|| format!("round {round}: put last"))?;
    let snap = db.snapshot();
    let _ = snap
        .get("k0001")
        .await
        .with_context(|| format!("round {round}: snapshot get k0001"))?;
    let _ = db
        .scan_prefix("k00")
        .with_context(|| format!("round {round}: scan_prefix k00"))?
        .collect(50)
        .await
        .with_context(|| format!("round {round}: scan_prefix k00"))?;
    if round % 3 == 0 {
        db.flush_memtables()
            .await
            .with_context(|| format!("round {round}: flush_memtables"))?;
    }
    drop(snap);
    if close {
        db.close()
            .await
            .with_context(|| format!("round {round}: close"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_use_drop_leaves_nothing_alive() -> Result<()> {
    let zero = LiveObjects {
        databases: 0,
        memtables: 0,
        sst_handles: 0,
        wals: 0,
    };
    assert_eq!(live_objects(), zero);
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    // Warm up allocator pools and lazily initialised statics.
    for round in 0..5 {
        use_once(&store, round, true).await?;
    }
    let rss_start = silt_rss();
    for round in 5..60 {
        // Half the rounds drop without close: aborted tasks must release everything too.
        use_once(&store, round, round % 2 == 0).await?;
        // Aborted tasks finish dropping on the runtime; give them a turn.
        tokio::task::yield_now().await;
    }
    // Every background task of a dropped Db has been aborted; wait until they are gone.
    for _ in 0..1000 {
        if live_objects() == zero {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert_eq!(live_objects(), zero, "engine objects outlived their Db");
    if let (Some(a), Some(b)) = (rss_start, silt_rss()) {
        let growth = b.saturating_sub(a);
        assert!(
            growth < 64 * 1024 * 1024,
            "resident memory grew {growth} bytes over 55 open/use/drop rounds"
        );
    }
    Ok(())
}

fn silt_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}
