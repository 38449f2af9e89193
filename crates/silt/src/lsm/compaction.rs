//! Size-tiered compaction: choosing inputs, merging them with snapshot-aware version
//! dropping, and writing the output sorted run (see `docs/compaction.md`).

use std::sync::Arc;

use bytes::Bytes;
use silt_format::manifest::SstInfo;
use silt_format::sst::{SstBuilder, SstOptions};
use silt_format::{Entry, SeqNo, ValueKind};

use super::iter::{MergeIter, ScanCtx};
use super::run::RunHandle;
use super::sst::SstHandle;
use super::version::Version;
use crate::config::CompactionSettings;
use crate::error::{Error, Result};

/// What to merge. L0 inputs are every L0 SST at pick time; run inputs are contiguous,
/// newest first, so the output can take their place in recency order.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub l0: Vec<Arc<SstHandle>>,
    pub runs: Vec<Arc<RunHandle>>,
    /// The inputs include the oldest run: tombstones with nothing older can go.
    pub bottom: bool,
    pub reason: &'static str,
}

impl Job {
    pub fn input_bytes(&self) -> u64 {
        self.l0.iter().map(|s| s.info.size).sum::<u64>()
            + self.runs.iter().map(|r| r.size()).sum::<u64>()
    }
}

/// Choose the next compaction, if any. `force` merges everything into one run.
pub(crate) fn pick(v: &Version, s: &CompactionSettings, force: bool) -> Option<Job> {
    if force {
        if v.l0.is_empty() && v.runs.len() <= 1 {
            // One run (or nothing): still rewrite a single run to purge tombstones/versions.
            if v.runs.is_empty() {
                return None;
            }
        }
        return Some(Job {
            l0: v.l0.clone(),
            runs: v.runs.clone(),
            bottom: true,
            reason: "manual",
        });
    }
    if v.l0.len() >= s.l0_trigger {
        // L0 becomes a new run; it absorbs the newest runs that are not much larger than
        // what is merged so far (the size-ratio rule, with L0 as the newest run), and as
        // many more as it takes to keep at most `max_runs` runs. Without this, sustained
        // writes keep L0 at its trigger and the run count grows without bound.
        let mut acc: u64 = v.l0.iter().map(|s| s.info.size).sum();
        let mut k = 0;
        while k < v.runs.len() {
            let size = v.runs[k].size();
            let fits = size.saturating_mul(100) <= acc.saturating_mul(100 + s.size_ratio_percent);
            let too_many = v.runs.len() - k + 1 > s.max_runs;
            if !fits && !too_many {
                break;
            }
            acc += size;
            k += 1;
        }
        return Some(Job {
            l0: v.l0.clone(),
            runs: v.runs[..k].to_vec(),
            bottom: k == v.runs.len(),
            reason: "l0",
        });
    }
    let n = v.runs.len();
    if n < 2 {
        return None;
    }
    let sizes: Vec<u64> = v.runs.iter().map(|r| r.size()).collect();
    let oldest = sizes[n - 1].max(1);
    let newer: u64 = sizes[..n - 1].iter().sum();
    if n > s.max_runs || newer.saturating_mul(100) > oldest.saturating_mul(s.max_space_amp_percent)
    {
        return Some(Job {
            l0: Vec::new(),
            runs: v.runs.clone(),
            bottom: true,
            reason: "space-amp",
        });
    }
    let mut acc = sizes[0];
    let mut k = 1;
    while k < n && sizes[k].saturating_mul(100) <= acc.saturating_mul(100 + s.size_ratio_percent) {
        acc += sizes[k];
        k += 1;
    }
    (k >= s.min_merge_width).then(|| Job {
        l0: Vec::new(),
        runs: v.runs[..k].to_vec(),
        bottom: k == n,
        reason: "size-ratio",
    })
}

/// Turn the puts among `versions` whose expiry has come by `now` (Unix milliseconds) into
/// tombstones, and return how many. A reader judges expiry at its own time, never earlier
/// than `now`, so it sees such a put exactly as a tombstone: [`retain_versions`] then drops
/// it, and what it hides, as it drops deletes.
pub(crate) fn expire_versions(versions: &mut [Entry], now: u64) -> u64 {
    let mut expired = 0;
    for v in versions.iter_mut() {
        if v.expires_at().is_some_and(|at| at <= now) {
            v.kind = ValueKind::Delete;
            v.value = Bytes::new();
            expired += 1;
        }
    }
    expired
}

/// Keep, of one key's versions (newest first), the newest one and the newest visible to
/// each live snapshot; at the bottom, drop tombstones that nothing older is left under.
pub(crate) fn retain_versions(versions: &mut Vec<Entry>, snapshots_desc: &[SeqNo], bottom: bool) {
    let mut kept: Vec<Entry> = Vec::with_capacity(2);
    for bound in std::iter::once(SeqNo::MAX).chain(snapshots_desc.iter().copied()) {
        if let Some(v) = versions.iter().find(|v| v.seq <= bound) {
            if kept.last().is_none_or(|k| k.seq != v.seq) {
                kept.push(v.clone());
            }
        }
    }
    if bottom {
        while kept.last().is_some_and(|k| k.kind == ValueKind::Delete) {
            kept.pop();
        }
    }
    *versions = kept;
}

/// One output SST, encoded.
#[derive(Debug)]
pub(crate) struct Output {
    pub info: SstInfo,
    pub data: Bytes,
}

/// Merge the job's inputs and hand each finished output SST to `emit` (which uploads it)
/// as soon as it reaches `target_sst_bytes`, so memory holds one output at a time.
#[expect(
    clippy::too_many_arguments,
    reason = "the job, its bounds and its two callbacks"
)]
pub(crate) async fn merge<F, Fut>(
    ctx: ScanCtx,
    job: &Job,
    snapshots_desc: &[SeqNo],
    now: u64,
    sst: &SstOptions,
    target_sst_bytes: usize,
    mut new_id: impl FnMut() -> String,
    mut emit: F,
) -> Result<CompactionStats>
where
    F: FnMut(Output) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut it = MergeIter::over_tables(ctx, &job.l0, &job.runs);
    let mut stats = CompactionStats::default();
    let mut builder: Option<SstBuilder> = None;
    let mut group: Vec<Entry> = Vec::new();
    loop {
        let next = it.next().await?;
        let boundary = match (&next, group.first()) {
            (Some(e), Some(g)) => e.key != g.key,
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if boundary {
            stats.entries_in += group.len() as u64;
            stats.expired += expire_versions(&mut group, now);
            retain_versions(&mut group, snapshots_desc, job.bottom);
            let b = builder.get_or_insert_with(|| SstBuilder::new(sst.clone()));
            for e in group.drain(..) {
                stats.entries_out += 1;
                b.add(&e.key, e.seq, e.kind, &e.value)
                    .map_err(|e| Error::Internal(format!("compaction order violated: {e}")))?;
            }
            if b.estimated_size() >= target_sst_bytes {
                if let Some(full) = builder.take() {
                    let out = finish(full, new_id())?;
                    stats.bytes_out += out.info.size;
                    emit(out).await?;
                }
            }
        }
        match next {
            Some(e) => group.push(e),
            None => break,
        }
    }
    if let Some(b) = builder.take() {
        if !b.is_empty() {
            let out = finish(b, new_id())?;
            stats.bytes_out += out.info.size;
            emit(out).await?;
        }
    }
    Ok(stats)
}

fn finish(b: SstBuilder, id: String) -> Result<Output> {
    let (data, props) = b
        .finish()
        .map_err(|e| Error::Internal(format!("cannot finish SST: {e}")))?;
    Ok(Output {
        info: SstInfo {
            id,
            size: data.len() as u64,
            props,
        },
        data,
    })
}

/// What one compaction did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CompactionStats {
    pub entries_in: u64,
    pub entries_out: u64,
    pub bytes_out: u64,
    /// Expired puts turned into tombstones (and dropped with them where nothing needs them).
    pub expired: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CompactionSettings;

    fn e(seq: SeqNo, put: bool) -> Entry {
        Entry {
            key: Bytes::from_static(b"k"),
            seq,
            kind: if put {
                ValueKind::Put
            } else {
                ValueKind::Delete
            },
            value: Bytes::new(),
        }
    }

    fn sst(size: u64) -> Arc<SstHandle> {
        let mem = crate::memtable::Memtable::new();
        mem.insert(
            Bytes::from_static(b"k"),
            1,
            ValueKind::Put,
            Bytes::from_static(b"v"),
        );
        let (data, info) =
            crate::lsm::flush::build_sst(&mem, &SstOptions::default(), "x".into()).unwrap();
        let storage = crate::objstore::Storage::new(
            Arc::new(object_store::memory::InMemory::new()),
            object_store::path::Path::from("db"),
        );
        let mut h = SstHandle::from_bytes(&storage, info, &data).unwrap();
        h.info.size = size;
        Arc::new(h)
    }

    fn version(l0: &[u64], runs: &[u64]) -> Version {
        let mut v = Version::new(
            Arc::new(crate::memtable::Memtable::new()),
            l0.iter().map(|s| sst(*s)).collect(),
            Vec::new(),
        );
        v.runs = runs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Arc::new(RunHandle {
                    id: i as u64,
                    ssts: vec![sst(*s)],
                })
            })
            .collect();
        v
    }

    #[test]
    fn l0_merges_absorb_small_runs_and_keep_the_run_count_bounded() {
        let s = CompactionSettings::default();
        // L0 of 4 x 10 absorbs the newest runs no more than twice the bytes merged so far.
        let job = pick(&version(&[10, 10, 10, 10], &[30, 100, 1000]), &s, false).unwrap();
        assert_eq!((job.l0.len(), job.runs.len(), job.bottom), (4, 2, false));
        // Many large runs (sustained writes): never more than max_runs afterwards.
        let runs: Vec<u64> = (0..12).map(|i| 1000 * 3u64.pow(i)).collect();
        let job = pick(&version(&[1, 1, 1, 1], &runs), &s, false).unwrap();
        assert_eq!(12 - job.runs.len() + 1, s.max_runs);
        assert!(!job.bottom);
        // Below the trigger with few runs: nothing to do.
        assert!(pick(&version(&[1, 1], &[1000]), &s, false).is_none());
    }

    fn seqs(v: &[Entry]) -> Vec<SeqNo> {
        v.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn keeps_newest_and_snapshot_versions() {
        let mut v = vec![e(9, true), e(7, true), e(5, true), e(2, true)];
        retain_versions(&mut v, &[], false);
        assert_eq!(seqs(&v), vec![9]);
        let mut v = vec![e(9, true), e(7, true), e(5, true), e(2, true)];
        retain_versions(&mut v, &[6, 3], false);
        assert_eq!(seqs(&v), vec![9, 5, 2]);
        let mut v = vec![e(9, true), e(7, true)];
        retain_versions(&mut v, &[8, 7], false);
        assert_eq!(seqs(&v), vec![9, 7]);
        let mut v = vec![e(9, true)];
        retain_versions(&mut v, &[1], false);
        assert_eq!(seqs(&v), vec![9]);
    }

    fn expiring(seq: SeqNo, at: u64) -> Entry {
        Entry {
            key: Bytes::from_static(b"k"),
            seq,
            kind: ValueKind::PutExpiring,
            value: Bytes::from(silt_format::encode_expiring(at, b"v")),
        }
    }

    #[test]
    fn expired_puts_become_tombstones_and_drop_at_the_bottom() {
        // Expires at 100: alive at 99, expired from 100 on.
        let mut v = vec![expiring(9, 100), e(4, true)];
        assert_eq!(expire_versions(&mut v, 99), 0);
        assert_eq!(v[0].kind, ValueKind::PutExpiring);
        assert_eq!(expire_versions(&mut v, 100), 1);
        assert_eq!(v[0].kind, ValueKind::Delete);
        assert!(v[0].value.is_empty());
        // It hides the older put like a delete: above the bottom the tombstone stays (an
        // older version may be in a lower run), at the bottom both go.
        let mut above = v.clone();
        retain_versions(&mut above, &[], false);
        assert_eq!(seqs(&above), vec![9]);
        assert_eq!(above[0].kind, ValueKind::Delete);
        retain_versions(&mut v, &[], true);
        assert!(v.is_empty());
        // One not yet expired is kept whole, with its expiry.
        let mut v = vec![expiring(9, 100), e(4, true)];
        expire_versions(&mut v, 50);
        retain_versions(&mut v, &[], true);
        assert_eq!(seqs(&v), vec![9]);
        assert_eq!(v[0].expires_at(), Some(100));
    }

    #[test]
    fn tombstones_drop_only_at_the_bottom() {
        let mut v = vec![e(9, false), e(4, true)];
        retain_versions(&mut v, &[], false);
        assert_eq!(seqs(&v), vec![9]);
        let mut v = vec![e(9, false), e(4, true)];
        retain_versions(&mut v, &[], true);
        assert!(v.is_empty());
        // A snapshot at 5 still sees the put at 4 under the tombstone.
        let mut v = vec![e(9, false), e(4, true)];
        retain_versions(&mut v, &[5], true);
        assert_eq!(seqs(&v), vec![9, 4]);
        // A snapshot sees a tombstone over an older put: the put goes, the tombstone
        // becomes the oldest kept version and goes too.
        let mut v = vec![e(9, true), e(6, false), e(3, true)];
        retain_versions(&mut v, &[7], true);
        assert_eq!(seqs(&v), vec![9]);
    }
}
