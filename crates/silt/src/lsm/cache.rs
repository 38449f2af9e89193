//! Bounded in-memory cache of decoded SST data blocks, weighed by their real size.

use std::sync::Arc;

use moka::sync::Cache;
use silt_format::block::Block;

use super::disk_cache::DiskCache;
use crate::metric::Cell;

crate::metric::snapshot! {
    /// The in-memory block cache at one moment (see
    /// [`Metrics::block_cache`](crate::Metrics::block_cache)).
    pub struct BlockCacheSnapshot;
    {
        /// Bytes of decoded blocks held.
        bytes: u64, Gauge "silt_block_cache_bytes",
        /// Lookups that hit.
        hits: u64, Counter "silt_block_cache_hits",
        /// Lookups that missed (the block came from the disk cache or the store).
        misses: u64, Counter "silt_block_cache_misses",
    }
}

impl BlockCacheSnapshot {
    /// `hits / (hits + misses)`; `None` without lookups.
    pub fn hit_ratio(&self) -> Option<f64> {
        hit_ratio(self.hits, self.misses)
    }
}

/// `hits / (hits + misses)` of a cache; `None` without lookups.
pub(crate) fn hit_ratio(hits: u64, misses: u64) -> Option<f64> {
    let lookups = hits + misses;
    (lookups > 0).then(|| crate::metric::ratio(hits, lookups))
}

/// Key: SST id and the block's offset in the file.
type Key = (Arc<str>, u64);

/// A byte-bounded block cache. Each cached [`Block`] owns exactly its own bytes
/// (`decode_block_frame` allocates a fresh buffer), so the weight is the memory held.
#[derive(Clone, Debug)]
pub(crate) struct BlockCache {
    inner: Cache<Key, Block>,
    /// The optional local-disk tier below it.
    pub disk: Option<DiskCache>,
    hits: Arc<Cell>,
    misses: Arc<Cell>,
    /// Bounds bytes of block fetches in flight (permits are KiB).
    pub reads: Arc<tokio::sync::Semaphore>,
    read_permits: u32,
}

impl BlockCache {
    pub fn new(capacity_bytes: u64, disk: Option<DiskCache>, inflight_read_bytes: usize) -> Self {
        let read_permits = u32::try_from(inflight_read_bytes / 1024)
            .unwrap_or(u32::MAX)
            .max(1);
        let inner = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|_k: &Key, b: &Block| u32::try_from(b.size_bytes()).unwrap_or(u32::MAX))
            .build();
        BlockCache {
            inner,
            disk,
            hits: Arc::default(),
            misses: Arc::default(),
            reads: Arc::new(tokio::sync::Semaphore::new(read_permits as usize)),
            read_permits,
        }
    }

    /// Wait for room to fetch `len` bytes (a fetch larger than the whole bound waits for
    /// all of it, so it runs alone).
    pub async fn read_room(&self, len: u64) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let kib = u32::try_from(len.div_ceil(1024)).unwrap_or(u32::MAX);
        self.reads
            .acquire_many(kib.clamp(1, self.read_permits))
            .await
            .ok()
    }

    /// Bytes of block fetches in flight now.
    pub fn inflight_read_bytes(&self) -> u64 {
        u64::from(self.read_permits).saturating_sub(self.reads.available_permits() as u64) * 1024
    }

    pub fn get(&self, sst: &Arc<str>, offset: u64) -> Option<Block> {
        let b = self.inner.get(&(Arc::clone(sst), offset));
        if b.is_some() {
            self.hits.incr();
        } else {
            self.misses.incr();
        }
        b
    }

    pub fn insert(&self, sst: &Arc<str>, offset: u64, block: Block) {
        self.inner.insert((Arc::clone(sst), offset), block);
    }

    /// Approximate bytes held.
    pub fn size_bytes(&self) -> u64 {
        self.inner.weighted_size()
    }

    /// Its size and counters now.
    pub fn snapshot(&self) -> BlockCacheSnapshot {
        BlockCacheSnapshot {
            bytes: self.size_bytes(),
            hits: self.hits.get(),
            misses: self.misses.get(),
        }
    }
}
