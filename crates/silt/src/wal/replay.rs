//! Recovery of the remote WAL: fence older writers, then replay segments past the
//! manifest's replay point into a memtable.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use silt_format::wal::{decode_segment, encode_segment, WalSegmentHeader};
use silt_format::{SeqNo, ValueKind};

use super::remote::{upload_segment, UploadError};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::memtable::Memtable;
use crate::objstore::Storage;

/// Segments fetched at once during replay.
const REPLAY_CONCURRENCY: usize = 8;

/// What replay found.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    /// Replayed segment ids and their last sequence numbers.
    pub segments: BTreeMap<u64, SeqNo>,
    /// Highest sequence number replayed (0 if none).
    pub max_seq: SeqNo,
    /// Operations inserted into the memtable.
    pub ops: u64,
}

/// Write an empty segment carrying `epoch` at the first free id `>= from`. Any older writer
/// that later tries to upload that id fails and learns it is fenced. Returns the fence's id.
pub(crate) async fn fence(
    storage: &Storage,
    clock: &dyn Clock,
    epoch: u64,
    from: u64,
    retries: u32,
) -> Result<u64> {
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
        match upload_segment(storage, clock, id, &data, epoch, retries).await {
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
        match upload_segment(storage, clock, gap, &data, epoch, retries).await {
            Ok(()) | Err(UploadError::IdTaken) => {}
            Err(UploadError::Fatal(e)) => return Err(e),
        }
    }
    Ok(fence_id)
}

/// Replay segments with ids in `[from, until)` (all from `from` when `until` is None) into
/// `mem`, skipping operations with sequence `<= flushed` (already in SSTs) and segments of an
/// epoch older than one seen at a lower id (a fenced writer's late uploads).
///
/// # Errors
/// [`Error::Corrupt`] when a segment fails validation: recovery never skips damaged data.
pub(crate) async fn replay(
    storage: &Storage,
    from: u64,
    until: Option<u64>,
    flushed: SeqNo,
    mem: &Memtable,
) -> Result<Replayed> {
    let listed = storage.list_numbered("wal", "wal").await?;
    let ids: Vec<u64> = listed
        .iter()
        .map(|l| l.id)
        .filter(|id| *id >= from && until.is_none_or(|u| *id < u))
        .collect();
    let mut out = Replayed::default();
    let mut fetches = futures::stream::iter(ids.into_iter().map(|id| async move {
        let path = storage.wal_path(id);
        let bytes: Bytes = storage.get(&path).await?;
        Ok::<_, Error>((id, path, bytes))
    }))
    .buffered(REPLAY_CONCURRENCY);
    let mut max_epoch = 0;
    while let Some((id, path, bytes)) = fetches.try_next().await? {
        let seg = decode_segment(bytes).map_err(|e| Error::corrupt(path.to_string(), e))?;
        if seg.header.writer_epoch < max_epoch {
            tracing::info!(segment = id, "skipping a fenced writer's WAL segment");
            continue;
        }
        max_epoch = seg.header.writer_epoch;
        out.segments.insert(id, seg.header.last_seq);
        for rec in seg.records {
            for (i, op) in rec.ops.into_iter().enumerate() {
                let seq = rec.first_seq + i as u64;
                out.max_seq = out.max_seq.max(seq);
                if seq <= flushed {
                    continue;
                }
                // Copies, so the memtable never pins a whole segment buffer.
                let value = match op.kind {
                    ValueKind::Put => Some(Bytes::copy_from_slice(&op.value)),
                    ValueKind::Delete => None,
                };
                mem.insert(Bytes::copy_from_slice(&op.key), seq, value);
                out.ops += 1;
            }
        }
    }
    Ok(out)
}
