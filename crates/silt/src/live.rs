//! Counts of live engine objects, for leak tests and the metrics: each counted type holds
//! a [`LiveToken`] that increments its counter on creation and decrements it on drop.

use std::sync::atomic::{AtomicI64, Ordering};

static DB_INNERS: AtomicI64 = AtomicI64::new(0);
static MEMTABLES: AtomicI64 = AtomicI64::new(0);
static SST_HANDLES: AtomicI64 = AtomicI64::new(0);
static WALS: AtomicI64 = AtomicI64::new(0);

/// Which counter a token belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Db,
    Memtable,
    Sst,
    Wal,
}

impl Kind {
    fn counter(self) -> &'static AtomicI64 {
        match self {
            Kind::Db => &DB_INNERS,
            Kind::Memtable => &MEMTABLES,
            Kind::Sst => &SST_HANDLES,
            Kind::Wal => &WALS,
        }
    }
}

/// Increments its kind's counter while alive.
#[derive(Debug)]
pub(crate) struct LiveToken(Kind);

impl LiveToken {
    pub fn new(kind: Kind) -> Self {
        kind.counter().fetch_add(1, Ordering::Relaxed);
        LiveToken(kind)
    }
}

impl Drop for LiveToken {
    fn drop(&mut self) {
        self.0.counter().fetch_sub(1, Ordering::Relaxed);
    }
}

crate::metric::snapshot! {
    /// Live engine objects in this process (all databases together).
    pub struct LiveObjects;
    {
        /// Database states (a `Db` and its background tasks share one).
        databases: i64, Gauge "silt_live_databases",
        /// Memtables (active and frozen).
        memtables: i64, Gauge "silt_live_memtables",
        /// Open SST handles.
        sst_handles: i64, Gauge "silt_live_sst_handles",
        /// Remote WAL states.
        wals: i64, Gauge "silt_live_wals",
    }
}

/// Current counts of live engine objects.
pub fn live_objects() -> LiveObjects {
    LiveObjects {
        databases: DB_INNERS.load(Ordering::Relaxed),
        memtables: MEMTABLES.load(Ordering::Relaxed),
        sst_handles: SST_HANDLES.load(Ordering::Relaxed),
        wals: WALS.load(Ordering::Relaxed),
    }
}
