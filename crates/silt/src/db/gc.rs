//! Garbage collection of objects no manifest or checkpoint needs any more.
//!
//! Four rules (docs/ARCHITECTURE.md, "Compaction and garbage collection"):
//!
//! * **Only the owner deletes.** Each pass lists the WAL and SSTs first, then the
//!   manifests, then the checkpoints, and reads the newest manifest when it is newer than
//!   this writer's own. If a newer writer epoch wrote it, this process is fenced: it
//!   deletes nothing and the handle stops with `Fenced`. Listing manifests after the WAL
//!   and SSTs closes the race with a writer that claims the database during the pass: its
//!   new SSTs and WAL segments are created after its claim, so after the listings this
//!   pass deletes from.
//! * **Grace counts from replacement.** A manifest protects what it references until
//!   `gc.grace` has passed since its successor was stored (the successor's timestamp in
//!   the store), so a reader that opened a long-lived manifest keeps its SSTs and WAL for
//!   `gc.grace` after the manifest that superseded it. The newest manifest, and every
//!   manifest newer than the one this pass started from, always protect theirs.
//! * **Live checkpoints pin.** A checkpoint or reader lease (`checkpoints/`) that has not
//!   expired, or expired less than `gc.grace` ago, keeps the manifest it names, every SST
//!   that manifest references, and the WAL from its `wal_replay_from` on. One that expired
//!   longer ago protects nothing and its object is deleted. A checkpoint object that does
//!   not decode might pin any manifest: a pass that finds one deletes nothing at all.
//!   Checkpoints are listed after the manifests, and a checkpoint is only created while
//!   the manifest it pins is protected by another rule (the newest, replaced less than
//!   `gc.grace / 2` ago, or pinned by a live checkpoint), which its creator checks after
//!   storing it (`db/checkpoint.rs`). So a pass either lists the new checkpoint, or
//!   listed the checkpoints before it was stored, when that other rule, checked on this
//!   pass's earlier manifest listing, still held; the grace rule stays the second line
//!   of defence for clock skew between processes.
//! * SSTs must also be older than `gc.grace` (an SST is uploaded before the manifest that
//!   references it) and not held by any open handle or pending upload in this process.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectMeta;
use serde::Serialize;
use silt_format::manifest::{decode_manifest, manifest_is_torn};
use tokio::sync::watch;

use super::{Db, DbInner};
use crate::error::{Error, Result};

/// Deletions issued at once.
const DELETE_CONCURRENCY: usize = 8;

/// What GC needs from one (immutable) manifest.
#[derive(Debug)]
pub(crate) struct ManifestRefs {
    writer_epoch: u64,
    wal_replay_from: u64,
    ssts: Vec<String>,
}

impl ManifestRefs {
    fn of(m: &silt_format::manifest::Manifest) -> Self {
        ManifestRefs {
            writer_epoch: m.writer_epoch,
            wal_replay_from: m.wal_replay_from,
            ssts: m
                .l0
                .iter()
                .chain(m.runs.iter().flat_map(|r| r.ssts.iter()))
                .map(|s| s.id.clone())
                .collect(),
        }
    }
}

/// What one GC pass deleted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// WAL segments deleted.
    pub wal: usize,
    /// SSTs deleted.
    pub sst: usize,
    /// Manifests deleted.
    pub manifests: usize,
    /// Expired checkpoints and reader leases deleted (expired `gc.grace` ago or more).
    pub checkpoints: usize,
    /// Live checkpoints and leases found, whose objects the pass kept.
    pub live_checkpoints: usize,
    /// Checkpoint objects that failed to decode. When there is one, the pass deleted
    /// nothing: it cannot tell what such a checkpoint pins.
    pub corrupt_checkpoints: usize,
}

/// What one pass found in `checkpoints/`.
#[derive(Debug, Default)]
struct CheckpointScan {
    /// Manifest ids live checkpoints pin.
    pinned: HashSet<u64>,
    /// Live checkpoints.
    live: usize,
    /// Objects of checkpoints that expired `gc.grace` ago or more.
    expired: Vec<object_store::path::Path>,
    /// Objects that failed to decode.
    corrupt: usize,
}

impl DbInner {
    /// One GC pass; `grace` overrides `gc.grace`.
    ///
    /// # Errors
    /// Store errors; `Fenced` (and the handle stops) when a newer writer owns the database.
    pub(crate) async fn gc_pass(&self, grace: Option<Duration>) -> Result<GcReport> {
        let grace = grace.unwrap_or(self.settings.gc.grace);
        let now_ms = i64::try_from(self.clock.unix_millis()).unwrap_or(i64::MAX);
        let cutoff_ms = now_ms.saturating_sub(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
        let old = |m: &ObjectMeta| m.last_modified.timestamp_millis() < cutoff_ms;

        let current = self.manifest.lock().await.clone();
        // WAL and SSTs first, manifests last (see the module docs).
        let wal_listed = self.storage.list_numbered("wal", "wal").await?;
        let sst_listed = self.storage.list_meta("sst").await?;
        let mut manifests: Vec<(u64, ObjectMeta)> = self
            .storage
            .list_meta("manifest")
            .await?
            .into_iter()
            .filter_map(|m| Some((numbered(&m.location, "manifest")?, m)))
            .collect();
        manifests.sort_by_key(|(id, _)| *id);
        // Checkpoints after the manifests (see the module docs).
        let CheckpointScan {
            pinned,
            live: live_checkpoints,
            expired: expired_checkpoints,
            corrupt: corrupt_checkpoints,
        } = self.gc_checkpoints(now_ms, grace).await?;

        let mut needed_ssts: HashSet<String> = HashSet::new();
        let mut min_replay = current.wal_replay_from;
        let mut doomed_manifests = Vec::new();
        let mut recent: HashSet<u64> = HashSet::new();
        for (i, (id, meta)) in manifests.iter().enumerate() {
            // Protected while it is the newest, newer than our own, or replaced recently.
            let replaced_long_ago = manifests.get(i + 1).is_some_and(|(_, next)| old(next));
            if replaced_long_ago && *id < current.id && !pinned.contains(id) {
                doomed_manifests.push(meta.location.clone());
                continue;
            }
            recent.insert(*id);
            let Some(refs) = self.manifest_refs(*id, meta, current.id).await? else {
                continue;
            };
            if refs.writer_epoch > current.writer_epoch {
                let e = Error::Fenced(format!(
                    "manifest {id} belongs to writer epoch {} (this writer is epoch {}); \
                     garbage collection deleted nothing",
                    refs.writer_epoch, current.writer_epoch
                ));
                self.set_fatal(e.clone());
                return Err(e);
            }
            min_replay = min_replay.min(refs.wal_replay_from);
            needed_ssts.extend(refs.ssts.iter().cloned());
        }
        // Forget manifests that no longer protect anything (they are deleted or will be).
        self.gc_manifests.lock().retain(|id, _| recent.contains(id));
        needed_ssts.extend(current.l0.iter().map(|s| s.id.clone()));
        needed_ssts.extend(
            current
                .runs
                .iter()
                .flat_map(|r| r.ssts.iter().map(|s| s.id.clone())),
        );

        let wal: Vec<_> = wal_listed
            .into_iter()
            .filter(|l| l.id < min_replay)
            .map(|l| self.storage.wal_path(l.id))
            .collect();

        let in_use: HashSet<String> = {
            let mut reg = self.sst_registry.lock();
            reg.retain(|_, w| w.strong_count() > 0);
            let mut ids: HashSet<String> =
                reg.keys().map(std::string::ToString::to_string).collect();
            ids.extend(self.pending_ssts.lock().iter().cloned());
            ids
        };
        let ssts: Vec<_> = sst_listed
            .into_iter()
            .filter(|m| {
                let Some(name) = m.location.filename().and_then(|f| f.strip_suffix(".sst")) else {
                    return false;
                };
                old(m) && !needed_ssts.contains(name) && !in_use.contains(name)
            })
            .map(|m| m.location)
            .collect();

        for id in &pinned {
            if !recent.contains(id) {
                tracing::warn!(
                    manifest = id,
                    "a live checkpoint pins a manifest that is gone"
                );
            }
        }
        if corrupt_checkpoints > 0 {
            tracing::warn!(
                corrupt_checkpoints,
                "GC found checkpoint objects it cannot decode (they may pin any manifest): \
                 deleting nothing until they are repaired or removed"
            );
            self.counters.gc_passes.incr();
            self.counters.gc_blocked_by_corrupt_checkpoint.incr();
            return Ok(GcReport {
                live_checkpoints,
                corrupt_checkpoints,
                ..GcReport::default()
            });
        }
        let report = GcReport {
            wal: self.delete_all(wal).await?,
            sst: self.delete_all(ssts).await?,
            manifests: self.delete_all(doomed_manifests).await?,
            checkpoints: self.delete_all(expired_checkpoints).await?,
            live_checkpoints,
            corrupt_checkpoints: 0,
        };
        let c = &self.counters;
        c.gc_passes.incr();
        c.gc_deleted_wal.add(report.wal as u64);
        c.gc_deleted_sst.add(report.sst as u64);
        c.gc_deleted_manifest.add(report.manifests as u64);
        c.gc_deleted_checkpoint.add(report.checkpoints as u64);
        if report.wal + report.sst + report.manifests + report.checkpoints > 0 {
            tracing::info!(?report, "GC deleted obsolete objects");
        }
        Ok(report)
    }

    /// What the checkpoints pin (see [`CheckpointScan`]).
    async fn gc_checkpoints(&self, now_ms: i64, grace: Duration) -> Result<CheckpointScan> {
        let now_ms = u64::try_from(now_ms).unwrap_or(0);
        let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        let mut scan = CheckpointScan::default();
        for l in crate::checkpoint::list(&self.storage).await? {
            match l.checkpoint {
                Ok(cp) if cp.expired_at(now_ms.saturating_sub(grace_ms)) => {
                    tracing::info!(checkpoint = %l.name, "GC: checkpoint expired");
                    scan.expired.push(self.storage.checkpoint_path(&l.name));
                }
                Ok(cp) => {
                    scan.pinned.insert(cp.manifest_id);
                    scan.live += 1;
                }
                Err(e) => {
                    tracing::warn!(checkpoint = %l.name, error = %e, "GC: undecodable checkpoint");
                    scan.corrupt += 1;
                }
            }
        }
        Ok(scan)
    }

    /// What manifest `id` references; read once and remembered (manifests never change).
    /// `None` when it vanished since the listing, or when it is a torn manifest below the
    /// current one (`current`): opening skipped it, so nobody reads it and it protects
    /// nothing.
    async fn manifest_refs(
        &self,
        id: u64,
        meta: &ObjectMeta,
        current: u64,
    ) -> Result<Option<Arc<ManifestRefs>>> {
        if let Some(r) = self.gc_manifests.lock().get(&id).cloned() {
            return Ok(Some(r));
        }
        let Some(bytes) = self.storage.get_opt(&meta.location).await? else {
            return Ok(None);
        };
        if id < current && manifest_is_torn(&bytes) {
            tracing::debug!(manifest = id, "GC: torn manifest below the current one");
            return Ok(None);
        }
        let m =
            decode_manifest(&bytes).map_err(|e| Error::corrupt(meta.location.to_string(), e))?;
        let r = Arc::new(ManifestRefs::of(&m));
        self.gc_manifests.lock().insert(id, Arc::clone(&r));
        Ok(Some(r))
    }

    async fn delete_all(&self, paths: Vec<object_store::path::Path>) -> Result<usize> {
        let n = paths.len();
        futures::stream::iter(paths)
            .map(|p| async move { self.storage.delete(&p).await })
            .buffer_unordered(DELETE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(n)
    }
}

fn numbered(path: &object_store::path::Path, ext: &str) -> Option<u64> {
    path.filename()?
        .strip_suffix(&format!(".{ext}"))?
        .parse()
        .ok()
}

impl Db {
    /// Run one GC pass now. `grace` overrides `gc.grace` (e.g. `Some(Duration::ZERO)` when
    /// no other process reads the store).
    ///
    /// # Errors
    /// Store errors; [`Error::ReadOnly`] on a read-only handle.
    pub async fn gc(&self, grace: Option<Duration>) -> Result<GcReport> {
        self.inner.check_open()?;
        if self.inner.wal.is_none() {
            return Err(Error::ReadOnly);
        }
        self.inner.gc_pass(grace).await
    }
}

/// Background task: a GC pass every `gc.interval`.
pub(crate) async fn run_gc(inner: Arc<DbInner>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let deadline = inner.clock.now() + inner.settings.gc.interval;
        tokio::select! {
            () = inner.clock.sleep_until(deadline) => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
        if inner.check_open().is_err() {
            return;
        }
        if let Err(e) = inner.gc_pass(None).await {
            tracing::warn!(error = %e, "GC pass failed");
        }
    }
}
