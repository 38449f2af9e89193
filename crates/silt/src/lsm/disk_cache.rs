//! Optional local-disk cache of SST data-block frames fetched from the object store.
//!
//! Granularity is one block frame (a few KiB), so a miss never fetches more than the block
//! it needs. Entries are files `<sst>-<offset>.blk` holding the frame exactly as stored in
//! the SST; the frame carries its own CRC32C, so a damaged or truncated file fails
//! `decode_block_frame`, is deleted and refetched. The index is an in-memory LRU (moka)
//! weighed by file size; evicting an entry deletes its file. On start the directory is
//! scanned and existing files are re-admitted (oldest first), so the cache survives
//! restarts; anything that does not parse is deleted.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use moka::notification::RemovalCause;
use moka::sync::Cache;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

type Key = (Arc<str>, u64);

/// Cache settings beyond the in-memory block cache.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Directory of the local-disk cache of SST blocks; `None` (default) disables it.
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

/// Counters of the disk cache.
#[derive(Debug, Default, Serialize)]
pub struct DiskCacheMetrics {
    /// Blocks served from disk.
    pub hits: AtomicU64,
    /// Lookups that found nothing.
    pub misses: AtomicU64,
    /// Blocks written.
    pub inserts: AtomicU64,
    /// Files found damaged and deleted.
    pub corrupt: AtomicU64,
    /// Files deleted by eviction.
    pub evictions: AtomicU64,
}

/// The disk cache.
#[derive(Clone, Debug)]
pub(crate) struct DiskCache {
    dir: Arc<PathBuf>,
    index: Cache<Key, u32>,
    pub metrics: Arc<DiskCacheMetrics>,
}

fn file_name(sst: &str, offset: u64) -> String {
    format!("{sst}-{offset}.blk")
}

fn parse_name(name: &str) -> Option<(Arc<str>, u64)> {
    let stem = name.strip_suffix(".blk")?;
    let (sst, off) = stem.rsplit_once('-')?;
    Some((Arc::from(sst), off.parse().ok()?))
}

impl DiskCache {
    /// Open (creating) the cache directory and re-admit the files already there.
    pub fn open(dir: &Path, capacity: u64) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::InvalidSettings(format!("cache.disk_dir {}: {e}", dir.display()))
        })?;
        let metrics = Arc::new(DiskCacheMetrics::default());
        let dir = Arc::new(dir.to_path_buf());
        let listener_dir = Arc::clone(&dir);
        let listener_metrics = Arc::clone(&metrics);
        let index = Cache::builder()
            .max_capacity(capacity)
            .weigher(|_k: &Key, size: &u32| *size)
            .eviction_listener(move |k: Arc<Key>, _v, cause| {
                if matches!(cause, RemovalCause::Size | RemovalCause::Expired) {
                    listener_metrics.evictions.fetch_add(1, Ordering::Relaxed);
                    let _ = std::fs::remove_file(listener_dir.join(file_name(&k.0, k.1)));
                }
            })
            .build();
        let cache = DiskCache {
            dir,
            index,
            metrics,
        };
        cache.readmit()?;
        Ok(cache)
    }

    fn readmit(&self) -> Result<()> {
        let entries = std::fs::read_dir(&*self.dir).map_err(|e| {
            Error::InvalidSettings(format!("cache.disk_dir {}: {e}", self.dir.display()))
        })?;
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let parsed = name.to_str().and_then(parse_name);
            let meta = entry.metadata().ok();
            match (parsed, meta) {
                (Some(key), Some(meta)) if meta.is_file() && meta.len() <= u64::from(u32::MAX) => {
                    let mtime = meta.modified().ok();
                    found.push((mtime, key, meta.len() as u32));
                }
                _ => {
                    // Not ours, or a temp file of an interrupted write.
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        found.sort_by_key(|(mtime, _, _)| *mtime);
        for (_, key, size) in found {
            self.index.insert(key, size);
        }
        self.index.run_pending_tasks();
        Ok(())
    }

    /// The frame of block `offset` of `sst`, if cached.
    pub async fn get(&self, sst: &Arc<str>, offset: u64) -> Option<Bytes> {
        let key = (Arc::clone(sst), offset);
        if self.index.get(&key).is_none() {
            self.metrics.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        match tokio::fs::read(self.dir.join(file_name(sst, offset))).await {
            Ok(data) => {
                self.metrics.hits.fetch_add(1, Ordering::Relaxed);
                Some(Bytes::from(data))
            }
            Err(_) => {
                self.index.invalidate(&key);
                self.metrics.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Forget and delete a damaged entry.
    pub async fn discard(&self, sst: &Arc<str>, offset: u64) {
        self.metrics.corrupt.fetch_add(1, Ordering::Relaxed);
        self.index.invalidate(&(Arc::clone(sst), offset));
        let _ = tokio::fs::remove_file(self.dir.join(file_name(sst, offset))).await;
    }

    /// Store a frame (best effort: a failed write only costs a future miss).
    pub async fn insert(&self, sst: &Arc<str>, offset: u64, frame: &Bytes) {
        let Ok(size) = u32::try_from(frame.len()) else {
            return;
        };
        let name = file_name(sst, offset);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(&name);
        let written = async {
            tokio::fs::write(&tmp, frame).await?;
            tokio::fs::rename(&tmp, &path).await
        }
        .await;
        match written {
            Ok(()) => {
                self.metrics.inserts.fetch_add(1, Ordering::Relaxed);
                self.index.insert((Arc::clone(sst), offset), size);
            }
            Err(e) => {
                tracing::debug!(error = %e, "disk cache write failed");
                let _ = tokio::fs::remove_file(&tmp).await;
            }
        }
    }

    /// Bytes of cached files.
    pub fn size_bytes(&self) -> u64 {
        self.index.weighted_size()
    }

    /// Apply pending evictions now (tests).
    #[cfg(test)]
    pub fn sync(&self) {
        self.index.run_pending_tasks();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn survives_restart_and_evicts_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let sst: Arc<str> = Arc::from("01ABC");
        let c = DiskCache::open(dir.path(), 10_000).unwrap();
        for i in 0..5u64 {
            c.insert(&sst, i * 1000, &Bytes::from(vec![i as u8; 3000]))
                .await;
        }
        c.sync();
        assert!(c.size_bytes() <= 10_000, "{}", c.size_bytes());
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(files <= 3, "evicted files are deleted: {files}");
        let c2 = DiskCache::open(dir.path(), 10_000).unwrap();
        let mut hits = 0;
        for i in 0..5u64 {
            if let Some(b) = c2.get(&sst, i * 1000).await {
                assert_eq!(b.as_ref(), &vec![i as u8; 3000][..]);
                hits += 1;
            }
        }
        assert_eq!(hits, files);
        std::fs::write(dir.path().join("junk.tmp"), b"x").unwrap();
        let _c3 = DiskCache::open(dir.path(), 10_000).unwrap();
        assert!(!dir.path().join("junk.tmp").exists());
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(
            parse_name(&file_name("01H-X", 42)),
            Some((Arc::from("01H-X"), 42))
        );
        assert_eq!(parse_name("nope"), None);
    }
}
