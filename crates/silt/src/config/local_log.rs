//! Settings of the local log tier (`Durability::Local`, `wal/local/`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default of [`LocalLogSettings::max_pending_bytes`].
pub const DEFAULT_MAX_PENDING_BYTES: usize = 1 << 20;

/// Whether commit groups are padded to 4 KiB blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocalLogMode {
    /// Every commit group starts in a fresh 4 KiB block and is zero-padded to the next
    /// boundary: each record reaches the drive once; a compressing drive drops the zeros.
    #[default]
    Sparse,
    /// Groups back to back (`RocksDB` style): consecutive small commits rewrite the same
    /// block. For drives without transparent compression, and for comparison.
    Packed,
}

/// Settings of the local log.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalLogSettings {
    /// Directory of the log files; one log per directory. Default `./silt-local-log`
    /// (set it in practice).
    pub dir: PathBuf,
    /// Size of each preallocated file, a multiple of 4 KiB between 8 KiB and 1 GiB.
    /// Default 64 MiB. A record larger than this gets a file of its own size.
    pub file_bytes: u64,
    /// Sparse (default) or packed.
    pub mode: LocalLogMode,
    /// Bytes of encoded records waiting for the next group above which a group commit
    /// starts in the background although nobody waits (only `Remote`/`Buffered` writes),
    /// and new writes wait (outside the write lock) for it. Default 1 MiB; at least 4 KiB.
    pub max_pending_bytes: usize,
}

impl Default for LocalLogSettings {
    fn default() -> Self {
        LocalLogSettings {
            dir: PathBuf::from("./silt-local-log"),
            file_bytes: 64 << 20,
            mode: LocalLogMode::Sparse,
            max_pending_bytes: DEFAULT_MAX_PENDING_BYTES,
        }
    }
}

impl LocalLogSettings {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::InvalidSettings`] when `file_bytes` is out of range or not a multiple of
    /// 4 KiB, `max_pending_bytes` is below 4 KiB, or `dir` is empty.
    pub fn validate(&self) -> Result<()> {
        let block = silt_format::local_log::LOCAL_BLOCK_SIZE as u64;
        if self.file_bytes < 2 * block || self.file_bytes > 1 << 30 || self.file_bytes % block != 0
        {
            return Err(Error::InvalidSettings(format!(
                "local_log.file_bytes must be a multiple of 4096 between 8 KiB and 1 GiB, got {}",
                self.file_bytes
            )));
        }
        if self.max_pending_bytes < silt_format::local_log::LOCAL_BLOCK_SIZE {
            return Err(Error::InvalidSettings(format!(
                "local_log.max_pending_bytes must be at least 4096, got {}",
                self.max_pending_bytes
            )));
        }
        if self.dir.as_os_str().is_empty() {
            return Err(Error::InvalidSettings("local_log.dir is empty".into()));
        }
        Ok(())
    }
}
