//! Merging iteration over memtables, L0 SSTs and sorted runs.
//!
//! [`MergeIter`] yields every version in internal order (user key asc, seq desc); scans
//! ([`DbIterator`]) hide versions newer than their snapshot, older versions and tombstones;
//! compaction filters versions by the live snapshots instead.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use silt_format::block::BlockIter;
use silt_format::{cmp_internal, Entry, SeqNo};

use super::cache::BlockCache;
use super::run::RunHandle;
use super::sst::SstHandle;
use super::version::Version;
use crate::error::{Error, Result};
use crate::memtable::{InternalKey, Memtable};
use crate::objstore::Storage;

/// Bytes of data blocks a cache-bypassing reader (compaction) fetches per GET.
const READAHEAD_BYTES: u64 = 1024 * 1024;

/// Entries copied out of a memtable per refill.
const MEM_BATCH: usize = 128;

/// A key range for scans.
#[derive(Clone, Debug)]
pub(crate) struct KeyRange {
    pub start: Bound<Bytes>,
    pub end: Bound<Bytes>,
}

impl KeyRange {
    pub fn all() -> Self {
        KeyRange {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
        }
    }

    fn before_start(&self, key: &[u8]) -> bool {
        match &self.start {
            Bound::Included(s) => key < s.as_ref(),
            Bound::Excluded(s) => key <= s.as_ref(),
            Bound::Unbounded => false,
        }
    }

    fn past_end(&self, key: &[u8]) -> bool {
        match &self.end {
            Bound::Included(e) => key > e.as_ref(),
            Bound::Excluded(e) => key >= e.as_ref(),
            Bound::Unbounded => false,
        }
    }

    fn start_ref(&self) -> Bound<&[u8]> {
        match &self.start {
            Bound::Included(s) => Bound::Included(s.as_ref()),
            Bound::Excluded(s) => Bound::Excluded(s.as_ref()),
            Bound::Unbounded => Bound::Unbounded,
        }
    }

    fn overlaps(&self, smallest: &[u8], largest: &[u8]) -> bool {
        !self.past_end(smallest) && !self.before_start(largest)
    }
}

/// Shared context of an iteration.
#[derive(Debug, Clone)]
pub(crate) struct ScanCtx {
    pub storage: Storage,
    pub cache: BlockCache,
    /// Cache blocks read by this iteration (false for compaction, which reads each once).
    pub fill_cache: bool,
}

#[derive(Debug)]
struct MemSource {
    mem: Arc<Memtable>,
    buf: VecDeque<Entry>,
    cursor: Option<InternalKey>,
    exhausted: bool,
}

/// Reads one SST's blocks in order from the range start.
#[derive(Debug)]
struct SstCursor {
    sst: Arc<SstHandle>,
    next_block: usize,
    iter: Option<BlockIter>,
    /// The first block read must be positioned at the range start.
    seek_pending: bool,
    /// Blocks read ahead (sequential readers that bypass the cache).
    ahead: VecDeque<silt_format::block::Block>,
    /// A corrupt entry ends this cursor: the error is returned again on every call, so a
    /// retry cannot skip the rest of the block.
    corrupt: Option<Error>,
}

impl SstCursor {
    fn new(sst: Arc<SstHandle>, range: &KeyRange) -> Self {
        let n = sst.index().entries().len();
        let next_block = match &range.start {
            Bound::Included(k) => sst.index().find(k, SeqNo::MAX).unwrap_or(n),
            Bound::Excluded(k) => sst.index().find(k, 0).unwrap_or(n),
            Bound::Unbounded => 0,
        };
        SstCursor {
            sst,
            next_block,
            iter: None,
            seek_pending: true,
            ahead: VecDeque::new(),
            corrupt: None,
        }
    }

    /// The next entry. A failed block fetch leaves the cursor where it was (calling again
    /// retries the fetch); a corrupt entry is returned for good.
    async fn next(&mut self, ctx: &ScanCtx, range: &KeyRange) -> Result<Option<Entry>> {
        if let Some(e) = &self.corrupt {
            return Err(e.clone());
        }
        loop {
            if let Some(it) = &mut self.iter {
                match it.next() {
                    Some(Ok(e)) => return Ok((!range.past_end(&e.key)).then_some(e)),
                    Some(Err(e)) => {
                        let e = Error::corrupt(self.sst.path().to_string(), e);
                        self.corrupt = Some(e.clone());
                        return Err(e);
                    }
                    None => self.iter = None,
                }
            }
            if self.next_block >= self.sst.index().entries().len() {
                return Ok(None);
            }
            let block = if ctx.fill_cache {
                self.sst
                    .block(&ctx.storage, &ctx.cache, self.next_block)
                    .await?
            } else {
                if self.ahead.is_empty() {
                    self.ahead = self
                        .sst
                        .blocks_readahead(
                            &ctx.storage,
                            &ctx.cache,
                            self.next_block,
                            READAHEAD_BYTES,
                        )
                        .await?
                        .into();
                }
                match self.ahead.pop_front() {
                    Some(b) => b,
                    None => return Ok(None),
                }
            };
            let seek = std::mem::take(&mut self.seek_pending);
            self.next_block += 1;
            self.iter = Some(match (&range.start, seek) {
                (Bound::Included(k), true) => block.iter_from(k, SeqNo::MAX),
                (Bound::Excluded(k), true) => block.iter_from(k, 0),
                _ => block.iter(),
            });
        }
    }
}

/// Reads a sorted run's SSTs one after another.
#[derive(Debug)]
struct RunCursor {
    run: Arc<RunHandle>,
    next_sst: usize,
    current: Option<SstCursor>,
}

#[derive(Debug)]
enum Source {
    Mem(MemSource),
    Sst(SstCursor),
    Run(RunCursor),
}

impl Source {
    async fn next(&mut self, ctx: &ScanCtx, range: &KeyRange) -> Result<Option<Entry>> {
        match self {
            Source::Mem(m) => {
                if m.buf.is_empty() && !m.exhausted {
                    let batch =
                        m.mem
                            .entries_after(m.cursor.as_ref(), range.start_ref(), MEM_BATCH);
                    if batch.len() < MEM_BATCH {
                        m.exhausted = true;
                    }
                    if let Some(last) = batch.last() {
                        m.cursor = Some(InternalKey::new(last.key.clone(), last.seq));
                    }
                    m.buf.extend(batch);
                }
                Ok(m.buf.pop_front().filter(|e| !range.past_end(&e.key)))
            }
            Source::Sst(s) => s.next(ctx, range).await,
            Source::Run(r) => loop {
                if let Some(cur) = &mut r.current {
                    if let Some(e) = cur.next(ctx, range).await? {
                        return Ok(Some(e));
                    }
                    r.current = None;
                }
                let Some(sst) = r.run.ssts.get(r.next_sst) else {
                    return Ok(None);
                };
                if range.past_end(&sst.info.props.smallest_key) {
                    return Ok(None);
                }
                r.next_sst += 1;
                r.current = Some(SstCursor::new(Arc::clone(sst), range));
            },
        }
    }
}

/// Every version from a set of sources, in internal order.
///
/// An error from a source (a failed block GET) leaves the merge where it was: the next
/// call retries that source and goes on exactly from there, never skipping the entries
/// behind the failure. (The same holds if a `next` future is dropped mid-way.)
#[derive(Debug)]
pub(crate) struct MergeIter {
    ctx: ScanCtx,
    range: KeyRange,
    sources: Vec<Source>,
    heads: Vec<Option<Entry>>,
    /// Sources whose first head is loaded (`0..loaded`).
    loaded: usize,
    /// The entry picked last, not yet returned because refilling its source's head
    /// (`refill`) failed or was interrupted.
    taken: Option<Entry>,
    refill: Option<usize>,
}

impl MergeIter {
    fn new(ctx: ScanCtx, range: KeyRange) -> Self {
        MergeIter {
            ctx,
            range,
            sources: Vec::new(),
            heads: Vec::new(),
            loaded: 0,
            taken: None,
            refill: None,
        }
    }

    fn add(&mut self, s: Source) {
        self.sources.push(s);
        self.heads.push(None);
    }

    pub fn add_memtable(&mut self, mem: &Arc<Memtable>) {
        self.add(Source::Mem(MemSource {
            mem: Arc::clone(mem),
            buf: VecDeque::new(),
            cursor: None,
            exhausted: false,
        }));
    }

    pub fn add_sst(&mut self, sst: &Arc<SstHandle>) {
        let p = &sst.info.props;
        if self.range.overlaps(&p.smallest_key, &p.largest_key) {
            self.add(Source::Sst(SstCursor::new(Arc::clone(sst), &self.range)));
        }
    }

    pub fn add_run(&mut self, run: &Arc<RunHandle>) {
        let next_sst = match &self.range.start {
            Bound::Included(k) | Bound::Excluded(k) => run.find(k),
            Bound::Unbounded => 0,
        };
        self.add(Source::Run(RunCursor {
            run: Arc::clone(run),
            next_sst,
            current: None,
        }));
    }

    /// A merge over everything in `version`.
    pub fn over_version(ctx: ScanCtx, version: &Version, range: KeyRange) -> Self {
        let mut m = MergeIter::new(ctx, range);
        for mem in std::iter::once(&version.active).chain(version.frozen.iter()) {
            m.add_memtable(mem);
        }
        for sst in &version.l0 {
            m.add_sst(sst);
        }
        for run in &version.runs {
            m.add_run(run);
        }
        m
    }

    /// A merge over SSTs and runs only (compaction input).
    pub fn over_tables(ctx: ScanCtx, l0: &[Arc<SstHandle>], runs: &[Arc<RunHandle>]) -> Self {
        let mut m = MergeIter::new(ctx, KeyRange::all());
        for sst in l0 {
            m.add_sst(sst);
        }
        for run in runs {
            m.add_run(run);
        }
        m
    }

    /// The next version in internal order, within the range.
    pub async fn next(&mut self) -> Result<Option<Entry>> {
        // A head is stored only once its source returned it, so an error (or a dropped
        // future) before that leaves the state as it was and the call can be repeated.
        while self.loaded < self.sources.len() {
            let i = self.loaded;
            self.heads[i] = self.sources[i].next(&self.ctx, &self.range).await?;
            self.loaded += 1;
        }
        loop {
            if let Some(i) = self.refill {
                self.heads[i] = self.sources[i].next(&self.ctx, &self.range).await?;
                self.refill = None;
                if let Some(e) = self.taken.take() {
                    if !self.range.before_start(&e.key) {
                        return Ok(Some(e));
                    }
                }
            }
            let mut best: Option<(usize, &Entry)> = None;
            for (i, h) in self.heads.iter().enumerate() {
                let Some(e) = h else { continue };
                if best.is_none_or(|(_, b)| cmp_internal(&e.key, e.seq, &b.key, b.seq).is_lt()) {
                    best = Some((i, e));
                }
            }
            let Some((i, _)) = best else { return Ok(None) };
            let Some(e) = self.heads[i].take() else {
                return Ok(None);
            };
            // Returned once source `i` has its next head (top of the loop).
            self.taken = Some(e);
            self.refill = Some(i);
        }
    }
}

/// Ordered iterator over live key/value pairs in a range at a snapshot. Deleted keys,
/// versions newer than the snapshot, and values whose expiry had come when the iterator
/// was made are hidden.
#[derive(Debug)]
pub struct DbIterator {
    merge: MergeIter,
    seq: SeqNo,
    /// Unix milliseconds at which expiries are judged.
    now: u64,
    last_key: Option<Bytes>,
    _pin: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl DbIterator {
    pub(crate) fn new(
        ctx: ScanCtx,
        version: &Version,
        range: KeyRange,
        seq: SeqNo,
        now: u64,
        pin: Option<Arc<dyn std::any::Any + Send + Sync>>,
    ) -> Self {
        DbIterator {
            merge: MergeIter::over_version(ctx, version, range),
            seq,
            now,
            last_key: None,
            _pin: pin,
        }
    }

    /// The next live key and value, or `None` at the end of the range.
    ///
    /// # Errors
    /// Store errors and corrupt blocks met while reading SSTs. After a store error the
    /// iterator stays where it was: calling `next` again retries and goes on with exactly
    /// the key that was due, never skipping one. A corrupt block is returned again on
    /// every later call.
    pub async fn next(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        while let Some(e) = self.merge.next().await? {
            if e.seq > self.seq || self.last_key.as_ref() == Some(&e.key) {
                continue;
            }
            self.last_key = Some(e.key.clone());
            if let Some((value, _)) = crate::db::read::live(e.kind, e.value, self.now) {
                return Ok(Some((e.key, value)));
            }
        }
        Ok(None)
    }

    /// Collect up to `limit` pairs.
    ///
    /// # Errors
    /// As [`DbIterator::next`].
    pub async fn collect(mut self, limit: usize) -> Result<Vec<(Bytes, Bytes)>> {
        let mut out = Vec::new();
        while out.len() < limit {
            match self.next().await? {
                Some(kv) => out.push(kv),
                None => break,
            }
        }
        Ok(out)
    }
}
