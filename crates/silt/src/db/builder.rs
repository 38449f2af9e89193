//! [`DbBuilder`]: settings plus pluggable components.

use std::sync::Arc;

use object_store::path::Path;
use object_store::ObjectStore;

use super::Db;
use crate::clock::{Clock, TokioClock};
use crate::config::Settings;
use crate::error::Result;
use crate::objstore::{store_from_url, wrap, FaultSpec, LatencySpec, Storage, StoreMetrics};

/// Configures and opens a [`Db`].
#[derive(Debug)]
pub struct DbBuilder {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) root: Path,
    pub(crate) store_latency: Option<LatencySpec>,
    pub(crate) store_faults: Option<FaultSpec>,
    pub(crate) settings: Settings,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) read_only: bool,
    pub(crate) at_checkpoint: Option<String>,
    pub(crate) follower: bool,
}

impl DbBuilder {
    /// A builder for the database under `root` in `store`.
    pub fn new(store: Arc<dyn ObjectStore>, root: Path) -> Self {
        DbBuilder {
            store,
            root,
            store_latency: None,
            store_faults: None,
            settings: Settings::default(),
            clock: Arc::new(TokioClock),
            read_only: false,
            at_checkpoint: None,
            follower: false,
        }
    }

    /// A builder for the database a URL names (see [`store_from_url`]).
    ///
    /// # Errors
    /// [`crate::Error::InvalidSettings`] for a bad URL.
    pub fn from_url(url: &str) -> Result<Self> {
        let (store, root) = store_from_url(url)?;
        Ok(Self::new(store, root))
    }

    /// Use these settings (validated on open).
    #[must_use]
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Use this clock for timers (tests use a paused tokio clock).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Open without claiming the writer role: reads see the manifest and WAL as of opening,
    /// writes fail with [`crate::Error::ReadOnly`], and no other writer is fenced.
    ///
    /// The handle leases the manifest it opened (a `lease` checkpoint, see
    /// [`crate::Db::list_checkpoints`]) so the writer's GC keeps what it reads; the lease
    /// lives `gc.lease_lifetime`, is renewed every third of that while the handle is open
    /// and is deleted by [`crate::Db::close`] (a dropped handle's lease just expires). If
    /// renewals keep failing until it expires, every later call fails with
    /// [`crate::Error::LeaseLost`] (kind `Closed(Poisoned)`: reopen).
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Open read-only at checkpoint `name` ([`crate::Db::create_checkpoint`]): the
    /// manifest it pins, and the WAL replayed only up to its sequence number, so reads see
    /// the database exactly as it was then, whatever was written, compacted or collected
    /// since. Implies [`DbBuilder::read_only`] (and its lease).
    ///
    /// # Errors (on open)
    /// [`crate::Error::Checkpoint`] (kind `InvalidInput`) when there is no such checkpoint
    /// or it has expired; [`crate::Error::InvalidInput`] for a bad name;
    /// [`crate::Error::Corrupt`] when the objects it pins are missing.
    #[must_use]
    pub fn at_checkpoint(mut self, name: impl Into<String>) -> Self {
        self.read_only = true;
        self.at_checkpoint = Some(name.into());
        self
    }

    /// Open as a **follower**: read-only (with a reader lease, as
    /// [`DbBuilder::read_only`]), and kept up with the writer by a background task that
    /// polls the store every `follower.poll_interval`, applying new WAL segments (only a
    /// contiguous prefix of the writer's history: reads never see past a missing segment
    /// or sequence gap) and swapping in newer manifests (moving its lease first). Reads
    /// fail with [`crate::Error::Stale`] (kind `Unavailable`) once the follower has not
    /// been caught up with the store for `follower.max_staleness`.
    /// [`crate::Db::follower_status`] and [`crate::Metrics::follower`] report its lag.
    ///
    /// The open itself polls once, so the handle starts caught up. To promote a
    /// follower, open the database as its writer ([`crate::Db::promote`]).
    ///
    /// # Errors (on open)
    /// [`crate::Error::InvalidInput`] together with [`DbBuilder::at_checkpoint`].
    #[must_use]
    pub fn follower(mut self) -> Self {
        self.read_only = true;
        self.follower = true;
        self
    }

    /// Add a delay to every object-store request (benchmarks and tests: a local directory
    /// behaving like a remote store).
    #[must_use]
    pub fn store_latency(mut self, latency: Option<LatencySpec>) -> Self {
        self.store_latency = latency;
        self
    }

    /// Inject object-store faults (tests and benchmarks: transient errors, lost responses,
    /// timeouts, latency spikes, an outage; see [`FaultSpec`]). The engine's retries see
    /// them as they would a real store's, and the store metrics count them.
    #[must_use]
    pub fn store_faults(mut self, faults: Option<FaultSpec>) -> Self {
        self.store_faults = faults;
        self
    }

    /// The object store stack the database will use: `InstrumentedStore` on top of the
    /// optional `FaultStore` on top of the optional `LatencyStore` on top of the given store
    /// (see `docs/ARCHITECTURE.md`).
    /// The same store, options, settings and clock, as a writer's builder (a follower's
    /// promotion).
    pub(crate) fn writer_like(&self) -> DbBuilder {
        DbBuilder {
            store: Arc::clone(&self.store),
            root: self.root.clone(),
            store_latency: self.store_latency,
            store_faults: self.store_faults,
            settings: self.settings.clone(),
            clock: Arc::clone(&self.clock),
            read_only: false,
            at_checkpoint: None,
            follower: false,
        }
    }

    pub(crate) fn storage(&self) -> (Storage, Arc<StoreMetrics>) {
        let (store, metrics) = wrap(
            Arc::clone(&self.store),
            self.store_latency,
            self.store_faults,
        );
        let storage = Storage::new(store, self.root.clone())
            .with_retry(self.settings.store.retry.clone(), Arc::clone(&self.clock));
        (storage, metrics)
    }

    /// Open the database.
    ///
    /// # Errors
    /// See [`Db::open`].
    pub async fn open(self) -> Result<Db> {
        super::open::open(self).await
    }
}
