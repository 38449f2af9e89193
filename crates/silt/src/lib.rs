//! Silt: an embedded LSM key-value store whose durable home is object storage.
//!
//! Writes go to a remote write-ahead log (segments in the object store) and a memtable;
//! memtables become SSTs in the object store. See `docs/ARCHITECTURE.md`.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use silt::{Db, Durability, Settings, WriteBatch, WriteOptions};
//!
//! let db = Db::open("memory://", Settings::default()).await?;
//! db.put("user:1", "ada").await?; // durable in the object store when this returns
//! let mut batch = WriteBatch::new();
//! batch.put("user:2", "grace").delete("user:1");
//! db.write_with(batch, &WriteOptions::with_durability(Durability::Buffered)).await?;
//! let snap = db.snapshot();
//! db.put("user:3", "barbara").await?;
//! let seen = snap.scan_prefix("user:")?.collect(100).await?;
//! assert_eq!(seen.len(), 1);
//! db.close().await?;
//! # Ok::<(), silt::Error>(()) }).unwrap();
//! ```

// Every public item is documented (`cargo doc`, and clippy with -D warnings, check it).
#![warn(missing_docs)]
// No unwrap on I/O or decoded data outside tests (tests may: clippy.toml).
#![warn(clippy::unwrap_used)]
// Time and tasks only through `clock.rs` and `db/tasks.rs` (the methods are listed in
// clippy.toml); unit tests may use them directly.
#![cfg_attr(not(test), deny(clippy::disallowed_methods))]

// The public API: `Db` and its builder, settings, batches and options, iterators and
// snapshots, errors, and the metrics snapshots. Modules that are public only for the
// `silt` CLI, its benchmarks and the tests are `#[doc(hidden)]`, each with its reason;
// they are not a stable API.

mod checkpoint;
pub mod clock;
pub mod config;
mod db;
pub mod error;
#[doc(hidden)] // The CLI's `inspect`, `compact` and `gc` reports; not a stable API.
pub mod inspect;
mod live;
mod lsm;
mod manifest;
mod memtable;
mod metric;
#[doc(hidden)] // For the CLI's benchmarks and the tests; the public parts are re-exported.
pub mod objstore;
mod retry;
mod wal;

pub use bytes::Bytes;
pub use config::{
    CacheSettings, CompactionSettings, FollowerSettings, GcSettings, LocalLogMode,
    LocalLogSettings, MemoryBudget, RetrySettings, Settings, StoreSettings, WalSettings,
    MAX_BATCH_BYTES, MAX_KEY_BYTES, MAX_VALUE_BYTES,
};
pub use db::{
    CheckpointInfo, Db, DbBuilder, DbStats, Durability, EngineSnapshot, Expiry, FollowerSnapshot,
    FollowerStatus, GcReport, Metrics, Snapshot, WriteBatch, WriteOptions,
};
pub use error::{CloseReason, Error, ErrorKind, Result};
#[doc(hidden)] // Counts of live engine objects, for the leak tests.
pub use live::live_objects;
pub use live::LiveObjects;
pub use lsm::cache::BlockCacheSnapshot;
pub use lsm::disk_cache::DiskCacheSnapshot;
pub use lsm::iter::DbIterator;
pub use object_store;
pub use objstore::{
    FaultSnapshot, FaultSpec, LatencySpec, LatencySummary, ParseFaultError, ParseLatencyError,
    RetrySnapshot, StoreMetricsSnapshot,
};
pub use silt_format::checkpoint::CheckpointKind;
pub use silt_format::{sst::SstOptions, Compression};
pub use wal::local::LocalLogSnapshot;
#[doc(hidden)] // The local log on its own, for the CLI's `bench wal-wa`.
pub use wal::local::{BlockObserver, CommitTicket, LocalLog};
pub use wal::remote::WalSnapshot;
