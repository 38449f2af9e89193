//! The LSM tree: SST handles, the block cache, versions, memtable flush and merging scans.

pub(crate) mod cache;
pub(crate) mod compaction;
pub mod disk_cache;
pub(crate) mod flush;
pub(crate) mod iter;
pub(crate) mod run;
pub(crate) mod sst;
pub(crate) mod version;
