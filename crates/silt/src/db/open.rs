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
use crate::db::batch::Op;
use crate::error::Error;
use crate::error::Result;
use crate::lsm::cache::BlockCache;
use crate::lsm::disk_cache::DiskCache;
use crate::lsm::run::RunHandle;
use crate::lsm::sst::SstHandle;
use crate::lsm::version::Version;
use crate::manifest;
use crate::memtable::Memtable;
use crate::wal::local::owner::{self, Owner, PendingClaim};
use crate::wal::local::LocalLog;
use crate::wal::remote::{run_flusher, Durable, RemoteWal, WalStart};
use crate::wal::replay::{fence, replay};
use bytes::Bytes;
use silt_format::manifest::Manifest;
use silt_format::wal::WalRecord;
use silt_format::SeqNo;
use tokio::sync::watch;

/// SSTs opened at once.
const OPEN_CONCURRENCY: usize = 8;

/// Claims tried while older writers keep taking the claim's manifest id.
const CLAIM_ATTEMPTS: u32 = 8;

pub(super) async fn open(b: DbBuilder) -> Result<Db> {
    let mut lease = None;
    let opened = open_leased(b, &mut lease).await;
    if opened.is_err() {
        // A read-only open that failed after storing its lease takes it back (best effort:
        // it would expire anyway).
        if let Some((storage, name)) = lease {
            if let Err(e) = crate::checkpoint::delete(&storage, &name).await {
                tracing::warn!(lease = name, error = %e, "could not delete the lease of a failed open");
            }
        }
    }
    opened
}

/// Open; `stored_lease` is set once a read-only open has stored its lease.
async fn open_leased(
    b: DbBuilder,
    stored_lease: &mut Option<(crate::objstore::Storage, String)>,
) -> Result<Db> {
    b.settings.validate()?;
    if b.follower && b.at_checkpoint.is_some() {
        return Err(Error::InvalidInput(
            "a follower cannot open at a checkpoint (it follows the newest state)".into(),
        ));
    }
    let (storage, store_metrics) = b.storage();
    let promote = b.follower.then(|| b.writer_like());
    let DbBuilder {
        settings,
        clock,
        read_only,
        at_checkpoint,
        follower,
        ..
    } = b;
    // Local directories first: one another process uses (the local log's lock) or one
    // that is not ours (the disk cache's marker) stops the open before this writer fences
    // the live one.
    let disk_cache = match &settings.cache.disk_dir {
        Some(dir) => Some(DiskCache::open(dir, settings.cache.disk_bytes)?),
        None => None,
    };
    let (mut local, mut local_records) = match (&settings.local_log, read_only) {
        (Some(ls), false) => {
            let ls = ls.clone();
            let (log, records) = blocking(move || LocalLog::open(&ls)).await?;
            (Some(log), records)
        }
        _ => (None, Vec::new()),
    };
    let mut upto = None;
    let mut lease = None;
    let (manifest, fence_id) = if read_only {
        // Leased before its SSTs and WAL are read (see `db/checkpoint.rs`).
        let start = super::checkpoint::start_read_only(
            &storage,
            &settings,
            clock.as_ref(),
            at_checkpoint.as_deref(),
        )
        .await?;
        upto = start.upto;
        lease = start.lease;
        if follower && lease.is_none() {
            // An empty database: the follower leases the first manifest it finds.
            lease = Some(super::checkpoint::Lease::none_yet(
                settings.gc.lease_lifetime,
            ));
        }
        *stored_lease = lease
            .as_ref()
            .and_then(super::checkpoint::Lease::name)
            .map(|name| (storage.clone(), name));
        (start.manifest, None)
    } else {
        let mut attempt = 1;
        let m = loop {
            let (base, m) = manifest::prepare_claim(&storage).await?;
            if let (Some(log), Some(ls)) = (local.take(), &settings.local_log) {
                let (log, records) =
                    settle_local_owner(log, std::mem::take(&mut local_records), ls, &base, &m)
                        .await?;
                local = Some(log);
                local_records = records;
            }
            match manifest::write(&storage, &m).await {
                Ok(()) => break m,
                // The id went to an older writer still committing (a flush or compaction
                // of a handle this process just dropped, a zombie elsewhere): claim on top
                // of it; this claim fences it all the same. A writer of our epoch or newer
                // won the race: that one is fenced.
                Err(e) if e.is_fenced() && attempt < CLAIM_ATTEMPTS => {
                    let newest = manifest::load_latest(&storage).await?;
                    if newest.is_some_and(|n| n.writer_epoch >= m.writer_epoch) {
                        return Err(e);
                    }
                    attempt += 1;
                    tracing::info!(
                        attempt,
                        "an older writer took the claim's manifest id; claiming again"
                    );
                }
                Err(e) => return Err(e),
            }
        };
        if let Some(ls) = &settings.local_log {
            if local.is_some() {
                let dir = ls.dir.clone();
                let owner = Owner {
                    epoch: m.writer_epoch,
                    claim: None,
                };
                blocking(move || owner::write(&dir, &owner)).await?;
            }
        }
        let f = fence(
            &storage,
            clock.as_ref(),
            m.writer_epoch,
            m.wal_replay_from,
            &settings.store.retry,
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
    let sst_max = manifest
        .l0
        .iter()
        .chain(manifest.runs.iter().flat_map(|r| r.ssts.iter()))
        .map(|i| i.props.max_seq)
        .max()
        .unwrap_or(0);
    let base = manifest.last_flushed_seq.max(sst_max);
    // A follower tails the WAL with its first poll instead (below).
    let replayed = if follower {
        crate::wal::replay::Replayed {
            end: base,
            ..Default::default()
        }
    } else {
        replay(
            &storage,
            manifest.wal_replay_from.max(1),
            fence_id,
            base,
            upto,
            &mem,
        )
        .await?
    };
    let last_seq = match upto {
        Some(u) if replayed.end < u => {
            return Err(Error::corrupt(
                format!("checkpoint {}", at_checkpoint.as_deref().unwrap_or("")),
                silt_format::FormatError::corrupt(
                    "checkpoint",
                    format!(
                        "it reads up to sequence {u} but its SSTs and WAL end at {}",
                        replayed.end
                    ),
                ),
            ));
        }
        // Reads see nothing above the checkpoint (its SSTs may hold later writes).
        Some(u) => u,
        None => replayed.end,
    };
    if let Some(l) = &lease {
        l.set_seq(last_seq);
    }
    tracing::info!(
        segments = replayed.segments.len(),
        ops = replayed.ops,
        dropped = replayed.dropped.len(),
        last_seq,
        "replayed WAL"
    );

    let recovery_segments = replayed.segments.len() as u64;
    let wal = fence_id.map(|fence_id| {
        let mut segments: BTreeMap<u64, u64> = replayed.segments;
        segments.insert(fence_id, 0);
        RemoteWal::new(
            storage.clone(),
            settings.wal.clone(),
            settings.store.retry.clone(),
            settings.gc.grace / 2,
            Arc::clone(&clock),
            WalStart {
                epoch: manifest.writer_epoch,
                next_id: fence_id + 1,
                durable_seq: last_seq,
                segments,
            },
        )
    });

    // Local-log records the remote WAL lacks: into the memtable and the remote WAL.
    let mut last_seq = last_seq;
    let mut local_replayed = 0usize;
    if let Some(wal) = &wal {
        for rec in local_records {
            let ops: Vec<(SeqNo, Op)> = rec
                .ops
                .into_iter()
                .enumerate()
                .map(|(i, op)| {
                    let op = Op {
                        kind: op.kind,
                        key: Bytes::copy_from_slice(&op.key),
                        value: Bytes::copy_from_slice(&op.value),
                    };
                    (rec.first_seq + i as u64, op)
                })
                .filter(|(seq, _)| *seq > last_seq)
                .collect();
            let Some(&(first, _)) = ops.first() else {
                continue;
            };
            if first != last_seq + 1 {
                return Err(Error::corrupt(
                    "local log",
                    silt_format::FormatError::Corrupt {
                        what: "local log",
                        detail: format!(
                            "it resumes at sequence {first} but the remote WAL and SSTs end at {last_seq}: \
                             writes in between are missing"
                        ),
                    },
                ));
            }
            let ops: Vec<Op> = ops.into_iter().map(|(_, op)| op).collect();
            for (i, op) in ops.iter().enumerate() {
                mem.insert(op.key.clone(), first + i as u64, op.kind, op.value.clone());
            }
            wal.append(first, &ops)?;
            last_seq = first + ops.len() as u64 - 1;
            local_replayed += ops.len();
        }
        if local_replayed > 0 {
            tracing::info!(ops = local_replayed, last_seq, "replayed the local log");
        }
    }

    let mut version = Version::new(Arc::clone(&mem), l0, runs);
    if !read_only && mem.size_bytes() >= settings.memtable_bytes {
        version.frozen.push(mem);
        version.active = Arc::new(Memtable::new());
    }
    // Replayed writes count as written now for `wal.max_replay_age`.
    let active_since = (!version.active.is_empty()).then(|| clock.now());
    let follower_state =
        follower.then(|| super::follower::Follower::new(manifest.clone(), base, clock.now()));
    let inner = Arc::new(DbInner {
        storage,
        cache: BlockCache::new(
            settings.block_cache_bytes,
            disk_cache,
            settings.max_inflight_read_bytes,
        ),
        settings,
        clock,
        wal,
        local,
        write_lock: Mutex::new(last_seq + 1),
        visible_seq: AtomicU64::new(last_seq),
        version: RwLock::new(Arc::new(version)),
        manifest: tokio::sync::Mutex::new(manifest.clone()),
        flush_lock: tokio::sync::Mutex::new(()),
        flush_wake: Notify::new(),
        active_since: Mutex::new(active_since),
        frozen_space: Notify::new(),
        snapshots: Mutex::new(BTreeMap::new()),
        fatal: Mutex::new(None),
        closed: AtomicBool::new(false),
        compaction_wake: Notify::new(),
        compacted: Notify::new(),
        compaction_lock: tokio::sync::Mutex::new(()),
        sst_registry: registry,
        pending_ssts: Arc::default(),
        gc_manifests: Mutex::default(),
        lease,
        follower: follower_state,
        promote,
        _live: crate::live::LiveToken::new(crate::live::Kind::Db),
        counters: Arc::default(),
        store_metrics,
    });
    inner.counters.recovery_segments.add(recovery_segments);
    if inner.follower.is_some() {
        // Start caught up: the first poll replays the WAL past the replay point.
        if let Err(e) = inner.follower_catch_up().await {
            inner.release_lease().await;
            return Err(e);
        }
    }
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
        if inner.local.is_some() {
            tasks.spawn(
                "local-log-recycler",
                run_local_recycler(
                    Arc::clone(&inner),
                    wal.subscribe_durable(),
                    tasks.shutdown_signal(),
                ),
            );
        }
        inner.flush_wake.notify_one();
    } else {
        if inner.lease.is_some() {
            tasks.spawn(
                "lease-renewer",
                super::checkpoint::run_lease_renewer(Arc::clone(&inner), tasks.shutdown_signal()),
            );
        }
        if inner.follower.is_some() {
            tasks.spawn(
                "follower",
                super::follower::run_follower(Arc::clone(&inner), tasks.shutdown_signal()),
            );
        }
    }
    let db = Db { inner, tasks };
    if local_replayed > 0 {
        // Ship what only the local disk had before accepting new writes.
        if let Some(wal) = &db.inner.wal {
            wal.flush().await?;
        }
    }
    Ok(db)
}

/// Run blocking file work (the local log's) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("blocking local-log task failed: {e}")))?
}

/// Before the claim's PUT: decide whether the local log's records are this database's
/// latest history (`wal/local/owner.rs`) and record the claim in progress. Stale records
/// (another writer took over since they were written) are wiped, files and all, so no
/// later open can replay them on top of the newer writer's history.
async fn settle_local_owner(
    log: LocalLog,
    records: Vec<WalRecord>,
    ls: &crate::config::LocalLogSettings,
    base: &manifest::ClaimBase,
    claim: &Manifest,
) -> Result<(LocalLog, Vec<WalRecord>)> {
    let dir = ls.dir.clone();
    let owner = blocking(move || owner::read(&dir)).await?;
    let stale = owner.is_some_and(|o| !o.is_current(base.epoch, base.nonce));
    let (log, records, holder) = if stale {
        tracing::warn!(
            records = records.len(),
            dir = %ls.dir.display(),
            "the local log holds records of a writer that another writer replaced since: \
             wiping them"
        );
        drop(log);
        let ls = ls.clone();
        let (log, records) = blocking(move || {
            LocalLog::wipe(&ls.dir)?;
            LocalLog::open(&ls)
        })
        .await?;
        (log, records, base.epoch)
    } else {
        // A new directory (or one from before OWNER) holds the base's records, if any.
        let holder = owner.map_or(base.epoch, |o| o.epoch);
        (log, records, holder)
    };
    let pending = Owner {
        epoch: holder,
        claim: Some(PendingClaim {
            nonce: claim.writer_nonce,
            base_epoch: holder,
        }),
    };
    let dir = ls.dir.clone();
    blocking(move || owner::write(&dir, &pending)).await?;
    Ok((log, records))
}

/// Tell the local log what the remote WAL covers, so it can recycle files.
async fn run_local_recycler(
    inner: Arc<DbInner>,
    mut durable: watch::Receiver<Durable>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let seq = durable.borrow_and_update().seq;
        if let Some(local) = &inner.local {
            local.remote_covered(seq);
        }
        tokio::select! {
            changed = durable.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}
