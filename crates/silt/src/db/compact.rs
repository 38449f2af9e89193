//! Running compactions: the background compactor, `Db::compact`, committing results
//! through the manifest (with the writer's fencing) and write stalls on a deep L0.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::{Db, DbInner};
use crate::error::{Error, Result};
use crate::lsm::compaction::{merge, pick, Job};
use crate::lsm::iter::ScanCtx;
use crate::lsm::run::RunHandle;
use crate::lsm::sst::SstHandle;
use crate::lsm::version::Version;

/// Pause before retrying a failed compaction.
const COMPACTION_RETRY: Duration = Duration::from_secs(1);

/// Delay per write while L0 is at or above `l0_slowdown`.
const SLOWDOWN_DELAY: Duration = Duration::from_millis(1);

impl DbInner {
    /// Live snapshot sequence numbers, newest first.
    fn snapshots_desc(&self) -> Vec<u64> {
        self.snapshots.lock().keys().rev().copied().collect()
    }

    /// Pick and run compactions until none is due. Returns how many ran.
    pub(crate) async fn compact_until_idle(&self, force: bool) -> Result<usize> {
        let _guard = self.compaction_lock.lock().await;
        let mut ran = 0;
        loop {
            self.check_open()?;
            let Some(job) = pick(
                &self.current(),
                &self.settings.compaction,
                force && ran == 0,
            ) else {
                return Ok(ran);
            };
            if let Err(e) = self.run_compaction(&job).await {
                if e.is_fenced() {
                    self.set_fatal(e.clone());
                }
                self.counters.compaction_failures.incr();
                return Err(e);
            }
            ran += 1;
        }
    }

    async fn run_compaction(&self, job: &Job) -> Result<()> {
        let started = self.clock.now();
        let ctx = ScanCtx {
            storage: self.storage.clone(),
            cache: self.cache.clone(),
            fill_cache: false,
        };
        let outputs: Mutex<Vec<Arc<SstHandle>>> = Mutex::new(Vec::new());
        // Output ids stay pending (safe from GC) until the commit below is done.
        let pending = Mutex::new(Vec::new());
        let snapshots = self.snapshots_desc();
        let stats = merge(
            ctx,
            job,
            &snapshots,
            self.clock.unix_millis(),
            &self.settings.sst,
            self.settings.compaction.target_sst_bytes,
            || {
                let (id, guard) = self.new_sst_id();
                pending.lock().push(guard);
                id
            },
            |mut out| {
                let outputs = &outputs;
                let pending = &pending;
                async move {
                    let renamed = self.upload_sst(&mut out.info, &out.data).await?;
                    pending.lock().extend(renamed);
                    let h = self.register_sst(SstHandle::from_bytes(
                        &self.storage,
                        out.info,
                        &out.data,
                    )?);
                    outputs.lock().push(h);
                    Ok(())
                }
            },
        )
        .await?;
        let outputs = outputs.into_inner();
        self.commit_compaction(job, outputs).await?;
        drop(pending);
        let c = &self.counters;
        c.compactions.incr();
        c.compaction_bytes_in.add(job.input_bytes());
        c.compaction_bytes_out.add(stats.bytes_out);
        c.compaction_expired.add(stats.expired);
        tracing::info!(
            reason = job.reason,
            l0 = job.l0.len(),
            runs = job.runs.len(),
            bytes_in = job.input_bytes(),
            bytes_out = stats.bytes_out,
            entries_in = stats.entries_in,
            entries_out = stats.entries_out,
            expired = stats.expired,
            ms = started.elapsed().as_millis() as u64,
            "compaction done"
        );
        self.compacted.notify_waiters();
        Ok(())
    }

    /// Replace the job's inputs by its output run in the manifest, then in the version.
    async fn commit_compaction(&self, job: &Job, outputs: Vec<Arc<SstHandle>>) -> Result<()> {
        let l0_ids: Vec<&str> = job.l0.iter().map(|s| &*s.id).collect();
        let run_ids: Vec<u64> = job.runs.iter().map(|r| r.id).collect();
        let mut m = self.manifest.lock().await;
        let mut next = m.clone();
        next.id += 1;
        let run_id = next.runs.iter().map(|r| r.id).max().unwrap_or(0) + 1;
        let new_run = (!outputs.is_empty()).then(|| {
            Arc::new(RunHandle {
                id: run_id,
                ssts: outputs,
            })
        });
        // Runs are contiguous and newest first: the output takes the newest input's place
        // (the front when only L0 is merged).
        let pos = job
            .runs
            .first()
            .and_then(|r| next.runs.iter().position(|x| x.id == r.id))
            .unwrap_or(0);
        next.l0.retain(|s| !l0_ids.contains(&s.id.as_str()));
        next.runs.retain(|r| !run_ids.contains(&r.id));
        if let Some(run) = &new_run {
            next.runs
                .insert(pos.min(next.runs.len()), run.to_manifest());
        }
        self.commit_manifest(&next).await?;
        *m = next;
        drop(m);

        let mut v = self.version.write();
        let mut nv = Version::clone(&v);
        nv.l0.retain(|s| !l0_ids.contains(&&*s.id));
        let vpos = job
            .runs
            .first()
            .and_then(|r| nv.runs.iter().position(|x| x.id == r.id))
            .unwrap_or(0);
        nv.runs.retain(|r| !run_ids.contains(&r.id));
        if let Some(run) = new_run {
            nv.runs.insert(vpos.min(nv.runs.len()), run);
        }
        *v = Arc::new(nv);
        Ok(())
    }
}

impl Db {
    /// Merge every L0 SST and sorted run into one run now (dropping versions no snapshot
    /// needs and, at the bottom, tombstones), then run GC.
    ///
    /// # Errors
    /// Store errors, [`Error::Fenced`], [`Error::ReadOnly`].
    pub async fn compact(&self) -> Result<()> {
        self.inner.check_open()?;
        if self.inner.wal.is_none() {
            return Err(Error::ReadOnly);
        }
        self.inner.compact_until_idle(true).await?;
        self.inner.gc_pass(None).await?;
        Ok(())
    }

    /// Slow writers down, then stop them, while L0 is too deep (compaction is behind).
    pub(super) async fn wait_for_l0(&self) -> Result<()> {
        let inner = &self.inner;
        let c = &inner.settings.compaction;
        if !c.enabled {
            return Ok(());
        }
        let mut slowed = false;
        let deadline = inner.clock.now() + inner.settings.store.retry.deadline;
        loop {
            let notified = inner.compacted.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            inner.check_open()?;
            let l0 = inner.current().l0.len();
            if l0 >= c.l0_stop {
                inner.counters.write_stops.incr();
                inner.compaction_wake.notify_one();
                tokio::select! {
                    () = notified => {}
                    () = inner.clock.sleep_until(deadline) => {
                        // Compactions keep failing (see engine.compaction_failures).
                        return Err(Error::Timeout {
                            what: "a write stalled on a deep L0 (compactions are failing)",
                            waited: inner.settings.store.retry.deadline,
                        });
                    }
                }
                continue;
            }
            if l0 >= c.l0_slowdown && !slowed {
                slowed = true;
                inner.counters.write_slowdowns.incr();
                inner.compaction_wake.notify_one();
                inner
                    .clock
                    .sleep_until(inner.clock.now() + SLOWDOWN_DELAY)
                    .await;
                continue;
            }
            return Ok(());
        }
    }
}

/// Background task: compact whenever woken (after flushes), until shutdown.
pub(crate) async fn run_compactor(inner: Arc<DbInner>, mut shutdown: watch::Receiver<bool>) {
    loop {
        match inner.compact_until_idle(false).await {
            Ok(n) if n > 0 => {
                if let Err(e) = inner.gc_pass(None).await {
                    tracing::warn!(error = %e, "GC after compaction failed");
                }
            }
            Ok(_) => {}
            Err(e) if e.is_fenced() => return,
            Err(e) => {
                if inner.check_open().is_err() {
                    return;
                }
                // Transient store trouble: retry after a pause, not only at the next flush
                // (writers stalled on a deep L0 produce no flushes to wake us).
                tracing::warn!(error = %e, "compaction failed; retrying in 1 s");
                let deadline = inner.clock.now() + COMPACTION_RETRY;
                tokio::select! {
                    () = inner.clock.sleep_until(deadline) => continue,
                    changed = shutdown.changed() => {
                        if changed.is_err() || *shutdown.borrow() {
                            return;
                        }
                    }
                }
            }
        }
        tokio::select! {
            () = inner.compaction_wake.notified() => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}
