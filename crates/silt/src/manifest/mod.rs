//! Manifest store: versions under `manifest/`, each written once with `PutMode::Create`.
//!
//! Opening as writer reads the newest manifest and writes the next id with a bumped
//! `writer_epoch`; losing that create race means another writer exists ([`Error::Fenced`]).
//! Every later manifest write of the writer is also a create of `id + 1`, so a writer that
//! was fenced fails on its next manifest write.

use silt_format::manifest::{decode_manifest, encode_manifest, Manifest};

use crate::error::{Error, Result};
use crate::objstore::{Created, Storage};

/// Read the newest manifest, or `None` for an empty database.
///
/// # Errors
/// Store errors, or [`Error::Corrupt`] when the newest manifest fails validation (an older
/// one is never used silently in its place).
pub(crate) async fn load_latest(storage: &Storage) -> Result<Option<Manifest>> {
    let listed = storage.list_numbered("manifest", "manifest").await?;
    let Some(last) = listed.last() else {
        return Ok(None);
    };
    let path = storage.manifest_path(last.id);
    let bytes = storage.get(&path).await?;
    let m = decode_manifest(&bytes).map_err(|e| Error::corrupt(path.to_string(), e))?;
    if m.id != last.id {
        return Err(Error::corrupt(
            path.to_string(),
            silt_format::FormatError::Corrupt {
                what: "manifest",
                detail: format!("object name says id {} but content says {}", last.id, m.id),
            },
        ));
    }
    Ok(Some(m))
}

/// Write `m` (whose `id` must be one past the current newest) with `PutMode::Create`. A
/// lost response is resolved by reading back ([`Storage::put_create_resolved`]): finding
/// our own bytes there is success.
///
/// # Errors
/// [`Error::Fenced`] when another writer's manifest holds that id: it got there first.
pub(crate) async fn write(storage: &Storage, m: &Manifest) -> Result<()> {
    let path = storage.manifest_path(m.id);
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

/// Claim the database for a new writer: next manifest id, epoch + 1, a fresh random
/// `writer_nonce` (so no two claims are byte-identical, even two racing from one manifest).
pub(crate) async fn claim_writer(storage: &Storage) -> Result<Manifest> {
    let mut m = load_latest(storage).await?.unwrap_or_default();
    m.id += 1;
    m.writer_epoch += 1;
    m.writer_nonce = rand::random();
    if m.wal_replay_from == 0 {
        m.wal_replay_from = 1;
    }
    write(storage, &m).await?;
    Ok(m)
}
