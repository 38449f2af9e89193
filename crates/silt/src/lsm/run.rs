//! A sorted run: key-ordered, non-overlapping SSTs written by one compaction.

use std::sync::Arc;

use silt_format::manifest::SortedRun;
use silt_format::{Entry, SeqNo};

use super::cache::BlockCache;
use super::sst::SstHandle;
use crate::error::Result;
use crate::objstore::Storage;

/// An open sorted run.
#[derive(Debug)]
pub(crate) struct RunHandle {
    pub id: u64,
    /// Key-ordered, non-overlapping.
    pub ssts: Vec<Arc<SstHandle>>,
}

impl RunHandle {
    /// The manifest form of this run.
    pub fn to_manifest(&self) -> SortedRun {
        SortedRun {
            id: self.id,
            ssts: self.ssts.iter().map(|s| s.info.clone()).collect(),
        }
    }

    /// Bytes of every SST in the run.
    pub fn size(&self) -> u64 {
        self.ssts.iter().map(|s| s.info.size).sum()
    }

    /// Index of the first SST whose largest key is `>= key`.
    pub fn find(&self, key: &[u8]) -> usize {
        self.ssts
            .partition_point(|s| s.info.props.largest_key.as_slice() < key)
    }

    /// Newest entry for `key` with sequence `<= seq` in this run.
    pub async fn get(
        &self,
        storage: &Storage,
        cache: &BlockCache,
        key: &[u8],
        seq: SeqNo,
    ) -> Result<Option<Entry>> {
        match self.ssts.get(self.find(key)) {
            Some(sst) => sst.get(storage, cache, key, seq).await,
            None => Ok(None),
        }
    }
}
