//! [`Layered`]: the one [`ObjectStore`] implementation the store wrappers share. It forwards
//! every method to an inner `Arc<dyn ObjectStore>` and calls the hooks of a [`Layer`] around
//! each request, so a wrapper is only its concern (counting, delaying, failing) and the
//! delegation is written once.
//!
//! # The hooks
//!
//! Every request is described by a [`Request`] (its [`RequestKind`], path, payload size and
//! how many requests it stands for) and goes through the hooks in this order:
//!
//! 1. [`Layer::before`] when the request is issued, synchronously (so what it does runs in
//!    issue order), returning a ticket and a future. The request reaches the inner store
//!    only once that future is `Ok`; an `Err` fails the request without reaching it.
//! 2. Requests answered by one reply (PUT, GET, HEAD, `get_ranges`, `list_with_delimiter`,
//!    COPY, RENAME, and each multipart start, part, completion and abort):
//!    [`Layer::after`] with the ticket and the outcome, the inner store's or `before`'s
//!    error, once per request. What it returns is what the caller gets, so it may replace a
//!    success with an error (a response lost after the store applied the request).
//! 3. Streamed results: [`Layer::stream`] wraps the body of a GET (not a HEAD) before
//!    `after` sees the result, and is the only hook after `before` for `list`,
//!    `list_with_offset` and `delete_stream`. A list or delete stream is wrapped when
//!    issued; the inner store's stream starts on the first poll, after `before`'s future
//!    (whose error, if any, is the stream's one item). [`Layer::delete_input`] also sees
//!    the locations fed to `delete_stream`.
//!
//! A multipart part is handed to the inner upload when issued, so parts keep their order;
//! only awaiting it waits for `before` (whose error drops the inner part's future
//! unpolled).
//!
//! The provided methods `get_ranges`, `list_with_offset` and `rename_opts` are forwarded
//! too, so the real store's optimisations survive.

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    UploadPart,
};

/// The future type `#[async_trait]` methods return.
type BoxFut<'a, T> = Pin<Box<dyn Future<Output = object_store::Result<T>> + Send + 'a>>;

/// The kinds of request the layers (and [`StoreMetrics`](super::StoreMetrics)) tell apart.
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

    /// Short `snake_case` name (the key in
    /// [`StoreMetricsSnapshot::latency`](super::StoreMetricsSnapshot::latency)).
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

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One request as a [`Layer`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What it is.
    pub kind: RequestKind,
    /// The object (for COPY and RENAME the source, for a multipart request the upload's
    /// object) or the prefix of a LIST; `None` for an unprefixed LIST and `delete_stream`.
    pub path: Option<Path>,
    /// Payload bytes of a PUT or multipart part; 0 otherwise.
    pub size: u64,
    /// Requests this call stands for: the ranges of a `get_ranges` call, 0 for
    /// `delete_stream` (whose locations [`Layer::delete_input`] sees one by one), else 1.
    pub count: u64,
}

impl Request {
    fn new(kind: RequestKind, path: Option<&Path>, size: u64) -> Self {
        Request {
            kind,
            path: path.cloned(),
            size,
            count: 1,
        }
    }
}

/// A successful reply, or one item of a streamed result, as a [`Layer`] sees it.
#[derive(Debug)]
pub enum ReplyView<'a> {
    /// A PUT or multipart completion.
    Put(&'a PutResult),
    /// A GET or HEAD (for a GET, the body is already wrapped by [`Layer::stream`]).
    Get(&'a GetResult),
    /// The parts of a `get_ranges` call.
    Ranges(&'a [Bytes]),
    /// A `list_with_delimiter` answer.
    Listing(&'a ListResult),
    /// A started multipart upload.
    Upload,
    /// A request with nothing to return (COPY, RENAME, a part, an abort).
    Done,
    /// A chunk of a GET body.
    Body(&'a Bytes),
    /// One object of a LIST stream.
    Meta(&'a ObjectMeta),
    /// One deleted location of a `delete_stream`.
    Deleted(&'a Path),
}

/// The values requests and streams yield, viewable by a [`Layer`].
pub trait Reply: Send + 'static {
    /// What it is.
    fn view(&self) -> ReplyView<'_>;
}

macro_rules! reply {
    ($($t:ty => |$v:ident| $view:expr;)*) => {$(
        impl Reply for $t {
            fn view(&self) -> ReplyView<'_> {
                let $v = self;
                $view
            }
        }
    )*};
}

reply! {
    PutResult => |v| ReplyView::Put(v);
    GetResult => |v| ReplyView::Get(v);
    Vec<Bytes> => |v| ReplyView::Ranges(v);
    ListResult => |v| ReplyView::Listing(v);
    Box<dyn MultipartUpload> => |_v| ReplyView::Upload;
    () => |_v| ReplyView::Done;
    Bytes => |v| ReplyView::Body(v);
    ObjectMeta => |v| ReplyView::Meta(v);
    Path => |v| ReplyView::Deleted(v);
}

/// A stream of results.
pub type ResultStream<T> = BoxStream<'static, object_store::Result<T>>;

/// One wrapper's concern, applied by [`Layered`] to every request (see the
/// [module docs](self) for when each hook runs).
pub trait Layer: fmt::Debug + Send + Sync + 'static {
    /// The type name `Debug` shows for the layered store.
    const NAME: &'static str;

    /// What [`Layer::before`] hands to the request's [`Layer::after`] and
    /// [`Layer::stream`] (a start time, say).
    type Ticket: Clone + Send + 'static;

    /// `Display` of the layered store over `inner`.
    fn fmt_store(&self, inner: &dyn ObjectStore, f: &mut fmt::Formatter<'_>) -> fmt::Result;

    /// Called as `req` is issued; the request goes on once the future is `Ok`.
    fn before(
        &self,
        req: &Request,
    ) -> (
        Self::Ticket,
        impl Future<Output = object_store::Result<()>> + Send + 'static,
    );

    /// Sees the outcome of a request answered by one reply; returns what the caller gets.
    fn after<T: Reply>(
        &self,
        req: &Request,
        ticket: Self::Ticket,
        result: object_store::Result<T>,
    ) -> object_store::Result<T> {
        let _ = (req, ticket);
        result
    }

    /// Wraps a streamed result: a GET body, a LIST or `delete_stream` output.
    fn stream<T: Reply>(
        &self,
        req: &Request,
        ticket: Self::Ticket,
        stream: ResultStream<T>,
    ) -> ResultStream<T> {
        let _ = (req, ticket);
        stream
    }

    /// Wraps the locations fed to `delete_stream`, before the inner store sees them.
    fn delete_input(&self, locations: ResultStream<Path>) -> ResultStream<Path> {
        locations
    }
}

/// An [`ObjectStore`] forwarding every request to `inner` through the hooks of `layer`.
pub struct Layered<L> {
    inner: Arc<dyn ObjectStore>,
    layer: Arc<L>,
}

impl<L: Layer> Layered<L> {
    /// `inner` with every request going through `layer`.
    pub fn with_layer(inner: Arc<dyn ObjectStore>, layer: L) -> Self {
        Layered {
            inner,
            layer: Arc::new(layer),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// The layer.
    pub fn layer(&self) -> &L {
        &self.layer
    }

    /// A stream request: `before` now, `start` (the inner store's stream) on the first poll
    /// once `before`'s future is `Ok`, the whole wrapped by `stream` now.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "the request is built for this call, like `forward`'s, which keeps it"
    )]
    fn streamed<T: Reply>(
        &self,
        req: Request,
        start: impl FnOnce() -> ResultStream<T> + Send + 'static,
    ) -> ResultStream<T> {
        let (ticket, wait) = self.layer.before(&req);
        let deferred = futures::stream::once(async move {
            match wait.await {
                Ok(()) => start(),
                Err(e) => futures::stream::iter([Err(e)]).boxed(),
            }
        })
        .flatten()
        .boxed();
        self.layer.stream(&req, ticket, deferred)
    }
}

/// A request answered by one reply: `before` now, `call` once its future is `Ok`, `after`
/// on the outcome.
fn forward<'a, L: Layer, T: Reply>(
    layer: &'a L,
    req: Request,
    call: impl FnOnce() -> BoxFut<'a, T> + Send + 'a,
) -> BoxFut<'a, T> {
    let (ticket, wait) = layer.before(&req);
    Box::pin(async move {
        let r = match wait.await {
            Ok(()) => call().await,
            Err(e) => Err(e),
        };
        layer.after(&req, ticket, r)
    })
}

impl<L: Layer> fmt::Display for Layered<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.layer.fmt_store(self.inner.as_ref(), f)
    }
}

impl<L: Layer> fmt::Debug for Layered<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(L::NAME)
            .field("layer", &self.layer)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<L: Layer> ObjectStore for Layered<L> {
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
        let kind = match opts.mode {
            PutMode::Overwrite => RequestKind::Put,
            PutMode::Create | PutMode::Update(_) => RequestKind::PutConditional,
        };
        let req = Request::new(kind, Some(location), payload.content_length() as u64);
        forward(&*self.layer, req, move || {
            self.inner.put_opts(location, payload, opts)
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
        let req = Request::new(RequestKind::MultipartInit, Some(location), 0);
        forward(&*self.layer, req, move || {
            Box::pin(async move {
                let inner = self.inner.put_multipart_opts(location, opts).await?;
                Ok(Box::new(LayeredUpload {
                    inner,
                    layer: Arc::clone(&self.layer),
                    path: location.clone(),
                }) as Box<dyn MultipartUpload>)
            })
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
        let kind = if options.head {
            RequestKind::Head
        } else if options.range.is_some() {
            RequestKind::GetRange
        } else {
            RequestKind::Get
        };
        let req = Request::new(kind, Some(location), 0);
        let (ticket, wait) = self.layer.before(&req);
        Box::pin(async move {
            let r = match wait.await {
                Ok(()) => self.inner.get_opts(location, options).await,
                Err(e) => Err(e),
            };
            let r = match r {
                Ok(mut res) if kind != RequestKind::Head => {
                    res.payload = match res.payload {
                        GetResultPayload::Stream(body) => {
                            GetResultPayload::Stream(self.layer.stream(&req, ticket.clone(), body))
                        }
                        file @ GetResultPayload::File(..) => file,
                    };
                    Ok(res)
                }
                r => r,
            };
            self.layer.after(&req, ticket, r)
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
        let req = Request {
            count: ranges.len() as u64,
            ..Request::new(RequestKind::GetRange, Some(location), 0)
        };
        forward(&*self.layer, req, move || {
            self.inner.get_ranges(location, ranges)
        })
    }

    fn delete_stream(&self, locations: ResultStream<Path>) -> ResultStream<Path> {
        let req = Request {
            count: 0,
            ..Request::new(RequestKind::Delete, None, 0)
        };
        let locations = self.layer.delete_input(locations);
        let inner = Arc::clone(&self.inner);
        self.streamed(req, move || inner.delete_stream(locations))
    }

    fn list(&self, prefix: Option<&Path>) -> ResultStream<ObjectMeta> {
        let req = Request::new(RequestKind::List, prefix, 0);
        let inner = Arc::clone(&self.inner);
        let prefix = prefix.cloned();
        self.streamed(req, move || inner.list(prefix.as_ref()))
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> ResultStream<ObjectMeta> {
        let req = Request::new(RequestKind::List, prefix, 0);
        let inner = Arc::clone(&self.inner);
        let (prefix, offset) = (prefix.cloned(), offset.clone());
        self.streamed(req, move || {
            inner.list_with_offset(prefix.as_ref(), &offset)
        })
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
        let req = Request::new(RequestKind::List, prefix, 0);
        forward(&*self.layer, req, move || {
            self.inner.list_with_delimiter(prefix)
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
        let req = Request::new(RequestKind::Copy, Some(from), 0);
        forward(&*self.layer, req, move || {
            self.inner.copy_opts(from, to, options)
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
        let req = Request::new(RequestKind::Rename, Some(from), 0);
        forward(&*self.layer, req, move || {
            self.inner.rename_opts(from, to, options)
        })
    }
}

/// One multipart upload of a [`Layered`] store: its parts, completion and abort go
/// through the layer too.
struct LayeredUpload<L> {
    inner: Box<dyn MultipartUpload>,
    layer: Arc<L>,
    path: Path,
}

impl<L: Layer> fmt::Debug for LayeredUpload<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayeredUpload")
            .field("layer", &L::NAME)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<L: Layer> MultipartUpload for LayeredUpload<L> {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let req = Request::new(
            RequestKind::MultipartPart,
            Some(&self.path),
            data.content_length() as u64,
        );
        let (ticket, wait) = self.layer.before(&req);
        // Handed over now so parts keep their order; only awaiting it waits.
        let part = self.inner.put_part(data);
        let layer = Arc::clone(&self.layer);
        async move {
            let r = match wait.await {
                Ok(()) => part.await,
                Err(e) => Err(e),
            };
            layer.after(&req, ticket, r)
        }
        .boxed()
    }

    fn complete<'life0, 'async_trait>(&'life0 mut self) -> BoxFut<'async_trait, PutResult>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let req = Request::new(RequestKind::MultipartComplete, Some(&self.path), 0);
        let inner = &mut self.inner;
        forward(&*self.layer, req, move || inner.complete())
    }

    fn abort<'life0, 'async_trait>(&'life0 mut self) -> BoxFut<'async_trait, ()>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let req = Request::new(RequestKind::MultipartAbort, Some(&self.path), 0);
        let inner = &mut self.inner;
        forward(&*self.layer, req, move || inner.abort())
    }
}

#[cfg(test)]
#[path = "layer_tests.rs"]
mod tests;
