//! A version: what a read must consult, swapped atomically as memtables rotate and flush.

use std::sync::Arc;

use crate::lsm::run::RunHandle;
use crate::lsm::sst::SstHandle;
use crate::memtable::Memtable;

/// Memtables and SSTs visible to readers. Cloned (cheaply) by every read.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    /// The memtable receiving writes.
    pub active: Arc<Memtable>,
    /// Frozen memtables waiting for their SST flush, newest first.
    pub frozen: Vec<Arc<Memtable>>,
    /// L0 SSTs, newest first.
    pub l0: Vec<Arc<SstHandle>>,
    /// Sorted runs, newest first.
    pub runs: Vec<Arc<RunHandle>>,
}

impl Version {
    pub fn new(active: Arc<Memtable>, l0: Vec<Arc<SstHandle>>, runs: Vec<Arc<RunHandle>>) -> Self {
        Version {
            active,
            frozen: Vec::new(),
            l0,
            runs,
        }
    }
}
