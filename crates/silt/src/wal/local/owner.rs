//! `OWNER`: which writer's records a local-log directory holds.
//!
//! Local-log records carry sequence numbers but no writer epoch. If writer O used this
//! directory, then another writer took over on another machine and wrote sequences of its
//! own, O's records above what that writer recovered are dead: replaying them on a later
//! open here would put O's old writes on top of the newer writer's. So the directory
//! records the epoch of the writer whose records it holds, and a claim in progress:
//!
//! * before a writer's claim PUT: `{"epoch": O, "claim": {"nonce": X, "base_epoch": P}}`,
//!   where P is the epoch of the manifest the claim is based on and X the claim's nonce;
//! * once the claim is stored: `{"epoch": N}` (the claim's epoch).
//!
//! On the next open, with the newest manifest (the claim's base) of epoch B and nonce Y,
//! the records are this database's latest history when `O == B` (nobody claimed since O),
//! or when the pending claim is that manifest (`X == Y`, `P == O`: this directory's own
//! claim, cut short before the update). Otherwise they are stale and discarded. Written
//! atomically (temporary file, fsync, rename, fsync of the directory).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::writer::{io_err, sync_dir};
use crate::error::{Error, Result};

const FILE: &str = "OWNER";
const TMP: &str = "OWNER.tmp";

/// A claim in progress, recorded before its PUT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingClaim {
    /// The nonce the claim's manifest carries.
    pub nonce: u64,
    /// Epoch of the manifest the claim is based on.
    pub base_epoch: u64,
}

/// Contents of `OWNER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Owner {
    /// Epoch of the writer whose records the log holds.
    pub epoch: u64,
    /// A claim in progress from this directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<PendingClaim>,
}

impl Owner {
    /// Whether the records belong to the history that the newest manifest (epoch
    /// `base_epoch`, nonce `base_nonce`) continues.
    pub(crate) fn is_current(&self, base_epoch: u64, base_nonce: Option<u64>) -> bool {
        if self.epoch == base_epoch {
            return true;
        }
        self.claim
            .is_some_and(|c| c.base_epoch == self.epoch && base_nonce.is_none_or(|n| n == c.nonce))
    }
}

/// Reads `OWNER` from `dir`; `None` when there is none (a new directory, or one written
/// before `OWNER` existed).
///
/// # Errors
/// I/O errors; `Corrupt` when it does not parse.
pub(crate) fn read(dir: &Path) -> Result<Option<Owner>> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::corrupt(
                path.display().to_string(),
                silt_format::FormatError::corrupt("local log owner", e.to_string()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", &path, e)),
    }
}

/// Replaces `OWNER` in `dir` durably.
///
/// # Errors
/// I/O errors.
pub(crate) fn write(dir: &Path, owner: &Owner) -> Result<()> {
    let tmp = dir.join(TMP);
    let bytes = serde_json::to_vec(owner)
        .map_err(|e| Error::Internal(format!("local log owner encoding: {e}")))?;
    {
        let f = std::fs::File::create(&tmp).map_err(|e| io_err("create", &tmp, e))?;
        std::io::Write::write_all(&mut &f, &bytes).map_err(|e| io_err("write", &tmp, e))?;
        f.sync_all().map_err(|e| io_err("fsync", &tmp, e))?;
    }
    let path = dir.join(FILE);
    std::fs::rename(&tmp, &path).map_err(|e| io_err("rename", &tmp, e))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_currency() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let o = Owner {
            epoch: 4,
            claim: Some(PendingClaim {
                nonce: 99,
                base_epoch: 4,
            }),
        };
        write(dir.path(), &o).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(o));
        // Nobody claimed since epoch 4.
        assert!(o.is_current(4, Some(1)));
        // Our own claim (nonce 99) is the newest manifest: still ours.
        assert!(o.is_current(5, Some(99)));
        // Another writer claimed: stale.
        assert!(!o.is_current(5, Some(7)));
        assert!(!o.is_current(6, Some(7)));
        let settled = Owner {
            epoch: 5,
            claim: None,
        };
        write(dir.path(), &settled).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(settled));
        assert!(!settled.is_current(6, Some(99)));
        std::fs::write(dir.path().join(FILE), b"{").unwrap();
        assert_eq!(
            read(dir.path()).unwrap_err().kind(),
            crate::ErrorKind::Corrupt
        );
    }
}
