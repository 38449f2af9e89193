//! Uploading one sealed segment with `PutMode::Create`; a segment of another writer at its
//! id is told apart by epoch.

use std::time::Duration;

use bytes::Bytes;
use silt_format::wal::decode_segment_header;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::objstore::{Created, Storage};

/// Why an upload did not store the segment under its id.
#[derive(Debug)]
pub(crate) enum UploadError {
    /// A segment of an older epoch (a fenced writer's late upload) holds the id: pick another.
    IdTaken,
    /// Anything else stops the WAL.
    Fatal(Error),
}

/// Store `data` as segment `id`. `epoch` is this writer's epoch, written in the header.
///
/// The create is resolved by [`Storage::put_create_resolved`] (our own earlier attempt
/// counts as success). Another writer's segment at the id decides by its epoch: a newer
/// one means we are fenced; an older one is a fenced writer's late upload, and the caller
/// retries under a new id.
pub(crate) async fn upload_segment(
    storage: &Storage,
    clock: &dyn Clock,
    id: u64,
    data: &Bytes,
    epoch: u64,
    retries: u32,
) -> Result<(), UploadError> {
    let path = storage.wal_path(id);
    let mut attempt = 0;
    loop {
        match storage.put_create_resolved(&path, data.clone()).await {
            Ok(Created::Ours) => return Ok(()),
            Ok(Created::Theirs(existing)) => {
                let header = decode_segment_header(&existing)
                    .map_err(|e| UploadError::Fatal(Error::corrupt(path.to_string(), e)))?;
                return Err(match header.writer_epoch.cmp(&epoch) {
                    std::cmp::Ordering::Greater => UploadError::Fatal(Error::Fenced(format!(
                        "WAL segment {id} belongs to writer epoch {} (this writer is epoch {epoch})",
                        header.writer_epoch
                    ))),
                    std::cmp::Ordering::Less => UploadError::IdTaken,
                    std::cmp::Ordering::Equal => UploadError::Fatal(Error::Internal(format!(
                        "WAL segment {id} exists with different content from the same epoch {epoch}"
                    ))),
                });
            }
            Err(e) if attempt < retries => {
                attempt += 1;
                tracing::warn!(segment = id, attempt, error = %e, "WAL upload failed; retrying");
                let backoff = Duration::from_millis(50u64 << attempt.min(6));
                clock.sleep_until(clock.now() + backoff).await;
            }
            Err(e) => return Err(UploadError::Fatal(e)),
        }
    }
}
