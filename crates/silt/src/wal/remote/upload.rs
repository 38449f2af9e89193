//! Uploading one sealed segment with `PutMode::Create`; a segment of another writer at its
//! id is told apart by epoch.

use std::time::Duration;

use bytes::Bytes;
use silt_format::wal::decode_segment_header;

use crate::clock::Clock;
use crate::config::RetrySettings;
use crate::error::{Error, Result};
use crate::objstore::{Created, Storage};
use crate::retry::Backoff;

/// Why an upload did not store the segment under its id.
#[derive(Debug)]
pub(crate) enum UploadError {
    /// A segment of an older epoch (a fenced writer's late upload) holds the id: pick another.
    IdTaken,
    /// Anything else stops the WAL.
    Fatal(Error),
}

/// How an upload rides out store faults.
#[derive(Debug)]
pub(crate) struct UploadPolicy<'a> {
    /// Backoff between attempts.
    pub retry: &'a RetrySettings,
    /// Stop retrying transient errors after this long (`None`: never; the WAL flusher's
    /// uploads wait out any outage, while writers waiting for them time out on their own).
    pub give_up_after: Option<Duration>,
    /// An upload that took at least this long confirms, before it counts, that no newer
    /// writer owns the database: after `gc.grace` the new owner may have collected the
    /// fence that once held this id, so landing now would prove nothing.
    pub verify_owner_after: Duration,
    /// Counts retried attempts.
    pub retries: Option<&'a crate::metric::Cell>,
}

/// Store `data` as segment `id`. `epoch` is this writer's epoch, written in the header.
///
/// The create is resolved by [`Storage::put_create_resolved`] (our own earlier attempt
/// counts as success). Another writer's segment at the id decides by its epoch: a newer
/// one means we are fenced; an older one is a fenced writer's late upload, and the caller
/// retries under a new id. Transient store errors are retried with jittered backoff
/// (`policy`); other errors stop the WAL.
pub(crate) async fn upload_segment(
    storage: &Storage,
    clock: &dyn Clock,
    id: u64,
    data: &Bytes,
    epoch: u64,
    policy: &UploadPolicy<'_>,
) -> Result<(), UploadError> {
    let path = storage.wal_path(id);
    let started = clock.now();
    let mut backoff = Backoff::new(policy.retry);
    loop {
        match storage.put_create_resolved(&path, data.clone()).await {
            Ok(Created::Ours) => {
                if clock.now().saturating_duration_since(started) >= policy.verify_owner_after {
                    verify_owner(storage, clock, epoch, policy).await?;
                }
                return Ok(());
            }
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
            Err(e) if e.is_transient() => {
                let waited = clock.now().saturating_duration_since(started);
                if policy.give_up_after.is_some_and(|d| waited >= d) {
                    return Err(UploadError::Fatal(e));
                }
                if let Some(c) = policy.retries {
                    c.incr();
                }
                tracing::warn!(segment = id, ?waited, error = %e, "WAL upload failed; retrying");
                clock.sleep_until(clock.now() + backoff.next_pause()).await;
            }
            Err(e) => return Err(UploadError::Fatal(e)),
        }
    }
}

/// No manifest of a newer writer epoch exists (retrying transient errors).
async fn verify_owner(
    storage: &Storage,
    clock: &dyn Clock,
    epoch: u64,
    policy: &UploadPolicy<'_>,
) -> Result<(), UploadError> {
    let mut backoff = Backoff::new(policy.retry);
    loop {
        match crate::manifest::load_latest(storage).await {
            Ok(Some(m)) if m.writer_epoch > epoch => {
                return Err(UploadError::Fatal(Error::Fenced(format!(
                    "writer epoch {} owns the database (this writer is epoch {epoch})",
                    m.writer_epoch
                ))))
            }
            Ok(_) => return Ok(()),
            Err(e) if e.is_transient() => {
                clock.sleep_until(clock.now() + backoff.next_pause()).await;
            }
            Err(e) => return Err(UploadError::Fatal(e)),
        }
    }
}
