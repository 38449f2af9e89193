//! `silt serve --metrics-listen ADDR`: `GET /metrics` (the database's and the server's
//! figures in the Prometheus text format) and `GET /healthz` (200 `ok` while the database
//! is open, 503 otherwise), over HTTP/1.1.
//!
//! A client cannot grow the server's memory: at most `Limits::max_connections` are open
//! at once (one more is closed at once), a connection that has not sent a request's
//! headers within `Limits::header_timeout` is closed (hyper's header read timeout, which
//! also runs while a kept-alive connection waits for its next request), and a connection
//! buffers at most `Limits::max_buf_size` bytes of request.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Method, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::commands::Shared;

/// How long an HTTP connection may take to finish once the server stops.
const DRAIN: Duration = Duration::from_secs(1);

/// What one client may hold of the metrics server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// A connection that has not sent a whole request head this long after it opened, or
    /// after its last response, is closed.
    pub header_timeout: Duration,
    /// Most bytes of request a connection buffers (hyper's `max_buf_size`).
    pub max_buf_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
            // A scraper's `GET /metrics` takes a few hundred bytes; hyper's least is 8 KiB.
            max_buf_size: 16 * 1024,
        }
    }
}

/// Answer on `listener` until `stop`; then let open connections finish (up to `DRAIN`).
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    limits: Limits,
) {
    let mut conns = tokio::task::JoinSet::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Whether the cap has been warned about since a connection was last let in: one
    // warning per time the server is full, not one per refused connection.
    let mut warned = false;
    let mut stopped = stop.clone();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics accept failed");
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                    if !std::mem::replace(&mut warned, true) {
                        tracing::warn!(
                            max = limits.max_connections,
                            "metrics connections at their limit: closing new ones"
                        );
                    }
                    tracing::debug!(%peer, "metrics connection refused: too many open");
                    drop(stream);
                    continue;
                };
                warned = false;
                let (shared, mut stop) = (Arc::clone(&shared), stop.clone());
                conns.spawn(async move {
                    let _permit = permit;
                    let svc = service_fn(move |req| {
                        let shared = Arc::clone(&shared);
                        async move {
                            Ok::<_, Infallible>(respond(&shared, req.method(), req.uri().path()))
                        }
                    });
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(limits.header_timeout)
                        .max_buf_size(limits.max_buf_size)
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(DRAIN, conn).await;
                        }
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn respond(shared: &Shared, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let plain = "text/plain; charset=utf-8";
    match (method, path) {
        (&Method::GET, "/metrics") => {
            let mut body = shared.db().metrics().to_prometheus();
            body.push_str(&shared.stats.to_prometheus());
            text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                body,
            )
        }
        (&Method::GET, "/healthz") => {
            // Creating an iterator checks that the database is open and not stopped by a
            // fatal error, without reading anything.
            if shared.db().scan::<&[u8]>(..).is_ok() {
                text(StatusCode::OK, plain, "ok\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    plain,
                    "database closed\n".into(),
                )
            }
        }
        (_, "/metrics" | "/healthz") => {
            text(StatusCode::METHOD_NOT_ALLOWED, plain, "GET only\n".into())
        }
        _ => text(StatusCode::NOT_FOUND, plain, "not found\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::commands::Options;
    use std::net::SocketAddr;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A safety net for the waits below: long past every limit they check.
    const SAFETY: Duration = Duration::from_secs(10);

    async fn shared() -> Arc<Shared> {
        let db = silt::Db::open("memory://", silt::Settings::default())
            .await
            .expect("open");
        Arc::new(Shared::new(
            Arc::new(db),
            Options {
                durability: silt::Durability::Buffered,
                password: None,
                port: 0,
                max_clients: 1,
                max_reply_bytes: 1 << 20,
                max_queued_bytes: 1 << 20,
                follower: false,
            },
        ))
    }

    /// The metrics server on 127.0.0.1 with `limits`; it stops when the sender is dropped.
    async fn start(limits: Limits) -> (SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = watch::channel(false);
        tokio::spawn(serve(listener, shared().await, rx, limits));
        (addr, tx)
    }

    /// Send `GET path` and read its whole response (headers and `Content-Length` body).
    async fn get(s: &mut TcpStream, path: &str, close: bool) -> String {
        let conn = if close { "Connection: close\r\n" } else { "" };
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{conn}\r\n");
        s.write_all(req.as_bytes()).await.expect("send");
        let mut got = Vec::new();
        let whole = tokio::time::timeout(SAFETY, async {
            loop {
                let text = String::from_utf8_lossy(&got).into_owned();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().expect("length"))
                        })
                        .expect("a Content-Length");
                    if got.len() >= end + 4 + len {
                        return text;
                    }
                }
                let mut chunk = [0u8; 1024];
                let n = s.read(&mut chunk).await.expect("read");
                assert!(n > 0, "EOF inside a response: {text:?}");
                got.extend_from_slice(&chunk[..n]);
            }
        })
        .await;
        whole.expect("a response within the safety timeout")
    }

    /// Read until the server closes; what it sent, or `None` if it did not close in time.
    async fn until_closed(s: &mut TcpStream) -> Option<Vec<u8>> {
        let mut rest = Vec::new();
        tokio::time::timeout(SAFETY, s.read_to_end(&mut rest))
            .await
            .ok()
            .map(|r| {
                r.expect("read");
                rest
            })
    }

    const SHORT: Limits = Limits {
        max_connections: 8,
        header_timeout: Duration::from_millis(200),
        max_buf_size: 16 * 1024,
    };

    #[tokio::test]
    async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
        let (addr, _stop) = start(SHORT).await;
        let opened = Instant::now();
        let mut silent = TcpStream::connect(addr).await.expect("connect");
        let sent = until_closed(&mut silent).await;
        assert_eq!(sent.as_deref(), Some(&b""[..]), "closed without a reply");
        assert!(opened.elapsed() >= SHORT.header_timeout, "closed too early");
        // A slowloris sending part of a request head is closed the same way.
        let opened = Instant::now();
        let mut slow = TcpStream::connect(addr).await.expect("connect");
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("send");
        assert!(until_closed(&mut slow).await.is_some(), "not closed");
        assert!(opened.elapsed() >= SHORT.header_timeout, "closed too early");
    }

    #[tokio::test]
    async fn a_kept_alive_connection_is_closed_once_idle_past_the_header_timeout() {
        let (addr, _stop) = start(SHORT).await;
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let r = get(&mut s, "/healthz", false).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        // Kept alive: a second request on it is answered.
        let r = get(&mut s, "/healthz", false).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        let answered = Instant::now();
        assert_eq!(
            until_closed(&mut s).await.as_deref(),
            Some(&b""[..]),
            "the idle kept-alive connection is closed without more bytes"
        );
        assert!(
            answered.elapsed() >= SHORT.header_timeout,
            "closed too early"
        );
    }

    #[tokio::test]
    async fn a_connection_past_the_cap_is_closed_at_once() {
        let limits = Limits {
            max_connections: 2,
            header_timeout: Duration::from_secs(60),
            max_buf_size: 16 * 1024,
        };
        let (addr, _stop) = start(limits).await;
        let mut a = TcpStream::connect(addr).await.expect("connect");
        let mut b = TcpStream::connect(addr).await.expect("connect");
        // Both are served, so both are accepted and hold their slots (idle, kept alive).
        for s in [&mut a, &mut b] {
            assert!(get(s, "/healthz", false).await.starts_with("HTTP/1.1 200"));
        }
        let mut third = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(
            until_closed(&mut third).await.as_deref(),
            Some(&b""[..]),
            "a third connection is closed without a response (long before the header timeout)"
        );
        for s in [&mut a, &mut b] {
            assert!(get(s, "/healthz", false).await.starts_with("HTTP/1.1 200"));
        }
        // A closes (the server ends it after this response), which frees its slot. On this
        // single-threaded runtime the connection's task has ended, and given its slot
        // back, before the EOF it sent is read here.
        assert!(get(&mut a, "/healthz", true)
            .await
            .starts_with("HTTP/1.1 200"));
        assert_eq!(until_closed(&mut a).await.as_deref(), Some(&b""[..]));
        let mut next = TcpStream::connect(addr).await.expect("connect");
        assert!(get(&mut next, "/metrics", false)
            .await
            .starts_with("HTTP/1.1 200"));
        assert!(get(&mut b, "/healthz", false)
            .await
            .starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn healthz_is_503_once_the_database_is_closed() {
        let shared = shared().await;
        assert_eq!(
            respond(&shared, &Method::GET, "/healthz").status(),
            StatusCode::OK
        );
        assert_eq!(
            respond(&shared, &Method::POST, "/healthz").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        shared.db().close().await.expect("close");
        assert_eq!(
            respond(&shared, &Method::GET, "/healthz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        // The figures are still there.
        assert_eq!(
            respond(&shared, &Method::GET, "/metrics").status(),
            StatusCode::OK
        );
    }
}
