//! [`InstrumentedStore`]: a [`Layered`] store whose [`Instrumentation`] layer counts
//! requests, bytes and latencies into a shared [`StoreMetrics`]. It sits on top of the
//! stack (see the [`objstore`](super) module docs), so its latency histograms include any
//! delay a [`LatencyStore`] injects: they show what the engine experiences. [`wrap`]
//! builds the stack.
//!
//! # What is counted
//!
//! * Every request is counted when it is issued, whatever its outcome; a request that
//!   fails (including `NotFound` and lost conditional PUTs) also counts in `errors`.
//! * GETs are split into whole GETs (`gets`), ranged GETs (`get_ranges`: `get_opts` with a
//!   range, and each range of `get_ranges`) and HEADs (`heads`: `get_opts` with `head`).
//! * PUTs are split into plain PUTs (`puts`, [`PutMode::Overwrite`]) and conditional ones
//!   (`put_conditionals`, [`PutMode::Create`] or [`PutMode::Update`]); a conditional PUT
//!   refused by the store (`AlreadyExists` / `Precondition`) also counts in
//!   `put_conditional_conflicts`.
//! * `bytes_read` counts body bytes as the caller consumes a GET's stream (for a local
//!   file payload, the returned range length); `bytes_written` counts PUT payloads and
//!   multipart parts as sent.
//! * PUTs to a path with a `wal` component also count in `wal_puts` / `wal_bytes`; GETs
//!   (whole or ranged, not HEADs) of a path with an `sst` component count in `sst_gets`.
//! * Each `delete_stream` location counts as one delete; each `list`,
//!   `list_with_offset` or `list_with_delimiter` call as one list.
//!
//! Latencies are measured with [`tokio::time::Instant`] (so paused-time tests see them),
//! one sample per call, from when it is issued: a GET until its body stream ends (or is
//! dropped), a list or delete stream until it ends (or is dropped), everything else until
//! its future returns.
//!
//! # Derived figures
//!
//! [`StoreMetricsSnapshot`] defines the sums the reports use, once:
//!
//! * [`get_requests`](StoreMetricsSnapshot::get_requests): whole and ranged GETs;
//! * [`put_requests`](StoreMetricsSnapshot::put_requests): requests that upload an object
//!   (plain and conditional PUTs, multipart starts, parts and completions);
//! * the price classes of S3 request pricing (and of the other stores, which follow it):
//!   [`put_class_requests`](StoreMetricsSnapshot::put_class_requests), class A: PUT, COPY,
//!   POST and LIST (the uploads above, COPYs, RENAMEs, which S3 does as a COPY and a DELETE,
//!   and LISTs); [`get_class_requests`](StoreMetricsSnapshot::get_class_requests), class B:
//!   GET and HEAD. DELETEs and multipart aborts are free and in neither class;
//! * [`cost`](StoreMetricsSnapshot::cost): the two classes priced by a [`RequestPrices`].
//!
//! [`PutMode::Overwrite`]: object_store::PutMode::Overwrite
//! [`PutMode::Create`]: object_store::PutMode::Create
//! [`PutMode::Update`]: object_store::PutMode::Update

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use object_store::path::Path;
use object_store::{GetResultPayload, ObjectStore};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::faults::{FaultCounters, FaultSnapshot, FaultSpec, FaultStore};
use super::latency::{LatencySpec, LatencyStore};
pub use super::layer::RequestKind;
use super::layer::{Layer, Layered, Reply, ReplyView, Request, ResultStream};
use crate::metric::{Kind, PromText};

/// Wrap `store` as the engine should see it:
/// `InstrumentedStore → FaultStore → LatencyStore → store`.
///
/// The latency layer is left out when `latency` is `None` or zero, the fault layer when
/// `faults` is `None` or injects nothing. Returns the stack to hand to
/// [`Storage`](super::Storage) (or `Db::open_with_store`) and its metrics, which also
/// report the fault layer's injected faults ([`StoreMetrics::faults`]) when there is one.
pub fn wrap(
    store: Arc<dyn ObjectStore>,
    latency: Option<LatencySpec>,
    faults: Option<FaultSpec>,
) -> (Arc<dyn ObjectStore>, Arc<StoreMetrics>) {
    let inner: Arc<dyn ObjectStore> = match latency {
        Some(spec) if !spec.is_zero() => Arc::new(LatencyStore::new(store, spec)),
        _ => store,
    };
    let (inner, fault_counters): (Arc<dyn ObjectStore>, _) = match faults {
        Some(spec) if !spec.is_empty() => {
            let faulty = FaultStore::new(inner, spec);
            let counters = faulty.counters();
            (Arc::new(faulty), Some(counters))
        }
        _ => (inner, None),
    };
    let metrics = Arc::new(StoreMetrics {
        faults: fault_counters,
        ..StoreMetrics::default()
    });
    let instrumented = InstrumentedStore::with_metrics(inner, Arc::clone(&metrics));
    (Arc::new(instrumented), metrics)
}

const BUCKETS: usize = 65;

/// A lock-free latency histogram of microseconds in power-of-two buckets.
///
/// Bucket 0 holds 0µs, bucket `i ≥ 1` holds `[2^(i-1), 2^i)`. Quantiles report the upper
/// bound of the bucket they fall in, capped at the largest sample seen, so they are exact
/// when every sample is equal and within a factor of two otherwise.
pub struct LatencyHistogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("summary", &self.summary())
            .finish()
    }
}

impl LatencyHistogram {
    /// Record one sample.
    pub fn record(&self, d: std::time::Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let bucket = (u64::BITS - us.leading_zeros()) as usize;
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `q`-quantile (`0.0..=1.0`) in microseconds; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let max = self.max_us.load(Ordering::Relaxed);
        // Rank of the sample wanted, 1-based.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let upper = if i == 0 {
                    0
                } else if i >= 64 {
                    u64::MAX
                } else {
                    (1u64 << i) - 1
                };
                return upper.min(max);
            }
        }
        max
    }

    /// Count, mean, p50, p99 and max.
    pub fn summary(&self) -> LatencySummary {
        let count = self.count();
        LatencySummary {
            count,
            mean_us: self
                .sum_us
                .load(Ordering::Relaxed)
                .checked_div(count)
                .unwrap_or(0),
            p50_us: self.quantile_us(0.50),
            p99_us: self.quantile_us(0.99),
            max_us: self.max_us.load(Ordering::Relaxed),
        }
    }
}

/// Latency quantiles of one request kind, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples (one per call; see the module docs).
    pub count: u64,
    /// Mean.
    pub mean_us: u64,
    /// Median (bucket upper bound, capped at `max_us`).
    pub p50_us: u64,
    /// 99th percentile (bucket upper bound, capped at `max_us`).
    pub p99_us: u64,
    /// Largest sample.
    pub max_us: u64,
}

/// Counters shared by an [`InstrumentedStore`] and whoever reports on it.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    requests: [AtomicU64; RequestKind::ALL.len()],
    latency: [LatencyHistogram; RequestKind::ALL.len()],
    errors: AtomicU64,
    put_conditional_conflicts: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    wal_puts: AtomicU64,
    wal_bytes: AtomicU64,
    sst_gets: AtomicU64,
    /// The fault layer's counters, when [`wrap`] put one in the stack.
    faults: Option<Arc<FaultCounters>>,
}

impl StoreMetrics {
    /// Fresh, zeroed metrics.
    pub fn new() -> Self {
        StoreMetrics::default()
    }

    /// Requests of `kind` issued so far.
    pub fn requests(&self, kind: RequestKind) -> u64 {
        self.requests[kind.index()].load(Ordering::Relaxed)
    }

    /// The latency histogram of `kind`.
    pub fn latency(&self, kind: RequestKind) -> &LatencyHistogram {
        &self.latency[kind.index()]
    }

    /// The faults the fault layer below injected so far (`None` without one).
    pub fn faults(&self) -> Option<FaultSnapshot> {
        self.faults.as_ref().map(|f| f.snapshot())
    }

    /// A copy of every counter (each read atomically, not all at one instant).
    pub fn snapshot(&self) -> StoreMetricsSnapshot {
        let n = |k| self.requests(k);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StoreMetricsSnapshot {
            gets: n(RequestKind::Get),
            get_ranges: n(RequestKind::GetRange),
            heads: n(RequestKind::Head),
            puts: n(RequestKind::Put),
            put_conditionals: n(RequestKind::PutConditional),
            put_conditional_conflicts: load(&self.put_conditional_conflicts),
            lists: n(RequestKind::List),
            deletes: n(RequestKind::Delete),
            copies: n(RequestKind::Copy),
            renames: n(RequestKind::Rename),
            multipart_inits: n(RequestKind::MultipartInit),
            multipart_parts: n(RequestKind::MultipartPart),
            multipart_completes: n(RequestKind::MultipartComplete),
            multipart_aborts: n(RequestKind::MultipartAbort),
            errors: load(&self.errors),
            bytes_read: load(&self.bytes_read),
            bytes_written: load(&self.bytes_written),
            wal_puts: load(&self.wal_puts),
            wal_bytes: load(&self.wal_bytes),
            sst_gets: load(&self.sst_gets),
            latency: RequestKind::ALL
                .iter()
                .filter(|k| self.latency(**k).count() > 0)
                .map(|k| (k.name().to_string(), self.latency(*k).summary()))
                .collect(),
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn issue(&self, kind: RequestKind, n: u64) {
        Self::add(&self.requests[kind.index()], n);
    }

    fn finish<T>(&self, kind: RequestKind, start: Instant, r: &object_store::Result<T>) {
        self.latency(kind).record(start.elapsed());
        if r.is_err() {
            Self::add(&self.errors, 1);
        }
    }
}

/// Plain copy of [`StoreMetrics`], for stats output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreMetricsSnapshot {
    /// Whole-object GETs.
    pub gets: u64,
    /// Ranged GETs (each range of a `get_ranges` call counts).
    pub get_ranges: u64,
    /// HEADs.
    pub heads: u64,
    /// Unconditional PUTs.
    pub puts: u64,
    /// Conditional PUTs (create-only or versioned update).
    pub put_conditionals: u64,
    /// Conditional PUTs the store refused (`AlreadyExists` / `Precondition`).
    pub put_conditional_conflicts: u64,
    /// LIST calls.
    pub lists: u64,
    /// DELETEs (one per location).
    pub deletes: u64,
    /// COPYs.
    pub copies: u64,
    /// RENAMEs.
    pub renames: u64,
    /// Multipart uploads started.
    pub multipart_inits: u64,
    /// Multipart parts sent.
    pub multipart_parts: u64,
    /// Multipart uploads completed.
    pub multipart_completes: u64,
    /// Multipart uploads aborted.
    pub multipart_aborts: u64,
    /// Requests (or streamed results) that failed, of any kind.
    pub errors: u64,
    /// Body bytes read by GETs.
    pub bytes_read: u64,
    /// Bytes sent by PUTs and multipart parts.
    pub bytes_written: u64,
    /// PUTs (plain or conditional) to a path with a `wal` component.
    pub wal_puts: u64,
    /// Payload bytes of those PUTs.
    pub wal_bytes: u64,
    /// GETs (whole or ranged) of a path with an `sst` component.
    pub sst_gets: u64,
    /// Latency per request kind (by [`RequestKind::name`]), for kinds with samples.
    pub latency: BTreeMap<String, LatencySummary>,
}

impl StoreMetricsSnapshot {
    /// Total requests of every kind.
    pub fn requests(&self) -> u64 {
        self.get_class_requests() + self.put_class_requests() + self.deletes + self.multipart_aborts
    }

    /// Whole and ranged GETs (not HEADs).
    pub fn get_requests(&self) -> u64 {
        self.gets + self.get_ranges
    }

    /// Requests that upload an object: plain and conditional PUTs, and multipart starts,
    /// parts and completions.
    pub fn put_requests(&self) -> u64 {
        self.puts
            + self.put_conditionals
            + self.multipart_inits
            + self.multipart_parts
            + self.multipart_completes
    }

    /// Requests S3 prices as class A ("PUT, COPY, POST, LIST"): [`put_requests`]
    /// (multipart starts and completions are POSTs), COPYs, RENAMEs (a COPY and a free
    /// DELETE on S3) and LISTs.
    ///
    /// [`put_requests`]: StoreMetricsSnapshot::put_requests
    pub fn put_class_requests(&self) -> u64 {
        self.put_requests() + self.copies + self.renames + self.lists
    }

    /// Requests S3 prices as class B ("GET, SELECT and all other requests"): whole and
    /// ranged GETs and HEADs. DELETEs and multipart aborts are free and not counted.
    pub fn get_class_requests(&self) -> u64 {
        self.get_requests() + self.heads
    }

    /// What these requests cost at `prices`.
    #[allow(clippy::cast_precision_loss)]
    pub fn cost(&self, prices: &RequestPrices) -> RequestCost {
        RequestCost {
            put_class_usd: self.put_class_requests() as f64 * prices.usd_per_1000_put_class
                / 1000.0,
            get_class_usd: self.get_class_requests() as f64 * prices.usd_per_1000_get_class
                / 1000.0,
        }
    }

    /// The counters relative to `earlier` (each the difference, 0 if it went down);
    /// `latency` keeps this snapshot's summaries, which cover the whole process.
    #[must_use]
    pub fn since(&self, earlier: &Self) -> Self {
        let d = |f: fn(&Self) -> u64| f(self).saturating_sub(f(earlier));
        StoreMetricsSnapshot {
            gets: d(|s| s.gets),
            get_ranges: d(|s| s.get_ranges),
            heads: d(|s| s.heads),
            puts: d(|s| s.puts),
            put_conditionals: d(|s| s.put_conditionals),
            put_conditional_conflicts: d(|s| s.put_conditional_conflicts),
            lists: d(|s| s.lists),
            deletes: d(|s| s.deletes),
            copies: d(|s| s.copies),
            renames: d(|s| s.renames),
            multipart_inits: d(|s| s.multipart_inits),
            multipart_parts: d(|s| s.multipart_parts),
            multipart_completes: d(|s| s.multipart_completes),
            multipart_aborts: d(|s| s.multipart_aborts),
            errors: d(|s| s.errors),
            bytes_read: d(|s| s.bytes_read),
            bytes_written: d(|s| s.bytes_written),
            wal_puts: d(|s| s.wal_puts),
            wal_bytes: d(|s| s.wal_bytes),
            sst_gets: d(|s| s.sst_gets),
            latency: self.latency.clone(),
        }
    }

    /// The counters with their Prometheus names: `silt_store_` and the field name.
    pub fn counters(&self) -> [(&'static str, u64); 20] {
        [
            ("silt_store_gets", self.gets),
            ("silt_store_get_ranges", self.get_ranges),
            ("silt_store_heads", self.heads),
            ("silt_store_puts", self.puts),
            ("silt_store_put_conditionals", self.put_conditionals),
            (
                "silt_store_put_conditional_conflicts",
                self.put_conditional_conflicts,
            ),
            ("silt_store_lists", self.lists),
            ("silt_store_deletes", self.deletes),
            ("silt_store_copies", self.copies),
            ("silt_store_renames", self.renames),
            ("silt_store_multipart_inits", self.multipart_inits),
            ("silt_store_multipart_parts", self.multipart_parts),
            ("silt_store_multipart_completes", self.multipart_completes),
            ("silt_store_multipart_aborts", self.multipart_aborts),
            ("silt_store_errors", self.errors),
            ("silt_store_bytes_read", self.bytes_read),
            ("silt_store_bytes_written", self.bytes_written),
            ("silt_store_wal_puts", self.wal_puts),
            ("silt_store_wal_bytes", self.wal_bytes),
            ("silt_store_sst_gets", self.sst_gets),
        ]
    }

    /// Appends the counters and, per request kind with samples,
    /// `silt_store_latency_<kind>_{count,mean_us,p50_us,p99_us,max_us}`.
    pub(crate) fn write_prometheus(&self, out: &mut PromText) {
        for (name, value) in self.counters() {
            out.sample(name, Kind::Counter, value);
        }
        for (kind, l) in &self.latency {
            let name = |figure: &str| format!("{LATENCY_PREFIX}{kind}_{figure}");
            out.sample(&name("count"), Kind::Counter, l.count);
            for (figure, value) in [
                ("mean_us", l.mean_us),
                ("p50_us", l.p50_us),
                ("p99_us", l.p99_us),
                ("max_us", l.max_us),
            ] {
                out.sample(&name(figure), Kind::Gauge, value);
            }
        }
    }
}

/// Prefix of the latency figures' Prometheus names, followed by the request kind's
/// [`RequestKind::name`] and the figure.
const LATENCY_PREFIX: &str = "silt_store_latency_";

/// Request prices of an object store, USD per 1,000 requests of each price class (see the
/// [module docs](self), "Derived figures").
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RequestPrices {
    /// Class A: PUT, COPY, POST, LIST.
    pub usd_per_1000_put_class: f64,
    /// Class B: GET, HEAD and the other requests that are not free.
    pub usd_per_1000_get_class: f64,
}

/// What requests cost, by price class ([`StoreMetricsSnapshot::cost`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RequestCost {
    /// The class A requests.
    pub put_class_usd: f64,
    /// The class B requests.
    pub get_class_usd: f64,
}

impl RequestCost {
    /// Both classes.
    pub fn total_usd(&self) -> f64 {
        self.put_class_usd + self.get_class_usd
    }
}

fn has_component(path: &Path, name: &str) -> bool {
    path.parts().any(|p| p.as_ref() == name)
}

/// Counts requests, bytes and latencies into a [`StoreMetrics`], then delegates.
///
/// See the [module docs](self) for exactly what is counted and where it sits in the stack.
pub type InstrumentedStore = Layered<Instrumentation>;

impl InstrumentedStore {
    /// Instrument `inner` with fresh metrics.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self::with_metrics(inner, Arc::new(StoreMetrics::new()))
    }

    /// Instrument `inner`, adding to existing `metrics`.
    pub fn with_metrics(inner: Arc<dyn ObjectStore>, metrics: Arc<StoreMetrics>) -> Self {
        Layered::with_layer(inner, Instrumentation { metrics })
    }

    /// The shared metrics.
    pub fn metrics(&self) -> Arc<StoreMetrics> {
        Arc::clone(&self.layer().metrics)
    }
}

/// The [`Layer`] of an [`InstrumentedStore`].
pub struct Instrumentation {
    metrics: Arc<StoreMetrics>,
}

impl fmt::Debug for Instrumentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instrumentation").finish_non_exhaustive()
    }
}

impl Layer for Instrumentation {
    const NAME: &'static str = "InstrumentedStore";
    /// When the request was issued.
    type Ticket = Instant;

    fn fmt_store(&self, inner: &dyn ObjectStore, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instrumented({inner})")
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "latency is measured on tokio's clock, which paused-time tests control; the \
                  store wrapper sits below the engine and has no `Clock`"
    )]
    fn before(
        &self,
        req: &Request,
    ) -> (
        Instant,
        impl Future<Output = object_store::Result<()>> + Send + 'static,
    ) {
        let m = &self.metrics;
        m.issue(req.kind, req.count);
        let has = |name| req.path.as_ref().is_some_and(|p| has_component(p, name));
        match req.kind {
            RequestKind::Put | RequestKind::PutConditional => {
                StoreMetrics::add(&m.bytes_written, req.size);
                if has("wal") {
                    StoreMetrics::add(&m.wal_puts, 1);
                    StoreMetrics::add(&m.wal_bytes, req.size);
                }
            }
            RequestKind::MultipartPart => StoreMetrics::add(&m.bytes_written, req.size),
            RequestKind::Get | RequestKind::GetRange if has("sst") => {
                StoreMetrics::add(&m.sst_gets, req.count);
            }
            _ => {}
        }
        (Instant::now(), std::future::ready(Ok(())))
    }

    fn after<T: Reply>(
        &self,
        req: &Request,
        start: Instant,
        result: object_store::Result<T>,
    ) -> object_store::Result<T> {
        let m = &self.metrics;
        let mut timed = true;
        match result.as_ref().map(|r| r.view()) {
            Ok(ReplyView::Get(res)) if req.kind != RequestKind::Head => match res.payload {
                // The body stream records the sample when it ends.
                GetResultPayload::Stream(_) => timed = false,
                // A local file is read by the caller outside our view: count the range it
                // will read and the time to open it.
                GetResultPayload::File(..) => {
                    StoreMetrics::add(&m.bytes_read, res.range.end - res.range.start);
                }
            },
            Ok(ReplyView::Ranges(parts)) => {
                let total: u64 = parts.iter().map(|b| b.len() as u64).sum();
                StoreMetrics::add(&m.bytes_read, total);
            }
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) if req.kind == RequestKind::PutConditional => {
                StoreMetrics::add(&m.put_conditional_conflicts, 1);
            }
            _ => {}
        }
        if timed {
            m.finish(req.kind, start, &result);
        }
        result
    }

    fn stream<T: Reply>(
        &self,
        req: &Request,
        start: Instant,
        stream: ResultStream<T>,
    ) -> ResultStream<T> {
        Observed {
            inner: stream,
            metrics: Arc::clone(&self.metrics),
            kind: req.kind,
            start,
            failed: false,
            done: false,
        }
        .boxed()
    }

    fn delete_input(&self, locations: ResultStream<Path>) -> ResultStream<Path> {
        let metrics = Arc::clone(&self.metrics);
        locations
            .inspect(move |p| {
                if p.is_ok() {
                    metrics.issue(RequestKind::Delete, 1);
                }
            })
            .boxed()
    }
}

/// A stream that counts GET body bytes, counts a failure once, and records one latency
/// sample when it ends or is dropped.
struct Observed<T> {
    inner: ResultStream<T>,
    metrics: Arc<StoreMetrics>,
    kind: RequestKind,
    start: Instant,
    failed: bool,
    done: bool,
}

impl<T> Observed<T> {
    fn end(&mut self) {
        if !self.done {
            self.done = true;
            self.metrics.latency(self.kind).record(self.start.elapsed());
        }
    }
}

impl<T: Reply> Stream for Observed<T> {
    type Item = object_store::Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let item = futures::ready!(this.inner.poll_next_unpin(cx));
        match &item {
            Some(Ok(v)) => {
                if let ReplyView::Body(b) = v.view() {
                    StoreMetrics::add(&this.metrics.bytes_read, b.len() as u64);
                }
            }
            Some(Err(_)) => {
                if !this.failed {
                    this.failed = true;
                    StoreMetrics::add(&this.metrics.errors, 1);
                }
                this.end();
            }
            None => this.end(),
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<T> Drop for Observed<T> {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_of_each() -> StoreMetricsSnapshot {
        StoreMetricsSnapshot {
            gets: 1,
            get_ranges: 2,
            heads: 4,
            puts: 8,
            put_conditionals: 16,
            lists: 32,
            deletes: 64,
            copies: 128,
            renames: 256,
            multipart_inits: 512,
            multipart_parts: 1024,
            multipart_completes: 2048,
            multipart_aborts: 4096,
            ..StoreMetricsSnapshot::default()
        }
    }

    #[test]
    fn request_classes_follow_s3_pricing() {
        let s = one_of_each();
        assert_eq!(s.get_requests(), 1 + 2);
        assert_eq!(s.get_class_requests(), 1 + 2 + 4);
        assert_eq!(s.put_requests(), 8 + 16 + 512 + 1024 + 2048);
        assert_eq!(s.put_class_requests(), s.put_requests() + 32 + 128 + 256);
        // Deletes and aborts are free: in no class, but requests all the same.
        assert_eq!(
            s.requests(),
            s.get_class_requests() + s.put_class_requests() + 64 + 4096
        );
        let prices = RequestPrices {
            usd_per_1000_put_class: 5.0,
            usd_per_1000_get_class: 1.0,
        };
        let cost = s.cost(&prices);
        assert!((cost.put_class_usd - s.put_class_requests() as f64 * 0.005).abs() < 1e-9);
        assert!((cost.get_class_usd - 0.007).abs() < 1e-12);
        assert!((cost.total_usd() - cost.put_class_usd - cost.get_class_usd).abs() < 1e-12);
    }

    #[test]
    fn since_subtracts_every_counter() {
        let a = one_of_each();
        let mut b = one_of_each();
        b.gets += 3;
        b.bytes_read = 10;
        b.latency.insert(
            "get".into(),
            LatencySummary {
                count: 9,
                ..LatencySummary::default()
            },
        );
        let d = b.since(&a);
        assert_eq!(d.gets, 3);
        assert_eq!(d.bytes_read, 10);
        assert_eq!(d.requests(), 3);
        assert_eq!(d.latency, b.latency);
        assert_eq!(a.since(&b).gets, 0);
        let mut out = PromText::default();
        d.write_prometheus(&mut out);
        let text = out.finish();
        assert!(text.contains("# TYPE silt_store_gets counter\nsilt_store_gets 3\n"));
        assert!(text.contains("silt_store_latency_get_count 9\n"));
        assert!(text.contains("# TYPE silt_store_latency_get_p99_us gauge\n"));
    }
}
