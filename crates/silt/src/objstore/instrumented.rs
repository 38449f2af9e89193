//! [`InstrumentedStore`]: an [`ObjectStore`] wrapper that counts requests, bytes and
//! latencies into a shared [`StoreMetrics`].
//!
//! # Stacking order
//!
//! ```text
//! Storage → InstrumentedStore → LatencyStore → real store
//! ```
//!
//! The instrumented layer sits on top, so its latency histograms include any delay a
//! [`LatencyStore`] injects: they show what the engine
//! experiences. [`wrap`] builds this stack.
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
//! one sample per call: a GET until its body stream ends (or is dropped), a list or
//! delete stream until it ends (or is dropped), everything else until its future returns.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    UploadPart,
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::latency::{LatencySpec, LatencyStore};

/// The future type `#[async_trait]` methods return.
type BoxFut<'a, T> = Pin<Box<dyn Future<Output = object_store::Result<T>> + Send + 'a>>;

/// Wrap `store` as the engine should see it: `InstrumentedStore → LatencyStore → store`.
///
/// The latency layer is left out when `latency` is `None` or zero. Returns the stack to
/// hand to [`Storage`](super::Storage) (or `Db::open_with_store`) and its metrics.
pub fn wrap(
    store: Arc<dyn ObjectStore>,
    latency: Option<LatencySpec>,
) -> (Arc<dyn ObjectStore>, Arc<StoreMetrics>) {
    let inner: Arc<dyn ObjectStore> = match latency {
        Some(spec) if !spec.is_zero() => Arc::new(LatencyStore::new(store, spec)),
        _ => store,
    };
    let instrumented = InstrumentedStore::new(inner);
    let metrics = instrumented.metrics();
    (Arc::new(instrumented), metrics)
}

/// The kinds of request [`StoreMetrics`] tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestKind {
    /// Whole-object GET.
    Get,
    /// Ranged GET.
    GetRange,
    /// HEAD (`get_opts` with `head`).
    Head,
    /// Unconditional PUT.
    Put,
    /// Conditional PUT (`PutMode::Create` or `PutMode::Update`).
    PutConditional,
    /// LIST (any flavour).
    List,
    /// DELETE (one per location).
    Delete,
    /// COPY.
    Copy,
    /// RENAME.
    Rename,
    /// Start of a multipart upload.
    MultipartInit,
    /// One multipart part.
    MultipartPart,
    /// Multipart completion.
    MultipartComplete,
    /// Multipart abort.
    MultipartAbort,
}

impl RequestKind {
    /// Every kind, in index order.
    pub const ALL: [RequestKind; 13] = [
        RequestKind::Get,
        RequestKind::GetRange,
        RequestKind::Head,
        RequestKind::Put,
        RequestKind::PutConditional,
        RequestKind::List,
        RequestKind::Delete,
        RequestKind::Copy,
        RequestKind::Rename,
        RequestKind::MultipartInit,
        RequestKind::MultipartPart,
        RequestKind::MultipartComplete,
        RequestKind::MultipartAbort,
    ];

    /// Short snake_case name (the key in [`StoreMetricsSnapshot::latency`]).
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Get => "get",
            RequestKind::GetRange => "get_range",
            RequestKind::Head => "head",
            RequestKind::Put => "put",
            RequestKind::PutConditional => "put_conditional",
            RequestKind::List => "list",
            RequestKind::Delete => "delete",
            RequestKind::Copy => "copy",
            RequestKind::Rename => "rename",
            RequestKind::MultipartInit => "multipart_init",
            RequestKind::MultipartPart => "multipart_part",
            RequestKind::MultipartComplete => "multipart_complete",
            RequestKind::MultipartAbort => "multipart_abort",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
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
pub struct InstrumentedStore {
    inner: Arc<dyn ObjectStore>,
    metrics: Arc<StoreMetrics>,
}

impl InstrumentedStore {
    /// Instrument `inner` with fresh metrics.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self::with_metrics(inner, Arc::new(StoreMetrics::new()))
    }

    /// Instrument `inner`, adding to existing `metrics`.
    pub fn with_metrics(inner: Arc<dyn ObjectStore>, metrics: Arc<StoreMetrics>) -> Self {
        InstrumentedStore { inner, metrics }
    }

    /// The shared metrics.
    pub fn metrics(&self) -> Arc<StoreMetrics> {
        Arc::clone(&self.metrics)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    async fn timed<T>(
        &self,
        kind: RequestKind,
        fut: impl Future<Output = object_store::Result<T>>,
    ) -> object_store::Result<T> {
        let start = Instant::now();
        let r = fut.await;
        self.metrics.finish(kind, start, &r);
        r
    }

    fn observe<T: Send + 'static>(
        &self,
        kind: RequestKind,
        inner: BoxStream<'static, object_store::Result<T>>,
        on_item: fn(&StoreMetrics, &T),
    ) -> BoxStream<'static, object_store::Result<T>> {
        Observed {
            inner,
            metrics: Arc::clone(&self.metrics),
            kind,
            start: Instant::now(),
            on_item,
            failed: false,
            done: false,
        }
        .boxed()
    }

    fn count_list(&self) {
        self.metrics.issue(RequestKind::List, 1);
    }
}

impl fmt::Display for InstrumentedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instrumented({})", self.inner)
    }
}

impl fmt::Debug for InstrumentedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedStore")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

fn count_read(m: &StoreMetrics, b: &Bytes) {
    StoreMetrics::add(&m.bytes_read, b.len() as u64);
}

fn ignore<T>(_: &StoreMetrics, _: &T) {}

/// A stream that reports each item, counts a failure once, and records one latency
/// sample when it ends or is dropped.
struct Observed<T> {
    inner: BoxStream<'static, object_store::Result<T>>,
    metrics: Arc<StoreMetrics>,
    kind: RequestKind,
    start: Instant,
    on_item: fn(&StoreMetrics, &T),
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

impl<T> Stream for Observed<T> {
    type Item = object_store::Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let item = futures::ready!(this.inner.poll_next_unpin(cx));
        match &item {
            Some(Ok(v)) => (this.on_item)(&this.metrics, v),
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

impl ObjectStore for InstrumentedStore {
    fn put_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFut<'async_trait, PutResult>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let m = &self.metrics;
            let len = payload.content_length() as u64;
            let kind = match opts.mode {
                PutMode::Overwrite => RequestKind::Put,
                PutMode::Create | PutMode::Update(_) => RequestKind::PutConditional,
            };
            m.issue(kind, 1);
            StoreMetrics::add(&m.bytes_written, len);
            if has_component(location, "wal") {
                StoreMetrics::add(&m.wal_puts, 1);
                StoreMetrics::add(&m.wal_bytes, len);
            }
            let r = self
                .timed(kind, self.inner.put_opts(location, payload, opts))
                .await;
            if kind == RequestKind::PutConditional
                && matches!(
                    r,
                    Err(object_store::Error::AlreadyExists { .. }
                        | object_store::Error::Precondition { .. })
                )
            {
                StoreMetrics::add(&m.put_conditional_conflicts, 1);
            }
            r
        })
    }

    fn put_multipart_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 Path,
        opts: PutMultipartOptions,
    ) -> BoxFut<'async_trait, Box<dyn MultipartUpload>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.metrics.issue(RequestKind::MultipartInit, 1);
            let upload = self
                .timed(
                    RequestKind::MultipartInit,
                    self.inner.put_multipart_opts(location, opts),
                )
                .await?;
            Ok(Box::new(InstrumentedUpload {
                inner: upload,
                metrics: self.metrics(),
            }) as Box<dyn MultipartUpload>)
        })
    }

    fn get_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 Path,
        options: GetOptions,
    ) -> BoxFut<'async_trait, GetResult>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let m = &self.metrics;
            let kind = if options.head {
                RequestKind::Head
            } else if options.range.is_some() {
                RequestKind::GetRange
            } else {
                RequestKind::Get
            };
            m.issue(kind, 1);
            if kind != RequestKind::Head && has_component(location, "sst") {
                StoreMetrics::add(&m.sst_gets, 1);
            }
            let start = Instant::now();
            let r = self.inner.get_opts(location, options).await;
            match r {
                Ok(mut res) if kind != RequestKind::Head => {
                    res.payload = match res.payload {
                        GetResultPayload::Stream(s) => GetResultPayload::Stream(
                            Observed {
                                inner: s,
                                metrics: self.metrics(),
                                kind,
                                start,
                                on_item: count_read,
                                failed: false,
                                done: false,
                            }
                            .boxed(),
                        ),
                        // A local file is read by the caller outside our view: count the
                        // range it will read and the time to open it.
                        file @ GetResultPayload::File(..) => {
                            StoreMetrics::add(&m.bytes_read, res.range.end - res.range.start);
                            m.latency(kind).record(start.elapsed());
                            file
                        }
                    };
                    Ok(res)
                }
                r => {
                    m.finish(kind, start, &r);
                    r
                }
            }
        })
    }

    fn get_ranges<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        location: &'life1 Path,
        ranges: &'life2 [Range<u64>],
    ) -> BoxFut<'async_trait, Vec<Bytes>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let m = &self.metrics;
            let n = ranges.len() as u64;
            m.issue(RequestKind::GetRange, n);
            if has_component(location, "sst") {
                StoreMetrics::add(&m.sst_gets, n);
            }
            let r = self
                .timed(
                    RequestKind::GetRange,
                    self.inner.get_ranges(location, ranges),
                )
                .await;
            if let Ok(parts) = &r {
                let total: u64 = parts.iter().map(|b| b.len() as u64).sum();
                StoreMetrics::add(&m.bytes_read, total);
            }
            r
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let metrics = self.metrics();
        let counted = locations
            .inspect(move |p| {
                if p.is_ok() {
                    metrics.issue(RequestKind::Delete, 1);
                }
            })
            .boxed();
        self.observe(
            RequestKind::Delete,
            self.inner.delete_stream(counted),
            ignore,
        )
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.count_list();
        self.observe(RequestKind::List, self.inner.list(prefix), ignore)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.count_list();
        self.observe(
            RequestKind::List,
            self.inner.list_with_offset(prefix, offset),
            ignore,
        )
    }

    fn list_with_delimiter<'life0, 'life1, 'async_trait>(
        &'life0 self,
        prefix: Option<&'life1 Path>,
    ) -> BoxFut<'async_trait, ListResult>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.count_list();
            self.timed(RequestKind::List, self.inner.list_with_delimiter(prefix))
                .await
        })
    }

    fn copy_opts<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        from: &'life1 Path,
        to: &'life2 Path,
        options: CopyOptions,
    ) -> BoxFut<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.metrics.issue(RequestKind::Copy, 1);
            self.timed(RequestKind::Copy, self.inner.copy_opts(from, to, options))
                .await
        })
    }

    fn rename_opts<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        from: &'life1 Path,
        to: &'life2 Path,
        options: RenameOptions,
    ) -> BoxFut<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.metrics.issue(RequestKind::Rename, 1);
            self.timed(
                RequestKind::Rename,
                self.inner.rename_opts(from, to, options),
            )
            .await
        })
    }
}

/// Counts the parts, completion and abort of one multipart upload.
struct InstrumentedUpload {
    inner: Box<dyn MultipartUpload>,
    metrics: Arc<StoreMetrics>,
}

impl fmt::Debug for InstrumentedUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedUpload")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl InstrumentedUpload {
    async fn timed<T>(
        metrics: &StoreMetrics,
        kind: RequestKind,
        fut: impl Future<Output = object_store::Result<T>>,
    ) -> object_store::Result<T> {
        let start = Instant::now();
        let r = fut.await;
        metrics.finish(kind, start, &r);
        r
    }
}

impl MultipartUpload for InstrumentedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let m = Arc::clone(&self.metrics);
        m.issue(RequestKind::MultipartPart, 1);
        StoreMetrics::add(&m.bytes_written, data.content_length() as u64);
        let part = self.inner.put_part(data);
        async move { Self::timed(&m, RequestKind::MultipartPart, part).await }.boxed()
    }

    fn complete<'life0, 'async_trait>(&'life0 mut self) -> BoxFut<'async_trait, PutResult>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.metrics.issue(RequestKind::MultipartComplete, 1);
            Self::timed(
                &self.metrics,
                RequestKind::MultipartComplete,
                self.inner.complete(),
            )
            .await
        })
    }

    fn abort<'life0, 'async_trait>(&'life0 mut self) -> BoxFut<'async_trait, ()>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.metrics.issue(RequestKind::MultipartAbort, 1);
            Self::timed(
                &self.metrics,
                RequestKind::MultipartAbort,
                self.inner.abort(),
            )
            .await
        })
    }
}
