//! Bounded in-memory cache of decoded SST data blocks, weighed by their real size.

use std::sync::Arc;

use moka::sync::Cache;
use silt_format::block::Block;

use super::disk_cache::DiskCache;

/// Key: SST id and the block's offset in the file.
type Key = (Arc<str>, u64);

/// A byte-bounded block cache. Each cached [`Block`] owns exactly its own bytes
/// (`decode_block_frame` allocates a fresh buffer), so the weight is the memory held.
#[derive(Clone, Debug)]
pub(crate) struct BlockCache {
    inner: Cache<Key, Block>,
    /// The optional local-disk tier below it.
    pub disk: Option<DiskCache>,
    pub hits: Arc<std::sync::atomic::AtomicU64>,
    pub misses: Arc<std::sync::atomic::AtomicU64>,
}

impl BlockCache {
    pub fn new(capacity_bytes: u64, disk: Option<DiskCache>) -> Self {
        let inner = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|_k: &Key, b: &Block| u32::try_from(b.size_bytes()).unwrap_or(u32::MAX))
            .build();
        BlockCache {
            inner,
            disk,
            hits: Arc::default(),
            misses: Arc::default(),
        }
    }

    pub fn get(&self, sst: &Arc<str>, offset: u64) -> Option<Block> {
        let b = self.inner.get(&(Arc::clone(sst), offset));
        let counter = if b.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        b
    }

    pub fn insert(&self, sst: &Arc<str>, offset: u64, block: Block) {
        self.inner.insert((Arc::clone(sst), offset), block);
    }

    /// Approximate bytes held.
    pub fn size_bytes(&self) -> u64 {
        self.inner.weighted_size()
    }
}
