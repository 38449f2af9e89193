//! An open SST: its index and bloom filter stay in memory, data blocks come from the block
//! cache or one ranged GET each.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use silt_format::block::{decode_block_frame, Block};
use silt_format::bloom::BloomFilter;
use silt_format::manifest::SstInfo;
use silt_format::sst::{Footer, IndexBlock};
use silt_format::{Entry, FormatError, SeqNo};

use super::cache::BlockCache;
use crate::error::{Error, Result};
use crate::live::{Kind, LiveToken};
use crate::objstore::Storage;

/// Bytes fetched from the end of an SST when opening it, hoping to get footer and metadata
/// in one request.
const TAIL_PREFETCH: u64 = 64 * 1024;

/// An SST referenced by the current version.
#[derive(Debug)]
pub(crate) struct SstHandle {
    pub info: SstInfo,
    pub id: Arc<str>,
    path: Path,
    index: IndexBlock,
    filter: BloomFilter,
    _live: LiveToken,
}

impl SstHandle {
    /// Open by fetching the footer and metadata region (usually one ranged GET).
    pub async fn open(storage: &Storage, info: SstInfo) -> Result<Self> {
        let path = storage.sst_path(&info.id);
        let size = info.size;
        let footer_size = Footer::SIZE as u64;
        if size < footer_size {
            return Err(corrupt(
                &path,
                format!("object of {size} bytes is smaller than a footer"),
            ));
        }
        let tail_start = size.saturating_sub(TAIL_PREFETCH);
        let tail = storage.get_range(&path, tail_start..size).await?;
        let footer_bytes = tail
            .get(tail.len().saturating_sub(Footer::SIZE)..)
            .ok_or_else(|| corrupt(&path, "short read of the footer".into()))?;
        let footer =
            Footer::decode(footer_bytes, size).map_err(|e| Error::corrupt(path.to_string(), e))?;
        let meta_start = footer.meta_start();
        let meta = if meta_start >= tail_start {
            tail.slice((meta_start - tail_start) as usize..)
        } else {
            storage.get_range(&path, meta_start..size).await?
        };
        Self::from_meta(info, path, &footer, &meta, meta_start)
    }

    /// Open from the whole file already in memory (right after writing it).
    pub fn from_bytes(storage: &Storage, info: SstInfo, data: &Bytes) -> Result<Self> {
        let path = storage.sst_path(&info.id);
        let size = data.len() as u64;
        let footer_bytes = data
            .get(data.len().saturating_sub(Footer::SIZE)..)
            .ok_or_else(|| corrupt(&path, "short file".into()))?;
        let footer =
            Footer::decode(footer_bytes, size).map_err(|e| Error::corrupt(path.to_string(), e))?;
        let meta_start = footer.meta_start();
        let meta = data.slice(meta_start as usize..);
        Self::from_meta(info, path, &footer, &meta, meta_start)
    }

    fn from_meta(
        info: SstInfo,
        path: Path,
        footer: &Footer,
        meta: &Bytes,
        meta_start: u64,
    ) -> Result<Self> {
        let frame = |h: silt_format::sst::BlockHandle| -> Result<Bytes> {
            let start = h
                .offset
                .checked_sub(meta_start)
                .ok_or_else(|| corrupt(&path, "block handle before metadata".into()))?;
            let r = start as usize..(start + h.len) as usize;
            let raw = meta
                .get(r)
                .ok_or_else(|| corrupt(&path, "block handle past the end".into()))?;
            decode_block_frame(raw).map_err(|e| Error::corrupt(path.to_string(), e))
        };
        let index = IndexBlock::decode(frame(footer.index)?)
            .map_err(|e| Error::corrupt(path.to_string(), e))?;
        let filter = BloomFilter::decode(frame(footer.filter)?)
            .map_err(|e| Error::corrupt(path.to_string(), e))?;
        Ok(SstHandle {
            id: Arc::from(info.id.as_str()),
            info,
            path,
            index,
            filter,
            _live: LiveToken::new(Kind::Sst),
        })
    }

    /// Bytes of index and filter held in memory.
    pub fn meta_bytes(&self) -> usize {
        self.index.size_bytes() + self.filter.size_bytes()
    }

    pub fn index(&self) -> &IndexBlock {
        &self.index
    }

    fn in_range(&self, key: &[u8]) -> bool {
        let p = &self.info.props;
        key >= p.smallest_key.as_slice() && key <= p.largest_key.as_slice()
    }

    /// Data block `i`, from the cache or the store.
    pub async fn block(&self, storage: &Storage, cache: &BlockCache, i: usize) -> Result<Block> {
        let h = self
            .index
            .entries()
            .get(i)
            .ok_or_else(|| Error::Internal(format!("block {i} out of range in {}", self.path)))?
            .handle;
        if let Some(b) = cache.get(&self.id, h.offset) {
            return Ok(b);
        }
        let block = self.fetch(storage, cache, h).await?;
        cache.insert(&self.id, h.offset, block.clone());
        Ok(block)
    }

    /// Data blocks `from..` whose frames add up to about `max_bytes` (at least one), in one
    /// ranged GET, without touching the cache: sequential readers (compaction) pay one
    /// request per `max_bytes` instead of one per block.
    pub async fn blocks_readahead(
        &self,
        storage: &Storage,
        cache: &BlockCache,
        from: usize,
        max_bytes: u64,
    ) -> Result<Vec<Block>> {
        let entries = self.index.entries();
        let Some(first) = entries.get(from) else {
            return Ok(Vec::new());
        };
        let start = first.handle.offset;
        let mut end = from;
        while end < entries.len()
            && (end == from
                || entries[end].handle.offset + entries[end].handle.len - start <= max_bytes)
        {
            end += 1;
        }
        let last = &entries[end - 1].handle;
        let len = last.offset + last.len - start;
        let room = cache.read_room(len).await;
        let bytes = storage.get_range(&self.path, start..start + len).await?;
        drop(room);
        entries[from..end]
            .iter()
            .map(|e| {
                let at = (e.handle.offset - start) as usize;
                let frame = bytes
                    .get(at..at + e.handle.len as usize)
                    .ok_or_else(|| corrupt(&self.path, "short read-ahead".into()))?;
                let raw = decode_block_frame(frame)
                    .map_err(|err| Error::corrupt(self.path.to_string(), err))?;
                Block::decode(raw).map_err(|err| Error::corrupt(self.path.to_string(), err))
            })
            .collect()
    }

    async fn fetch(
        &self,
        storage: &Storage,
        cache: &BlockCache,
        h: silt_format::sst::BlockHandle,
    ) -> Result<Block> {
        if let Some(disk) = &cache.disk {
            if let Some(frame) = disk.get(&self.id, h.offset).await {
                match decode_block_frame(&frame).and_then(Block::decode) {
                    Ok(b) => return Ok(b),
                    // A damaged cache file: drop it and read the store.
                    Err(_) => disk.discard(&self.id, h.offset).await,
                }
            }
        }
        // Bounded bytes in flight (settings.max_inflight_read_bytes): readers wait here.
        let room = cache.read_room(h.len).await;
        let frame = storage.get_range(&self.path, h.range()).await?;
        let raw =
            decode_block_frame(&frame).map_err(|e| Error::corrupt(self.path.to_string(), e))?;
        let block = Block::decode(raw).map_err(|e| Error::corrupt(self.path.to_string(), e))?;
        drop(room);
        if let Some(disk) = &cache.disk {
            disk.insert(&self.id, h.offset, &frame).await;
        }
        Ok(block)
    }

    /// Newest entry for `key` with sequence `<= seq`, if this SST has one.
    pub async fn get(
        &self,
        storage: &Storage,
        cache: &BlockCache,
        key: &[u8],
        seq: SeqNo,
    ) -> Result<Option<Entry>> {
        if !self.in_range(key) || !self.filter.may_contain(key) {
            return Ok(None);
        }
        let Some(i) = self.index.find(key, seq) else {
            return Ok(None);
        };
        let block = self.block(storage, cache, i).await?;
        match block.iter_from(key, seq).next() {
            Some(Ok(e)) if e.key.as_ref() == key => Ok(Some(e)),
            Some(Ok(_)) | None => Ok(None),
            Some(Err(e)) => Err(Error::corrupt(self.path.to_string(), e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn corrupt(path: &Path, detail: String) -> Error {
    Error::corrupt(
        path.to_string(),
        FormatError::Corrupt {
            what: "sst",
            detail,
        },
    )
}
