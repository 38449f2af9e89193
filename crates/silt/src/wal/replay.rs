//! Recovery of the remote WAL: fence older writers, then replay segments past the
//! manifest's replay point into a memtable.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use silt_format::wal::{decode_segment, encode_segment, WalSegment, WalSegmentHeader};
use silt_format::SeqNo;

use super::remote::{upload_segment, UploadError, UploadPolicy};
use std::time::Duration;

use crate::clock::Clock;
use crate::config::RetrySettings;
use crate::error::{Error, Result};
use crate::memtable::Memtable;
use crate::objstore::Storage;

/// Segments fetched at once during replay.
const REPLAY_CONCURRENCY: usize = 8;

/// What replay found.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    /// Replayed segment ids (fences included) and their last sequence numbers.
    pub segments: BTreeMap<u64, SeqNo>,
    /// End of the recovered contiguous prefix: every sequence `<= end` is in SSTs or was
    /// replayed, and nothing above it was.
    pub end: SeqNo,
    /// Operations inserted into the memtable.
    pub ops: u64,
    /// Segments dropped because they lie past a sequence gap.
    pub dropped: Vec<u64>,
    /// Segments skipped as a fenced writer's late uploads.
    pub fenced: Vec<u64>,
}

/// Write an empty segment carrying `epoch` at the first free id `>= from`. Any older writer
/// that later tries to upload that id fails and learns it is fenced. Returns the fence's id.
pub(crate) async fn fence(
    storage: &Storage,
    clock: &dyn Clock,
    epoch: u64,
    from: u64,
    retry: &RetrySettings,
) -> Result<u64> {
    // An open waits out store trouble up to the deadline (the storage's own retries),
    // then fails with it.
    let policy = UploadPolicy {
        retry,
        give_up_after: Some(Duration::ZERO),
        verify_owner_after: Duration::MAX,
        retries: None,
    };
    let header = WalSegmentHeader {
        writer_epoch: epoch,
        first_seq: 1,
        last_seq: 0,
        record_count: 0,
        body_len: 0,
    };
    let data = encode_segment(&header, &[]);
    let fence_id = loop {
        let listed = storage.list_numbered("wal", "wal").await?;
        let id = listed.last().map_or(from, |l| (l.id + 1).max(from));
        match upload_segment(storage, clock, id, &data, epoch, &policy).await {
            Ok(()) => break id,
            Err(UploadError::IdTaken) => {}
            Err(UploadError::Fatal(e)) => return Err(e),
        }
    };
    // A newer writer that claimed the manifest after us may have fenced below our fence
    // before we listed: then nothing above would ever stop this writer's uploads (which
    // replay skips as an older epoch). Its claim precedes its fence, so it is visible now.
    if let Some(m) = crate::manifest::load_latest(storage).await? {
        if m.writer_epoch > epoch {
            return Err(Error::Fenced(format!(
                "writer epoch {} claimed the database (this writer is epoch {epoch})",
                m.writer_epoch
            )));
        }
    }
    // An older writer may still have uploads in flight for ids below the fence (it
    // uploads several segments at once). Fill every gap with a fence segment too: either
    // ours lands first and that upload fails (so the older writer never acknowledges it),
    // or theirs already landed and replay picks it up.
    let listed = storage.list_numbered("wal", "wal").await?;
    let present: std::collections::BTreeSet<u64> = listed.iter().map(|l| l.id).collect();
    for gap in (from..fence_id).filter(|id| !present.contains(id)) {
        match upload_segment(storage, clock, gap, &data, epoch, &policy).await {
            Ok(()) | Err(UploadError::IdTaken) => {}
            Err(UploadError::Fatal(e)) => return Err(e),
        }
    }
    Ok(fence_id)
}

/// Replay segments with ids in `[from, until)` (all from `from` when `until` is None) into
/// `mem`: the contiguous sequence prefix that follows `base` (every sequence `<= base` is in
/// SSTs already), and with `upto` (an open at a checkpoint) only the sequences `<= upto`:
/// segments that start past it are skipped, and the listing is read only until the
/// recovered end reaches it (the end grows contiguously, so nothing later can matter).
///
/// The recovery rule (docs/ARCHITECTURE.md, "Opening, fencing and recovery"):
///
/// * segments are read in id order; a segment of an epoch older than one already seen at
///   a lower id is a fenced writer's late upload and is skipped;
/// * within an epoch, segments are applied in sequence order (a segment moved to a higher
///   id after an id conflict may hold earlier sequences), each only when it starts at or
///   below the recovered end + 1: the recovered end only ever grows contiguously;
/// * a segment that would leave a gap waits for the segments that fill it; if its epoch
///   ends (a newer epoch's segment appears) or the listing ends first, it is past a gap
///   and dropped, with every other waiting segment. Nothing past a gap was acknowledged as
///   `Remote` (the writer's durable watermark advances in seal and id order), so what is
///   dropped is a suffix of `Buffered` writes (the local log may still hold `Local` ones,
///   see `db/open.rs`).
///
/// # Errors
/// [`Error::Corrupt`] when a segment fails validation: recovery never skips damaged data.
pub(crate) async fn replay(
    storage: &Storage,
    from: u64,
    until: Option<u64>,
    base: SeqNo,
    upto: Option<SeqNo>,
    mem: &Memtable,
) -> Result<Replayed> {
    let listed = storage.list_numbered("wal", "wal").await?;
    let ids: Vec<u64> = listed
        .iter()
        .map(|l| l.id)
        .filter(|id| *id >= from && until.is_none_or(|u| *id < u))
        .collect();
    let mut tail = Tail::new(base);
    let mut fetches = futures::stream::iter(ids.into_iter().map(|id| async move {
        let path = storage.wal_path(id);
        let bytes: Bytes = storage.get(&path).await?;
        Ok::<_, Error>((id, path, bytes))
    }))
    .buffered(REPLAY_CONCURRENCY);
    while let Some((id, path, bytes)) = fetches.try_next().await? {
        if upto.is_some_and(|u| tail.out.end >= u) {
            // At a checkpoint: its whole prefix is recovered, nothing later is needed.
            break;
        }
        let seg = decode_segment(bytes).map_err(|e| Error::corrupt(path.to_string(), e))?;
        tail.feed(id, seg, upto, mem);
    }
    Ok(tail.finish())
}

/// The recovery rule applied incrementally: segments are fed in id order, and the
/// recovered end grows contiguously. [`replay`] feeds one listing and drops what still
/// waits at its end; a follower (`db/follower.rs`) keeps feeding as segments appear and
/// lets segments past a gap wait until the gap is filled or their epoch ends.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    /// What was applied so far (`end` is the recovered end).
    pub out: Replayed,
    /// The newest writer epoch seen.
    epoch: u64,
    /// Segments of `epoch` that start past the recovered end + 1, by first sequence.
    waiting: BTreeMap<SeqNo, (u64, WalSegment)>,
}

impl Tail {
    /// A tail whose every sequence `<= base` is in SSTs already.
    pub fn new(base: SeqNo) -> Self {
        Tail {
            out: Replayed {
                end: base,
                ..Replayed::default()
            },
            ..Tail::default()
        }
    }

    /// Feed the segment at `id` (callers feed ids in increasing order, none skipped but
    /// those below a manifest's replay point); `upto` stops at a checkpoint. Applies to
    /// `mem` whatever now continues the recovered end.
    pub fn feed(&mut self, id: u64, seg: WalSegment, upto: Option<SeqNo>, mem: &Memtable) {
        let seg_epoch = seg.header.writer_epoch;
        if seg_epoch < self.epoch {
            tracing::info!(segment = id, "skipping a fenced writer's WAL segment");
            self.out.fenced.push(id);
            return;
        }
        if seg_epoch > self.epoch {
            self.out.drop_waiting(&mut self.waiting);
            self.epoch = seg_epoch;
        }
        if seg.header.record_count == 0 {
            // A fence: it carries only its epoch.
            self.out.segments.insert(id, 0);
            return;
        }
        if upto.is_some_and(|u| seg.header.first_seq > u) {
            return; // past the checkpoint
        }
        self.waiting.insert(seg.header.first_seq, (id, seg));
        self.apply_ready(upto, mem);
    }

    /// Every sequence `<= base` is now in SSTs (a newer manifest): the end moves up to it,
    /// and waiting segments that now continue it are applied.
    pub fn advance_base(&mut self, base: SeqNo, mem: &Memtable) {
        self.out.end = self.out.end.max(base);
        self.apply_ready(None, mem);
    }

    fn apply_ready(&mut self, upto: Option<SeqNo>, mem: &Memtable) {
        while let Some(entry) = self.waiting.first_entry() {
            if *entry.key() > self.out.end.saturating_add(1) {
                break;
            }
            let (id, seg) = entry.remove();
            self.out.apply(id, seg, upto.unwrap_or(SeqNo::MAX), mem);
        }
    }

    /// Segments waiting for a gap to be filled.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// The newest writer epoch seen.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The listing ended: what still waits is past a gap and dropped.
    pub fn finish(mut self) -> Replayed {
        self.out.drop_waiting(&mut self.waiting);
        self.out
    }
}

impl Replayed {
    /// Apply one segment that starts at or below `end + 1`: operations above `end` (and at
    /// most `upto`) go into `mem`.
    fn apply(&mut self, id: u64, seg: WalSegment, upto: SeqNo, mem: &Memtable) {
        self.segments.insert(id, seg.header.last_seq);
        for rec in seg.records {
            for (i, op) in rec.ops.into_iter().enumerate() {
                let seq = rec.first_seq + i as u64;
                if seq <= self.end || seq > upto {
                    continue;
                }
                // Copies, so the memtable never pins a whole segment buffer.
                mem.insert(
                    Bytes::copy_from_slice(&op.key),
                    seq,
                    op.kind,
                    Bytes::copy_from_slice(&op.value),
                );
                self.end = seq;
                self.ops += 1;
            }
        }
    }

    /// The waiting segments are past a gap: drop them.
    fn drop_waiting(&mut self, waiting: &mut BTreeMap<SeqNo, (u64, WalSegment)>) {
        for (first, (id, seg)) in std::mem::take(waiting) {
            tracing::warn!(
                segment = id,
                first_seq = first,
                last_seq = seg.header.last_seq,
                recovered_end = self.end,
                "WAL segment past a sequence gap: never acknowledged as Remote, dropped"
            );
            self.dropped.push(id);
        }
    }
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
