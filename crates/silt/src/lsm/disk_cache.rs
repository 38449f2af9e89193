//! Optional local-disk cache of SST data-block frames fetched from the object store.
//!
//! Granularity is one block frame (a few KiB), so a miss never fetches more than the block
//! it needs. Entries are files `<sst>-<offset>.blk` holding the frame exactly as stored in
//! the SST; the frame carries its own CRC32C, so a damaged or truncated file fails
//! `decode_block_frame`, is deleted and refetched. The index is an in-memory LRU (moka)
//! weighed by file size; evicting an entry deletes its file. On start the directory is
//! scanned and existing files are re-admitted (oldest first), so the cache survives
//! restarts; anything that does not parse is deleted.
//!
//! Because the cache deletes files in its directory, it only uses a directory it created:
//! on first use of a new or empty directory it writes the marker file [`MARKER`]; a
//! directory that holds anything else and no marker (say `cache.disk_dir` pointed at a
//! home directory by mistake) is refused with `InvalidSettings`, and nothing in it is
//! touched.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use moka::notification::RemovalCause;
use moka::sync::Cache;

use crate::error::{Error, Result};
use crate::metric::Cell;

type Key = (Arc<str>, u64);

/// Marker file of a directory the disk cache created (never a block file).
pub const MARKER: &str = ".silt-disk-cache";

const MARKER_TEXT: &str = "Silt disk cache of SST blocks. Every other file in this \
directory may be deleted by the cache.\n";

crate::metric::snapshot! {
    /// The disk cache at one moment (see [`Metrics::disk_cache`](crate::Metrics::disk_cache)).
    pub struct DiskCacheSnapshot;
    {
        /// Bytes of block files cached.
        bytes: u64, Gauge "silt_disk_cache_bytes",
        /// Blocks served from disk.
        hits: u64, Counter "silt_disk_cache_hits",
        /// Lookups that found nothing.
        misses: u64, Counter "silt_disk_cache_misses",
        /// Blocks written.
        inserts: u64, Counter "silt_disk_cache_inserts",
        /// Files found damaged and deleted.
        corrupt: u64, Counter "silt_disk_cache_corrupt",
        /// Files deleted by eviction.
        evictions: u64, Counter "silt_disk_cache_evictions",
    }
}

impl DiskCacheSnapshot {
    /// `hits / (hits + misses)`; `None` without lookups.
    pub fn hit_ratio(&self) -> Option<f64> {
        crate::lsm::cache::hit_ratio(self.hits, self.misses)
    }
}

/// Counters of the disk cache (its size is the index's weight).
#[derive(Debug, Default)]
struct DiskCacheMetrics {
    hits: Cell,
    misses: Cell,
    inserts: Cell,
    corrupt: Cell,
    evictions: Cell,
}

/// The disk cache.
#[derive(Clone, Debug)]
pub(crate) struct DiskCache {
    dir: Arc<PathBuf>,
    index: Cache<Key, u32>,
    metrics: Arc<DiskCacheMetrics>,
}

fn file_name(sst: &str, offset: u64) -> String {
    format!("{sst}-{offset}.blk")
}

fn parse_name(name: &str) -> Option<(Arc<str>, u64)> {
    let stem = name.strip_suffix(".blk")?;
    let (sst, off) = stem.rsplit_once('-')?;
    Some((Arc::from(sst), off.parse().ok()?))
}

/// Checks that `dir` is the cache's own (it holds [`MARKER`]), or makes it so when it is
/// empty.
fn claim_dir(dir: &Path) -> Result<()> {
    let bad = |e: std::io::Error| {
        Error::InvalidSettings(format!("cache.disk_dir {}: {e}", dir.display()))
    };
    let marker = dir.join(MARKER);
    if std::fs::symlink_metadata(&marker).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    if let Some(entry) = std::fs::read_dir(dir).map_err(bad)?.next() {
        let entry = entry.map_err(bad)?;
        return Err(Error::InvalidSettings(format!(
            "cache.disk_dir {} is not empty (it holds \"{}\", among others) and has no {MARKER} \
             file, so the disk cache did not create it; it deletes files in its directory, so \
             point cache.disk_dir at a new or empty directory",
            dir.display(),
            entry.file_name().display()
        )));
    }
    std::fs::write(&marker, MARKER_TEXT)
        .and_then(|()| std::fs::File::open(&marker)?.sync_all())
        .and_then(|()| std::fs::File::open(dir)?.sync_all())
        .map_err(bad)
}

impl DiskCache {
    /// Open (creating) the cache directory and re-admit the files already there.
    ///
    /// # Errors
    /// `InvalidSettings` when the directory cannot be created or read, or holds files but
    /// no [`MARKER`] (the cache did not create it).
    pub fn open(dir: &Path, capacity: u64) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::InvalidSettings(format!("cache.disk_dir {}: {e}", dir.display()))
        })?;
        claim_dir(dir)?;
        let metrics = Arc::new(DiskCacheMetrics::default());
        let dir = Arc::new(dir.to_path_buf());
        let listener_dir = Arc::clone(&dir);
        let listener_metrics = Arc::clone(&metrics);
        let index = Cache::builder()
            .max_capacity(capacity)
            .weigher(|_k: &Key, size: &u32| *size)
            .eviction_listener(move |k: Arc<Key>, _v, cause| {
                if matches!(cause, RemovalCause::Size | RemovalCause::Expired) {
                    listener_metrics.evictions.incr();
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
            if name == MARKER {
                continue;
            }
            let parsed = name.to_str().and_then(parse_name);
            let meta = entry.metadata().ok();
            match (parsed, meta) {
                (Some(key), Some(meta)) if meta.is_file() && u32::try_from(meta.len()).is_ok() => {
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
            self.metrics.misses.incr();
            return None;
        }
        if let Ok(data) = tokio::fs::read(self.dir.join(file_name(sst, offset))).await {
            self.metrics.hits.incr();
            Some(Bytes::from(data))
        } else {
            self.index.invalidate(&key);
            self.metrics.misses.incr();
            None
        }
    }

    /// Forget and delete a damaged entry.
    pub async fn discard(&self, sst: &Arc<str>, offset: u64) {
        self.metrics.corrupt.incr();
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
                self.metrics.inserts.incr();
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

    /// Its size and counters now.
    pub fn snapshot(&self) -> DiskCacheSnapshot {
        let m = &self.metrics;
        DiskCacheSnapshot {
            bytes: self.size_bytes(),
            hits: m.hits.get(),
            misses: m.misses.get(),
            inserts: m.inserts.get(),
            corrupt: m.corrupt.get(),
            evictions: m.evictions.get(),
        }
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
        let files = block_files(dir.path());
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
        assert!(
            dir.path().join(MARKER).exists(),
            "the marker is not a stray file"
        );
    }

    fn block_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != MARKER)
            .count()
    }

    #[test]
    fn refuses_a_directory_it_did_not_create() {
        let dir = tempfile::tempdir().unwrap();
        let notes = dir.path().join("notes.txt");
        std::fs::write(&notes, b"precious").unwrap();
        let e = DiskCache::open(dir.path(), 10_000).unwrap_err();
        assert!(matches!(e, Error::InvalidSettings(_)), "{e}");
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        let msg = e.to_string();
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(msg.contains(MARKER) && msg.contains("notes.txt"), "{msg}");
        assert_eq!(std::fs::read(&notes).unwrap(), b"precious");
        assert!(!dir.path().join(MARKER).exists());
        // Files that look like the cache's own do not make it the cache's either.
        std::fs::remove_file(&notes).unwrap();
        std::fs::write(dir.path().join("01ABC-0.blk"), b"frame").unwrap();
        assert!(DiskCache::open(dir.path(), 10_000).is_err());
        assert!(dir.path().join("01ABC-0.blk").exists());
    }

    #[tokio::test]
    async fn marks_a_new_or_empty_directory_and_keeps_using_it() {
        let (parent, empty) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let sst: Arc<str> = Arc::from("01ABC");
        for dir in [parent.path().join("new/cache"), empty.path().to_path_buf()] {
            let c = DiskCache::open(&dir, 10_000).unwrap();
            assert!(dir.join(MARKER).is_file(), "{}", dir.display());
            c.insert(&sst, 0, &Bytes::from_static(b"frame")).await;
            drop(c);
            // Marked, with a block in it: reopened and re-admitted.
            let c = DiskCache::open(&dir, 10_000).unwrap();
            assert_eq!(c.get(&sst, 0).await.as_deref(), Some(&b"frame"[..]));
        }
        // The marker is what makes a directory the cache's.
        std::fs::remove_file(empty.path().join(MARKER)).unwrap();
        assert!(DiskCache::open(empty.path(), 10_000).is_err());
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
