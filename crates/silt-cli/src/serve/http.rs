//! `silt serve --metrics-listen ADDR`: `GET /metrics` (the database's and the server's
//! figures in the Prometheus text format) and `GET /healthz` (200 `ok` while the database
//! is open, 503 otherwise), over HTTP/1.1.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Method, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::commands::Shared;

/// How long an HTTP connection may take to finish once the server stops.
const DRAIN: Duration = Duration::from_secs(1);

/// Answer on `listener` until `stop`; then let open connections finish (up to `DRAIN`).
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let mut conns = tokio::task::JoinSet::new();
    let mut stopped = stop.clone();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics accept failed");
                        continue;
                    }
                };
                let (shared, mut stop) = (Arc::clone(&shared), stop.clone());
                conns.spawn(async move {
                    let svc = service_fn(move |req| {
                        let shared = Arc::clone(&shared);
                        async move {
                            Ok::<_, Infallible>(respond(&shared, req.method(), req.uri().path()))
                        }
                    });
                    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
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

    #[tokio::test]
    async fn healthz_is_503_once_the_database_is_closed() {
        let db = silt::Db::open("memory://", silt::Settings::default())
            .await
            .expect("open");
        let shared = Shared::new(
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
        );
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
