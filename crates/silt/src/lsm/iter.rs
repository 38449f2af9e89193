//! Merging scan over memtables and SSTs at a snapshot sequence number.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use silt_format::block::BlockIter;
use silt_format::{cmp_internal, Entry, SeqNo, ValueKind};

use super::cache::BlockCache;
use super::sst::SstHandle;
use super::version::Version;
use crate::error::{Error, Result};
use crate::memtable::{InternalKey, Memtable};
use crate::objstore::Storage;

/// Entries copied out of a memtable per refill.
const MEM_BATCH: usize = 128;

/// A key range for scans.
#[derive(Clone, Debug)]
pub(crate) struct KeyRange {
    pub start: Bound<Bytes>,
    pub end: Bound<Bytes>,
}

impl KeyRange {
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
}

#[derive(Debug)]
struct MemSource {
    mem: Arc<Memtable>,
    buf: VecDeque<Entry>,
    cursor: Option<InternalKey>,
    exhausted: bool,
}

#[derive(Debug)]
struct SstSource {
    sst: Arc<SstHandle>,
    next_block: usize,
    iter: Option<BlockIter>,
    /// The first block read must be positioned at the range start.
    seek_pending: bool,
}

#[derive(Debug)]
enum Source {
    Mem(MemSource),
    Sst(SstSource),
}

/// Shared context of a scan.
#[derive(Debug, Clone)]
pub(crate) struct ScanCtx {
    pub storage: Storage,
    pub cache: BlockCache,
}

impl Source {
    async fn next(&mut self, ctx: &ScanCtx, range: &KeyRange) -> Result<Option<Entry>> {
        match self {
            Source::Mem(m) => {
                if m.buf.is_empty() && !m.exhausted {
                    let batch = m.mem.entries_after(m.cursor.as_ref(), range.start_ref(), MEM_BATCH);
                    if batch.len() < MEM_BATCH {
                        m.exhausted = true;
                    }
                    if let Some(last) = batch.last() {
                        m.cursor = Some(InternalKey {
                            key: last.key.clone(),
                            seq: last.seq,
                        });
                    }
                    m.buf.extend(batch);
                }
                Ok(m.buf.pop_front().filter(|e| !range.past_end(&e.key)))
            }
            Source::Sst(s) => loop {
                if let Some(it) = &mut s.iter {
                    match it.next() {
                        Some(Ok(e)) => {
                            return Ok((!range.past_end(&e.key)).then_some(e));
                        }
                        Some(Err(e)) => return Err(Error::corrupt(s.sst.path().to_string(), e)),
                        None => s.iter = None,
                    }
                }
                if s.next_block >= s.sst.index().entries().len() {
                    return Ok(None);
                }
                let block = s.sst.block(&ctx.storage, &ctx.cache, s.next_block).await?;
                let seek = std::mem::take(&mut s.seek_pending);
                s.next_block += 1;
                s.iter = Some(match (&range.start, seek) {
                    (Bound::Included(k), true) => block.iter_from(k, SeqNo::MAX),
                    (Bound::Excluded(k), true) => block.iter_from(k, 0),
                    _ => block.iter(),
                });
            },
        }
    }
}

fn first_block(sst: &SstHandle, range: &KeyRange) -> usize {
    let n = sst.index().entries().len();
    match &range.start {
        Bound::Included(k) => sst.index().find(k, SeqNo::MAX).unwrap_or(n),
        Bound::Excluded(k) => sst.index().find(k, 0).unwrap_or(n),
        Bound::Unbounded => 0,
    }
}

/// Ordered iterator over live key/value pairs in a range at a snapshot. Deleted keys and
/// versions newer than the snapshot are hidden.
#[derive(Debug)]
pub struct DbIterator {
    ctx: ScanCtx,
    range: KeyRange,
    seq: SeqNo,
    sources: Vec<Source>,
    heads: Vec<Option<Entry>>,
    last_key: Option<Bytes>,
    started: bool,
    _pin: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl DbIterator {
    pub(crate) fn new(
        ctx: ScanCtx,
        version: &Version,
        range: KeyRange,
        seq: SeqNo,
        pin: Option<Arc<dyn std::any::Any + Send + Sync>>,
    ) -> Self {
        let mut sources = Vec::new();
        for mem in std::iter::once(&version.active).chain(version.frozen.iter()) {
            sources.push(Source::Mem(MemSource {
                mem: Arc::clone(mem),
                buf: VecDeque::new(),
                cursor: None,
                exhausted: false,
            }));
        }
        for sst in &version.l0 {
            if sst_overlaps(sst, &range) {
                let next_block = first_block(sst, &range);
                sources.push(Source::Sst(SstSource {
                    sst: Arc::clone(sst),
                    next_block,
                    iter: None,
                    seek_pending: true,
                }));
            }
        }
        let heads = sources.iter().map(|_| None).collect();
        DbIterator {
            ctx,
            range,
            seq,
            sources,
            heads,
            last_key: None,
            started: false,
            _pin: pin,
        }
    }

    /// The next live key and value, or `None` at the end of the range.
    ///
    /// # Errors
    /// Store errors and corrupt blocks met while reading SSTs.
    pub async fn next(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        if !self.started {
            self.started = true;
            for i in 0..self.sources.len() {
                self.heads[i] = self.sources[i].next(&self.ctx, &self.range).await?;
            }
        }
        loop {
            let mut best: Option<usize> = None;
            for (i, h) in self.heads.iter().enumerate() {
                let Some(e) = h else { continue };
                best = match best {
                    Some(b) => {
                        let Some(be) = &self.heads[b] else { continue };
                        if cmp_internal(&e.key, e.seq, &be.key, be.seq).is_lt() {
                            Some(i)
                        } else {
                            Some(b)
                        }
                    }
                    None => Some(i),
                };
            }
            let Some(i) = best else { return Ok(None) };
            let Some(e) = self.heads[i].take() else { return Ok(None) };
            self.heads[i] = self.sources[i].next(&self.ctx, &self.range).await?;
            if self.range.before_start(&e.key) || e.seq > self.seq {
                continue;
            }
            if self.last_key.as_ref() == Some(&e.key) {
                continue;
            }
            self.last_key = Some(e.key.clone());
            if e.kind == ValueKind::Put {
                return Ok(Some((e.key, e.value)));
            }
        }
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

fn sst_overlaps(sst: &SstHandle, range: &KeyRange) -> bool {
    let p = &sst.info.props;
    !range.past_end(&p.smallest_key) && !range.before_start(&p.largest_key)
}
