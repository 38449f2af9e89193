//! Checkpoint store: one JSON object per checkpoint or reader lease,
//! `checkpoints/<name>.json` (format: `silt_format::checkpoint`, `docs/format.md`).
//!
//! A checkpoint pins a manifest; garbage collection (`db/gc.rs`) keeps that manifest,
//! its SSTs and the WAL from its replay point while the checkpoint lives. Creating one is
//! safe only while the manifest it pins is still protected by some other rule (it is the
//! newest, it was replaced less than half of `gc.grace` ago, or another live checkpoint
//! pins it): a GC pass that listed the checkpoints before this one was stored still
//! keeps the manifest by that rule. [`manifest_protected`] checks the first two after the
//! object is stored; callers check the third themselves.

use std::time::Duration;

use silt_format::checkpoint::{decode_checkpoint, encode_checkpoint, validate_checkpoint_name};
use silt_format::FormatError;

pub(crate) use silt_format::checkpoint::{Checkpoint, CheckpointKind};

use crate::error::{Error, Result};
use crate::objstore::{Created, Storage};

/// The directory of checkpoint objects under the database root.
pub(crate) const DIR: &str = "checkpoints";

/// Check a checkpoint name (`[A-Za-z0-9._-]{1,128}`, not `.` or `..`).
///
/// # Errors
/// [`Error::InvalidInput`].
pub(crate) fn check_name(name: &str) -> Result<()> {
    validate_checkpoint_name(name).map_err(|e| match e {
        FormatError::InvalidInput(msg) => Error::InvalidInput(msg),
        other => Error::InvalidInput(other.to_string()),
    })
}

/// Decode the object of checkpoint `name`, checking that its content says so.
fn decode_named(name: &str, path: &str, bytes: &[u8]) -> Result<Checkpoint> {
    let c = decode_checkpoint(bytes).map_err(|e| Error::corrupt(path, e))?;
    if c.name != name {
        return Err(Error::corrupt(
            path,
            FormatError::corrupt(
                "checkpoint",
                format!("object name says {name:?} but content says {:?}", c.name),
            ),
        ));
    }
    Ok(c)
}

/// Read checkpoint `name`; `None` when there is none.
///
/// # Errors
/// Store errors; [`Error::Corrupt`] when the object fails to decode.
pub(crate) async fn read(storage: &Storage, name: &str) -> Result<Option<Checkpoint>> {
    let path = storage.checkpoint_path(name);
    let Some(bytes) = storage.get_opt(&path).await? else {
        return Ok(None);
    };
    decode_named(name, path.as_ref(), &bytes).map(Some)
}

/// One listed checkpoint object: its name and what decoding it gave.
#[derive(Debug)]
pub(crate) struct Listed {
    pub name: String,
    pub checkpoint: Result<Checkpoint>,
}

/// Every checkpoint object, by name. An object that fails to decode is listed with its
/// error (GC must see it: it may protect anything); names that are not ours are ignored.
///
/// # Errors
/// Store errors.
pub(crate) async fn list(storage: &Storage) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    for meta in storage.list_meta(DIR).await? {
        let Some(name) = meta
            .location
            .filename()
            .and_then(|f| f.strip_suffix(".json"))
            .map(str::to_owned)
        else {
            continue;
        };
        let Some(bytes) = storage.get_opt(&meta.location).await? else {
            continue; // deleted since the listing
        };
        let checkpoint = match check_name(&name) {
            Ok(()) => decode_named(&name, meta.location.as_ref(), &bytes),
            Err(e) => Err(Error::corrupt(
                meta.location.to_string(),
                FormatError::corrupt("checkpoint", e.to_string()),
            )),
        };
        out.push(Listed { name, checkpoint });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Store a new checkpoint (create-only). Two creators racing with byte-identical objects
/// (same name, manifest, sequence number, and millisecond) both succeed: they made the
/// same checkpoint.
///
/// # Errors
/// [`Error::Checkpoint`] when one of that name exists; store errors.
pub(crate) async fn create(storage: &Storage, c: &Checkpoint) -> Result<()> {
    let path = storage.checkpoint_path(&c.name);
    // The create-only PUT alone would take an identical object left by an earlier call
    // for its own lost-response retry.
    if storage.get_opt(&path).await?.is_some() {
        return Err(exists(&c.name));
    }
    match storage
        .put_create_resolved(&path, encode_checkpoint(c).into())
        .await?
    {
        Created::Ours => Ok(()),
        Created::Theirs(_) => Err(exists(&c.name)),
    }
}

fn exists(name: &str) -> Error {
    Error::Checkpoint(format!("a checkpoint named {name:?} exists already"))
}

/// Overwrite checkpoint `c.name` (a renewal).
///
/// # Errors
/// Store errors.
pub(crate) async fn overwrite(storage: &Storage, c: &Checkpoint) -> Result<()> {
    let path = storage.checkpoint_path(&c.name);
    storage
        .put_overwrite(&path, encode_checkpoint(c).into())
        .await
}

/// Delete checkpoint `name` (a missing one is not an error).
///
/// # Errors
/// Store errors.
pub(crate) async fn delete(storage: &Storage, name: &str) -> Result<()> {
    storage.delete(&storage.checkpoint_path(name)).await
}

/// Delete checkpoint `name`, which must exist (and need not decode: deleting an
/// undecodable one is how GC is let go on again).
///
/// # Errors
/// [`Error::InvalidInput`] for a bad name; [`Error::Checkpoint`] when there is no such
/// checkpoint; store errors.
pub(crate) async fn delete_existing(storage: &Storage, name: &str) -> Result<()> {
    check_name(name)?;
    if storage
        .get_opt(&storage.checkpoint_path(name))
        .await?
        .is_none()
    {
        return Err(Error::Checkpoint(format!("no checkpoint named {name:?}")));
    }
    delete(storage, name).await
}

/// Whether manifest `id` is still protected by GC's manifest rules at `now_ms`: it exists
/// and is the newest manifest, or the manifest after it was stored less than
/// `grace / 2` ago (half, for clock skew between this process and the store). A
/// checkpoint on such a manifest, once stored, keeps it: every GC pass either listed the
/// checkpoints after it was stored, or started early enough to keep the manifest by the
/// grace rule.
///
/// # Errors
/// Store errors.
pub(crate) async fn manifest_protected(
    storage: &Storage,
    id: u64,
    grace: Duration,
    now_ms: u64,
) -> Result<bool> {
    let mut exists = false;
    let mut successor: Option<(u64, i64)> = None;
    for meta in storage.list_meta("manifest").await? {
        let Some(n) = meta
            .location
            .filename()
            .and_then(|f| f.strip_suffix(".manifest"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if n == id {
            exists = true;
        } else if n > id && successor.is_none_or(|(s, _)| n < s) {
            successor = Some((n, meta.last_modified.timestamp_millis()));
        }
    }
    if !exists {
        return Ok(false);
    }
    let Some((_, stored_ms)) = successor else {
        return Ok(true);
    };
    let half = i64::try_from((grace / 2).as_millis()).unwrap_or(i64::MAX);
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    Ok(stored_ms > now.saturating_sub(half))
}
