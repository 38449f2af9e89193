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

use super::faults::{FaultSpec, FaultStore};
use super::latency::{LatencySpec, LatencyStore};
pub use super::layer::RequestKind;
use super::layer::{Layer, Layered, Reply, ReplyView, Request, ResultStream};

/// Wrap `store` as the engine should see it:
/// `InstrumentedStore → FaultStore → LatencyStore → store`.
///
/// The latency layer is left out when `latency` is `None` or zero, the fault layer when
/// `faults` is `None` or injects nothing. Returns the stack to hand to
/// [`Storage`](super::Storage) (or `Db::open_with_store`) and its metrics.
pub fn wrap(
    store: Arc<dyn ObjectStore>,
    latency: Option<LatencySpec>,
    faults: Option<FaultSpec>,
) -> (Arc<dyn ObjectStore>, Arc<StoreMetrics>) {
    let inner: Arc<dyn ObjectStore> = match latency {
        Some(spec) if !spec.is_zero() => Arc::new(LatencyStore::new(store, spec)),
        _ => store,
    };
    let inner: Arc<dyn ObjectStore> = match faults {
        Some(spec) if !spec.is_empty() => Arc::new(FaultStore::new(inner, spec)),
        _ => inner,
    };
    let instrumented = InstrumentedStore::new(inner);
    let metrics = instrumented.metrics();
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
        self.gets
            + self.get_ranges
            + self.heads
            + self.puts
            + self.put_conditionals
            + self.lists
            + self.deletes
            + self.copies
            + self.renames
            + self.multipart_inits
            + self.multipart_parts
            + self.multipart_completes
            + self.multipart_aborts
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
                _ => StoreMetrics::add(&m.bytes_read, res.range.end - res.range.start),
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
