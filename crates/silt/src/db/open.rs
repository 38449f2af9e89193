//! Opening: claim the writer role (manifest epoch + WAL fence), open SSTs, replay the WAL.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use super::builder::DbBuilder;
use super::tasks::Tasks;
use super::{Db, DbInner};
use crate::error::Result;
use crate::lsm::cache::BlockCache;
use crate::lsm::disk_cache::DiskCache;
use crate::lsm::run::RunHandle;
use crate::lsm::sst::SstHandle;
use crate::lsm::version::Version;
use crate::manifest;
use crate::memtable::Memtable;
use crate::wal::remote::{run_flusher, RemoteWal, WalStart};
use crate::wal::replay::{fence, replay};

/// SSTs opened at once.
const OPEN_CONCURRENCY: usize = 8;

pub(super) async fn open(b: DbBuilder) -> Result<Db> {
    b.settings.validate()?;
    let (storage, store_metrics) = b.storage();
    let DbBuilder {
        settings,
        clock,
        read_only,
        ..
    } = b;
    let (manifest, fence_id) = if read_only {
        (
            manifest::load_latest(&storage).await?.unwrap_or_default(),
            None,
        )
    } else {
        let m = manifest::claim_writer(&storage).await?;
        let f = fence(
            &storage,
            clock.as_ref(),
            m.writer_epoch,
            m.wal_replay_from,
            settings.wal.upload_retries,
        )
        .await?;
        (m, Some(f))
    };
    tracing::info!(
        manifest = manifest.id,
        epoch = manifest.writer_epoch,
        read_only,
        "opening database"
    );

    let registry = Mutex::new(std::collections::HashMap::new());
    let open_sst = |info| {
        let storage = &storage;
        let registry = &registry;
        async move {
            let h = Arc::new(SstHandle::open(storage, info).await?);
            registry
                .lock()
                .insert(Arc::clone(&h.id), Arc::downgrade(&h));
            Ok::<_, crate::Error>(h)
        }
    };
    let l0: Vec<Arc<SstHandle>> = futures::stream::iter(manifest.l0.clone())
        .map(open_sst)
        .buffered(OPEN_CONCURRENCY)
        .try_collect()
        .await?;
    let mut runs = Vec::with_capacity(manifest.runs.len());
    for run in &manifest.runs {
        let ssts: Vec<Arc<SstHandle>> = futures::stream::iter(run.ssts.clone())
            .map(open_sst)
            .buffered(OPEN_CONCURRENCY)
            .try_collect()
            .await?;
        runs.push(Arc::new(RunHandle { id: run.id, ssts }));
    }

    let mem = Arc::new(Memtable::new());
    let replayed = replay(
        &storage,
        manifest.wal_replay_from.max(1),
        fence_id,
        manifest.last_flushed_seq,
        &mem,
    )
    .await?;
    let sst_max = manifest
        .l0
        .iter()
        .chain(manifest.runs.iter().flat_map(|r| r.ssts.iter()))
        .map(|i| i.props.max_seq)
        .max()
        .unwrap_or(0);
    let last_seq = replayed.max_seq.max(manifest.last_flushed_seq).max(sst_max);
    tracing::info!(
        segments = replayed.segments.len(),
        ops = replayed.ops,
        last_seq,
        "replayed WAL"
    );

    let wal = fence_id.map(|fence_id| {
        let mut segments: BTreeMap<u64, u64> = replayed.segments;
        segments.insert(fence_id, 0);
        RemoteWal::new(
            storage.clone(),
            settings.wal.clone(),
            Arc::clone(&clock),
            WalStart {
                epoch: manifest.writer_epoch,
                next_id: fence_id + 1,
                durable_seq: last_seq,
                segments,
            },
        )
    });

    let disk_cache = match &settings.cache.disk_dir {
        Some(dir) => Some(DiskCache::open(dir, settings.cache.disk_bytes)?),
        None => None,
    };
    let mut version = Version::new(Arc::clone(&mem), l0, runs);
    if !read_only && mem.size_bytes() >= settings.memtable_bytes {
        version.frozen.push(mem);
        version.active = Arc::new(Memtable::new());
    }
    let inner = Arc::new(DbInner {
        storage,
        cache: BlockCache::new(settings.block_cache_bytes, disk_cache),
        settings,
        clock,
        wal,
        write_lock: Mutex::new(last_seq + 1),
        visible_seq: AtomicU64::new(last_seq),
        version: RwLock::new(Arc::new(version)),
        manifest: tokio::sync::Mutex::new(manifest),
        flush_lock: tokio::sync::Mutex::new(()),
        flush_wake: Notify::new(),
        frozen_space: Notify::new(),
        snapshots: Mutex::new(BTreeMap::new()),
        fatal: Mutex::new(None),
        closed: AtomicBool::new(false),
        compaction_wake: Notify::new(),
        compacted: Notify::new(),
        compaction_lock: tokio::sync::Mutex::new(()),
        sst_registry: registry,
        pending_ssts: Arc::default(),
        _live: crate::live::LiveToken::new(crate::live::Kind::Db),
        counters: Arc::default(),
        store_metrics,
    });
    let tasks = Tasks::new();
    if let Some(wal) = &inner.wal {
        tasks.spawn(
            "wal-flusher",
            run_flusher(Arc::clone(&wal.sh), tasks.shutdown_signal()),
        );
        tasks.spawn(
            "memtable-flusher",
            super::flush::run_memtable_flusher(Arc::clone(&inner), tasks.shutdown_signal()),
        );
        if inner.settings.compaction.enabled {
            tasks.spawn(
                "compactor",
                super::compact::run_compactor(Arc::clone(&inner), tasks.shutdown_signal()),
            );
            inner.compaction_wake.notify_one();
        }
        if inner.settings.gc.enabled {
            tasks.spawn(
                "gc",
                super::gc::run_gc(Arc::clone(&inner), tasks.shutdown_signal()),
            );
        }
        inner.flush_wake.notify_one();
    }
    Ok(Db { inner, tasks })
}
