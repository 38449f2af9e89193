//! One view of every metric: [`Metrics`], a struct of the components' typed snapshots,
//! and its Prometheus text.
//!
//! Each component owns its figures and their Prometheus names, defined once next to its
//! snapshot type: [`DbStats`] (`silt_stats_*`), [`EngineSnapshot`] (`silt_engine_*`),
//! [`WalSnapshot`] (`silt_wal_*`), [`FollowerSnapshot`] (`silt_follower_*`), [`LocalLogSnapshot`] (`silt_local_log_*`),
//! [`StoreMetricsSnapshot`] (`silt_store_*`, latency `silt_store_latency_*`),
//! [`RetrySnapshot`] (`silt_store_retries_*`), [`FaultSnapshot`] (`silt_store_faults_*`),
//! [`BlockCacheSnapshot`] (`silt_block_cache_*`), [`DiskCacheSnapshot`]
//! (`silt_disk_cache_*`), [`LiveObjects`] (`silt_live_*`), and
//! `silt_process_resident_bytes`.

use serde::Serialize;

use super::{Db, DbStats, EngineSnapshot, FollowerSnapshot};
use crate::live::LiveObjects;
use crate::lsm::cache::BlockCacheSnapshot;
use crate::lsm::disk_cache::DiskCacheSnapshot;
use crate::metric::{since_opt, Kind, PromText};
use crate::objstore::{FaultSnapshot, RetrySnapshot, StoreMetricsSnapshot};
use crate::wal::local::LocalLogSnapshot;
use crate::wal::remote::WalSnapshot;

/// Prometheus name of [`Metrics::process_resident_bytes`].
const PROM_RESIDENT_BYTES: &str = "silt_process_resident_bytes";

/// Everything measurable about a database, at one moment (each figure read atomically,
/// not all at one instant).
///
/// [`Metrics::since`] gives the change between two readings: counters become differences,
/// gauges keep the later value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metrics {
    /// Gauges: memtables, caches, WAL buffer, LSM shape, sequence numbers.
    pub stats: DbStats,
    /// Flush, compaction, GC and recovery counters.
    pub engine: EngineSnapshot,
    /// Remote WAL counters (absent when read-only).
    pub wal: Option<WalSnapshot>,
    /// A follower's progress and lag (absent for other handles).
    pub follower: Option<FollowerSnapshot>,
    /// Local log counters (absent without a local log).
    pub local_log: Option<LocalLogSnapshot>,
    /// Object-store requests by kind, bytes, latency quantiles.
    pub store: StoreMetricsSnapshot,
    /// Store requests retried after transient errors, by request class and cause.
    pub store_retries: RetrySnapshot,
    /// Faults the `--store-faults` layer injected (absent without one).
    pub store_faults: Option<FaultSnapshot>,
    /// The in-memory block cache: size, hits, misses.
    pub block_cache: BlockCacheSnapshot,
    /// The local-disk block cache (absent when `cache.disk_dir` is not set).
    pub disk_cache: Option<DiskCacheSnapshot>,
    /// Live engine objects in the process.
    pub live: LiveObjects,
    /// Resident memory of the process in bytes (Linux `/proc/self/status`), if known.
    pub process_resident_bytes: Option<u64>,
}

impl Metrics {
    /// The change from `earlier` to `self`: every counter the difference (0 if it went
    /// down), every gauge (and the store's latency summaries) as in `self`. A component
    /// `earlier` lacks counts from zero.
    #[must_use]
    pub fn since(&self, earlier: &Metrics) -> Metrics {
        Metrics {
            stats: self.stats.since(&earlier.stats),
            engine: self.engine.since(&earlier.engine),
            wal: since_opt(self.wal.as_ref(), earlier.wal.as_ref(), WalSnapshot::since),
            follower: since_opt(
                self.follower.as_ref(),
                earlier.follower.as_ref(),
                FollowerSnapshot::since,
            ),
            local_log: since_opt(
                self.local_log.as_ref(),
                earlier.local_log.as_ref(),
                LocalLogSnapshot::since,
            ),
            store: self.store.since(&earlier.store),
            store_retries: self.store_retries.since(&earlier.store_retries),
            store_faults: since_opt(
                self.store_faults.as_ref(),
                earlier.store_faults.as_ref(),
                FaultSnapshot::since,
            ),
            block_cache: self.block_cache.since(&earlier.block_cache),
            disk_cache: since_opt(
                self.disk_cache.as_ref(),
                earlier.disk_cache.as_ref(),
                DiskCacheSnapshot::since,
            ),
            live: self.live.since(&earlier.live),
            process_resident_bytes: self.process_resident_bytes,
        }
    }

    /// The Prometheus text exposition format: a `# TYPE` line (`counter` or `gauge`) and a
    /// sample per figure, under the names the components define (see the module docs).
    /// Absent components are left out.
    pub fn to_prometheus(&self) -> String {
        let mut out = PromText::default();
        self.stats.write_prometheus(&mut out);
        self.engine.write_prometheus(&mut out);
        if let Some(w) = &self.wal {
            w.write_prometheus(&mut out);
        }
        if let Some(f) = &self.follower {
            f.write_prometheus(&mut out);
        }
        if let Some(l) = &self.local_log {
            l.write_prometheus(&mut out);
        }
        self.store.write_prometheus(&mut out);
        self.store_retries.write_prometheus(&mut out);
        if let Some(f) = &self.store_faults {
            f.write_prometheus(&mut out);
        }
        self.block_cache.write_prometheus(&mut out);
        if let Some(d) = &self.disk_cache {
            d.write_prometheus(&mut out);
        }
        self.live.write_prometheus(&mut out);
        if let Some(rss) = self.process_resident_bytes {
            out.sample(PROM_RESIDENT_BYTES, Kind::Gauge, rss);
        }
        out.finish()
    }
}

/// Resident set size from `/proc/self/status` (`VmRSS`), in bytes.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl Db {
    /// All metrics now.
    pub fn metrics(&self) -> Metrics {
        let inner = &self.inner;
        Metrics {
            stats: self.stats(),
            engine: inner.counters.snapshot(),
            wal: inner.wal.as_ref().map(|w| w.metrics().snapshot()),
            follower: inner.follower_snapshot(),
            local_log: inner
                .local
                .as_ref()
                .map(crate::wal::local::LocalLog::metrics),
            store: inner.store_metrics.snapshot(),
            store_retries: inner.storage.retries().snapshot(),
            store_faults: inner.store_metrics.faults(),
            block_cache: inner.cache.snapshot(),
            disk_cache: inner
                .cache
                .disk
                .as_ref()
                .map(super::super::lsm::disk_cache::DiskCache::snapshot),
            live: crate::live::live_objects(),
            process_resident_bytes: resident_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashSet;

    use super::*;
    use crate::config::Settings;

    #[tokio::test]
    async fn prometheus_names_are_unique_and_typed() {
        let db = Db::open("memory://", Settings::small_for_tests())
            .await
            .unwrap();
        db.put("k", "v").await.unwrap();
        let text = db.metrics().to_prometheus();
        let mut seen = HashSet::new();
        for pair in text.lines().collect::<Vec<_>>().chunks(2) {
            let [ty, sample] = pair else {
                panic!("odd line count: {text}")
            };
            let name = sample.split(' ').next().unwrap();
            assert!(
                *ty == format!("# TYPE {name} counter") || *ty == format!("# TYPE {name} gauge"),
                "{ty} / {sample}"
            );
            assert!(name.starts_with("silt_"), "{name}");
            assert!(seen.insert(name.to_string()), "{name} twice");
        }
        for name in EngineSnapshot::PROMETHEUS_NAMES
            .iter()
            .chain(WalSnapshot::PROMETHEUS_NAMES)
            .chain(DbStats::PROMETHEUS_NAMES)
            .chain(BlockCacheSnapshot::PROMETHEUS_NAMES)
            .chain(LiveObjects::PROMETHEUS_NAMES)
        {
            assert!(seen.contains(*name), "{name} missing");
        }
        assert!(seen.contains("silt_store_wal_puts"));
        assert!(seen.contains("silt_store_retries_by_request_get_throttled"));
        db.close().await.unwrap();
    }

    #[tokio::test]
    async fn since_subtracts_counters_and_keeps_gauges() {
        let db = Db::open("memory://", Settings::small_for_tests())
            .await
            .unwrap();
        let before = db.metrics();
        for i in 0..3 {
            db.put(format!("k{i}"), "v").await.unwrap();
        }
        let after = db.metrics();
        let d = after.since(&before);
        let wal = d.wal.unwrap();
        assert_eq!(wal.records_appended, 3);
        assert_eq!(d.store.wal_puts, wal.put_requests);
        assert_eq!(d.stats.visible_seq, after.stats.visible_seq);
        assert_eq!(d.engine.recovery_segments, 0);
        assert_eq!(
            d.store.put_class_requests(),
            d.store.put_requests() + d.store.lists + d.store.copies + d.store.renames
        );
        assert!(d.store_faults.is_none());
        db.close().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn injected_faults_are_in_the_metrics() {
        let store: std::sync::Arc<dyn object_store::ObjectStore> =
            std::sync::Arc::new(object_store::memory::InMemory::new());
        let db = Db::builder(store, object_store::path::Path::from("db"))
            .settings(Settings::small_for_tests())
            .store_faults(Some("put=0.3".parse().unwrap()))
            .open()
            .await
            .unwrap();
        for i in 0..20 {
            db.put(format!("k{i}"), "v").await.unwrap();
        }
        let m = db.metrics();
        let faults = m.store_faults.unwrap();
        assert!(faults.errors > 0, "{faults:?}");
        // Every injected failure was retried (and seen as an error by the metrics).
        assert!(m.store_retries.total >= faults.errors, "{m:?}");
        assert!(m.store.errors >= faults.errors, "{m:?}");
        let text = m.to_prometheus();
        assert!(
            text.contains(&format!("\nsilt_store_faults_errors {}\n", faults.errors)),
            "{text}"
        );
        db.close().await.unwrap();
    }
}
