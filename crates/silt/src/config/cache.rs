//! Settings of the caches beyond the in-memory block cache (`lsm/disk_cache.rs`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Cache settings beyond the in-memory block cache.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Directory of the local-disk cache of SST blocks; `None` (default) disables it. Must
    /// be new, empty, or a directory the cache marked as its own (`.silt-disk-cache`):
    /// the cache deletes files in it.
    pub disk_dir: Option<PathBuf>,
    /// Bytes of block files the disk cache keeps. Default 1 GiB.
    pub disk_bytes: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            disk_dir: None,
            disk_bytes: 1024 * 1024 * 1024,
        }
    }
}
