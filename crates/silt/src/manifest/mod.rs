//! Manifest store: versions under `manifest/`, each written once with `PutMode::Create`.
//!
//! Opening as writer reads the newest manifest and writes the next id with a bumped
//! `writer_epoch`; losing that create race means another writer exists ([`Error::Fenced`]).
//! Every later manifest write of the writer is also a create of `id + 1`, so a writer that
//! was fenced fails on its next manifest write. Ids are increasing but not always
//! contiguous: a claim after a torn newest manifest skips the torn one's id.

use bytes::Bytes;
use silt_format::manifest::{decode_manifest, encode_manifest, manifest_is_torn, Manifest};
use silt_format::FormatError;

use crate::error::{Error, Result};
use crate::objstore::{Created, Storage};

/// What opening needs to know about the manifests in the store.
#[derive(Debug)]
struct Latest {
    /// The newest usable manifest (`None`: an empty database).
    manifest: Option<Manifest>,
    /// One past the highest manifest id in the store, torn or not: a claim's id.
    next_id: u64,
    /// The newest manifest object was torn and skipped.
    skipped_torn: bool,
}

/// Read the newest manifest, or `None` for an empty database.
///
/// A newest manifest that is torn (empty or cut short, [`manifest_is_torn`]: a store that
/// acknowledged a write it had not made durable, then crashed) is skipped with a warning
/// for the one it was written on top of, id − 1 (for id 1, the empty database).
///
/// # Errors
/// Store errors, or [`Error::Corrupt`] when the newest manifest fails validation and is
/// not torn (full length: checksum, magic, JSON), or is torn but id − 1 is missing or
/// fails validation too. Nothing older is used silently in its place.
pub(crate) async fn load_latest(storage: &Storage) -> Result<Option<Manifest>> {
    Ok(find_latest(storage).await?.manifest)
}

async fn find_latest(storage: &Storage) -> Result<Latest> {
    let listed = storage.list_numbered("manifest", "manifest").await?;
    let Some(newest) = listed.last() else {
        return Ok(Latest {
            manifest: None,
            next_id: 1,
            skipped_torn: false,
        });
    };
    let path = storage.manifest_path(newest.id);
    let next_id = newest.id.checked_add(1).ok_or_else(|| {
        Error::corrupt(
            path.to_string(),
            FormatError::corrupt("manifest", "id overflows"),
        )
    })?;
    let bytes = storage.get(&path).await?;
    let err = match decode_checked(newest.id, &bytes) {
        Ok(m) => {
            return Ok(Latest {
                manifest: Some(m),
                next_id,
                skipped_torn: false,
            })
        }
        Err(e) => e,
    };
    if !manifest_is_torn(&bytes) {
        return Err(Error::corrupt(path.to_string(), err));
    }
    // Only the manifest the torn one was written on top of may stand in for it, never one
    // further back: that could reference objects GC has deleted since.
    let previous = match listed.iter().rev().nth(1) {
        Some(p) if p.id + 1 == newest.id => {
            let p_path = storage.manifest_path(p.id);
            let p_bytes = storage.get(&p_path).await?;
            Some(
                decode_checked(p.id, &p_bytes)
                    .map_err(|e| Error::corrupt(p_path.to_string(), e))?,
            )
        }
        None if newest.id == 1 => None,
        _ => {
            let detail = format!(
                "torn ({} bytes: {err}) and manifest {} before it is missing",
                bytes.len(),
                newest.id.saturating_sub(1)
            );
            return Err(Error::corrupt(
                path.to_string(),
                FormatError::corrupt("manifest", detail),
            ));
        }
    };
    tracing::warn!(
        torn = newest.id,
        bytes = bytes.len(),
        using = previous.as_ref().map_or(0, |m| m.id),
        "newest manifest is torn (cut short by a crash); using the one before it"
    );
    Ok(Latest {
        manifest: previous,
        next_id,
        skipped_torn: true,
    })
}

/// Read manifest `id` (one a checkpoint pins); `None` when it is not in the store.
///
/// # Errors
/// Store errors; [`Error::Corrupt`] when it fails validation.
pub(crate) async fn load(storage: &Storage, id: u64) -> Result<Option<Manifest>> {
    let path = storage.manifest_path(id);
    let Some(bytes) = storage.get_opt(&path).await? else {
        return Ok(None);
    };
    decode_checked(id, &bytes)
        .map(Some)
        .map_err(|e| Error::corrupt(path.to_string(), e))
}

/// Decode manifest `id` and check that its content says so.
fn decode_checked(id: u64, bytes: &Bytes) -> Result<Manifest, FormatError> {
    let m = decode_manifest(bytes)?;
    if m.id != id {
        return Err(FormatError::corrupt(
            "manifest",
            format!("object name says id {id} but content says {}", m.id),
        ));
    }
    Ok(m)
}

/// Write `m` (whose `id` must be one past the current newest) with `PutMode::Create`,
/// retrying transient store errors with the same bytes for up to `store.retry.deadline`.
/// Past that the outcome is unknown: callers must not write a different manifest at the
/// same id (they stop the handle). A
/// lost response is resolved by reading back ([`Storage::put_create_resolved`]): finding
/// our own bytes there is success.
///
/// # Errors
/// [`Error::Fenced`] when another writer's manifest holds that id: it got there first.
pub(crate) async fn write(storage: &Storage, m: &Manifest) -> Result<()> {
    let path = storage.manifest_path(m.id);
    // Storage retries transient errors until the deadline, with the same bytes: safe, an
    // earlier attempt that landed reads back as ours.
    match storage
        .put_create_resolved(&path, encode_manifest(m).into())
        .await?
    {
        Created::Ours => Ok(()),
        Created::Theirs(_) => Err(Error::Fenced(format!(
            "manifest {} was written by another writer (this writer's epoch is {})",
            m.id, m.writer_epoch
        ))),
    }
}

/// Claim the database for a new writer: the next manifest id, epoch + 1, a fresh random
/// `writer_nonce` (so no two claims are byte-identical, even two racing from one manifest).
///
/// The id is one past the highest in the store. After a torn newest manifest was skipped
/// that id is two past the manifest the claim is based on (the torn object keeps its id:
/// create-only writes cannot replace it), and the epoch goes up by 2: the torn manifest
/// may have been a claim of epoch + 1 whose writer went on to upload WAL segments with it,
/// and the new writer must be newer than that one.
///
/// Returns the claim's manifest, not yet written, and what it is based on; write it with
/// [`write`] (create-only: another claim of the same id makes that `Fenced`). Between the
/// two the local log records the claim in progress.
pub(crate) async fn prepare_claim(storage: &Storage) -> Result<(ClaimBase, Manifest)> {
    let latest = find_latest(storage).await?;
    let base = ClaimBase {
        epoch: latest
            .manifest
            .as_ref()
            .map_or(0, |m| m.writer_epoch + u64::from(latest.skipped_torn)),
        nonce: match (&latest.manifest, latest.skipped_torn) {
            (_, true) => None,
            (Some(m), false) => Some(m.writer_nonce),
            (None, false) => Some(0),
        },
    };
    let mut m = latest.manifest.unwrap_or_default();
    m.id = latest.next_id;
    m.writer_epoch += if latest.skipped_torn { 2 } else { 1 };
    m.writer_nonce = rand::random();
    if m.wal_replay_from == 0 {
        m.wal_replay_from = 1;
    }
    Ok((base, m))
}

/// What a claim is based on: the newest manifest before it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClaimBase {
    /// Its writer epoch (0 for an empty database; one past it for a torn newest manifest,
    /// which may have been a claim).
    pub epoch: u64,
    /// Its nonce; `None` when the newest manifest was torn (and so unreadable).
    pub nonce: Option<u64>,
}
