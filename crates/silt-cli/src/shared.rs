//! Small items several commands share: the write durability of `load` and the bench
//! workloads, the object-store wrappers of the global flags, and writing an output file.
//! Both the command-line definitions (`cli`, `bench`) and the commands use them, so they live
//! apart from either.

use std::path::Path;

use anyhow::{Context, Result};
use clap::ValueEnum;
use silt::objstore::{FaultSpec, LatencySpec};
use silt::DbBuilder;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LoadDurability {
    /// Acknowledged once in the memtable and WAL buffer.
    Buffered,
    /// Acknowledged once fdatasync'ed in the local log (needs `local_log` in --settings).
    Local,
    /// Acknowledged once the WAL segment is in the object store.
    Remote,
}

impl From<LoadDurability> for silt::Durability {
    fn from(d: LoadDurability) -> Self {
        match d {
            LoadDurability::Buffered => silt::Durability::Buffered,
            LoadDurability::Local => silt::Durability::Local,
            LoadDurability::Remote => silt::Durability::Remote,
        }
    }
}

/// How the store is wrapped for a command: `--store-latency` and `--store-faults`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreStack {
    pub latency: Option<LatencySpec>,
    pub faults: Option<FaultSpec>,
}

impl StoreStack {
    /// `builder` with these wrappers.
    pub fn apply(self, builder: DbBuilder) -> DbBuilder {
        builder
            .store_latency(self.latency)
            .store_faults(self.faults)
    }
}

/// Writes `bytes` to `path`, naming the path in the error.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
