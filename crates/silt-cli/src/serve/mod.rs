//! `silt serve`: the Redis protocol in front of a database (see `docs/serve.md`).
//!
//! `resp.rs` is the protocol codec, `commands.rs` the commands, and this module the server:
//! a listener, one task per connection, and a graceful shutdown on SIGINT/SIGTERM.

mod commands;
mod glob;
mod http;
pub mod resp;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::BytesMut;
use clap::Args;
use silt::{DbBuilder, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use self::commands::{Conn, Options, Shared};
use self::resp::{parse_request, Limits, Reply};
use crate::exit::UsageError;
use crate::shared::{LoadDurability, StoreStack};

/// `silt serve` arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Anything but loopback needs a password.
    #[arg(long, default_value = "127.0.0.1:6379", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// When a write is acknowledged to the client.
    #[arg(long, value_enum, default_value_t = LoadDurability::Remote)]
    pub durability: LoadDurability,
    /// Password clients must give with AUTH (or `SILT_PASSWORD`).
    #[arg(long, env = "SILT_PASSWORD", value_name = "P", hide_env_values = true)]
    pub requirepass: Option<String>,
    /// Most clients connected at once.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub max_clients: usize,
    /// Close a client idle this long (0: never).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration, value_name = "D")]
    pub idle_timeout: Duration,
    /// Largest reply (MGET, KEYS, SCAN, EXEC...): a bigger one is an error instead.
    #[arg(long, default_value_t = 512 * 1024 * 1024, value_name = "BYTES")]
    pub max_reply_bytes: usize,
    /// Also serve HTTP `GET /metrics` (Prometheus) and `GET /healthz` here.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve as a read replica: follow the database's writer (which runs elsewhere)
    /// through the store, answer reads, refuse writes with `READONLY`.
    #[arg(long)]
    pub follow: bool,
}

/// Replies encoded but not yet written, past which a connection stops running the
/// commands it has read until the client has taken them.
const OUTPUT_SOFT_BYTES: usize = 1024 * 1024;

/// A connection's read buffer to begin with.
const READ_BUF_INITIAL: usize = 16 * 1024;

/// Past this size, a read buffer (grown by a big command) is given back once it holds
/// less than `READ_BUF_INITIAL` bytes, instead of being kept for the life of the connection.
const READ_BUF_KEEP: usize = 64 * 1024;

#[cfg(test)]
thread_local! {
    /// Test hook: the read buffer's size (`len + capacity`) before the last read, and the
    /// largest after a read, of the connection served on this thread.
    static READ_BUF_SIZE: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}

/// At shutdown, how long a client that is not reading gets to take its replies before its
/// connection is closed without them (the writes are applied and durable either way).
const SHUTDOWN_WRITE_GRACE: Duration = Duration::from_secs(5);

/// How long a shutdown waits for all connections to end (a backstop behind
/// `SHUTDOWN_WRITE_GRACE`) before it aborts those left and closes the database.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Run the server until SIGINT or SIGTERM; then stop accepting, let every connection finish
/// the commands it has read, and close the database (making every write durable).
pub async fn run(url: &str, stack: StoreStack, settings: Settings, args: ServeArgs) -> Result<u8> {
    if !args.listen.ip().is_loopback() && args.requirepass.is_none() {
        return Err(UsageError(format!(
            "refusing to listen on {} without a password: give --requirepass (or SILT_PASSWORD), \
             or listen on a loopback address",
            args.listen
        ))
        .into());
    }
    let durability: silt::Durability = args.durability.into();
    if durability == silt::Durability::Local && settings.local_log.is_none() && !args.follow {
        return Err(UsageError(
            "--durability local needs a local log (`local_log` in --settings, or \
             SILT_LOCAL_LOG__DIR)"
                .into(),
        )
        .into());
    }
    let mut builder = DbBuilder::from_url(url).with_context(|| format!("cannot open {url}"))?;
    if args.follow {
        builder = builder.follower();
    }
    let db = Arc::new(
        stack
            .apply(builder.settings(settings))
            .open()
            .await
            .with_context(|| format!("cannot open {url}"))?,
    );
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr().context("the listener's address")?;
    let metrics = match args.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))?,
        ),
        None => None,
    };
    if args.follow {
        eprintln!("silt serve: listening on {local} (a read replica: following the writer)");
    } else {
        eprintln!(
            "silt serve: listening on {local} ({:?} writes)",
            args.durability
        );
    }
    let shared = Arc::new(Shared::new(
        Arc::clone(&db),
        Options {
            durability,
            password: args.requirepass.clone(),
            port: local.port(),
            max_clients: args.max_clients,
            max_reply_bytes: args.max_reply_bytes,
            max_queued_bytes: commands::MAX_QUEUED_BYTES,
            follower: args.follow,
        },
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics = match metrics {
        Some(l) => {
            if let Ok(addr) = l.local_addr() {
                eprintln!("silt serve: metrics on http://{addr}/metrics");
            }
            Some(tokio::spawn(http::serve(
                l,
                Arc::clone(&shared),
                stop_rx.clone(),
                http::Limits::default(),
            )))
        }
        None => None,
    };
    let slots = Arc::new(Semaphore::new(args.max_clients));
    let mut conns = tokio::task::JoinSet::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let (shared, stop) = (Arc::clone(&shared), stop_rx.clone());
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                    conns.spawn(async move {
                        refuse(stream, "ERR max number of clients reached").await;
                    });
                    continue;
                };
                let idle = args.idle_timeout;
                conns.spawn(async move {
                    let _permit = permit;
                    if let Err(e) = serve_conn(stream, shared, stop, idle).await {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    eprintln!("silt serve: shutting down");
    drop(listener);
    let _ = stop_tx.send(true);
    // A connection whose client does not read its replies would never finish writing
    // them: after a grace period such connections are cut off.
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        eprintln!(
            "silt serve: closing {} connections still busy after {SHUTDOWN_GRACE:?}",
            conns.len()
        );
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
    if let Some(m) = metrics {
        let _ = m.await;
    }
    drop(shared);
    let db = Arc::try_unwrap(db).map_err(|_| anyhow::anyhow!("the database is still in use"))?;
    db.close().await.context("closing the database")?;
    Ok(crate::exit::OK)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Sleep `d`, or forever if it is zero.
async fn sleep_or_forever(d: Duration) {
    if d.is_zero() {
        std::future::pending::<()>().await;
    } else {
        tokio::time::sleep(d).await;
    }
}

async fn refuse(mut stream: TcpStream, msg: &str) {
    let mut out = Vec::new();
    Reply::Error(msg.into()).encode(2, &mut out);
    let _ = stream.write_all(&out).await;
}

/// Read what the client sent, run every whole command in it in order, make the writes
/// among them durable once (the pipeline shares one durability wait), then answer them in
/// order. Past `OUTPUT_SOFT_BYTES` of replies it answers those first (waiting for the
/// client to read them) before it runs the rest. Until the stop signal: then the
/// commands already read are finished and the connection is closed.
async fn serve_conn(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    idle: Duration,
) -> Result<()> {
    let limits = Limits::default();
    // A client may send at most one maximal command beyond what it has been answered.
    let max_query = limits.max_bulk_bytes + limits.max_inline_bytes;
    let mut conn = Conn::new(&shared);
    let mut buf = BytesMut::with_capacity(READ_BUF_INITIAL);
    // `buf` grew past `READ_BUF_KEEP` since it was last made small.
    let mut grown = false;
    let mut out = Vec::with_capacity(16 * 1024);
    // Whole commands may be left in `buf` (the replies' soft limit was reached).
    let mut more = false;
    // The stop signal came while writing: finish what was read, then close.
    let mut stopping = false;
    loop {
        // Unless commands are left over in `buf`, read more.
        if !std::mem::take(&mut more) {
            if stopping {
                return Ok(());
            }
            #[cfg(test)]
            READ_BUF_SIZE.with(|s| s.set((buf.len() + buf.capacity(), s.get().1)));
            let read = async {
                if idle.is_zero() {
                    Ok(stream.read_buf(&mut buf).await)
                } else {
                    tokio::time::timeout(idle, stream.read_buf(&mut buf)).await
                }
            };
            let n = tokio::select! {
                _ = stop.changed() => return Ok(()),
                r = read => match r {
                    Ok(r) => r.context("reading from the client")?,
                    Err(_) => return Ok(()), // idle timeout
                },
            };
            if n == 0 {
                return Ok(());
            }
            // Right after a read that grew it, the buffer's view spans its whole allocation.
            let size = buf.len() + buf.capacity();
            grown |= size > READ_BUF_KEEP;
            #[cfg(test)]
            READ_BUF_SIZE.with(|s| s.set((s.get().0, s.get().1.max(size))));
        }
        let mut close = false;
        loop {
            match parse_request(&mut buf, &limits) {
                Ok(Some(args)) => {
                    let reply = conn.execute(&args).await;
                    conn.push_reply(reply);
                    if conn.quit {
                        close = true;
                        break;
                    }
                    if conn.pending_bytes() >= OUTPUT_SOFT_BYTES {
                        more = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    conn.push_reply(Reply::Error(format!("ERR {e}")));
                    close = true;
                    break;
                }
            }
        }
        if !close && !more && buf.len() > max_query {
            conn.push_reply(Reply::err("Protocol error: query buffer too big"));
            close = true;
        }
        // The pipeline's writes become durable together, then everything is answered.
        conn.finish(&mut out).await;
        // A client that does not read blocks this write: the idle timeout and the shutdown
        // (after a grace period) still end it.
        let write = stream.write_all(&out);
        tokio::pin!(write);
        let written = if stopping {
            tokio::time::timeout(SHUTDOWN_WRITE_GRACE, &mut write)
                .await
                .ok()
        } else {
            tokio::select! {
                w = &mut write => Some(w),
                () = sleep_or_forever(idle) => None,
                _ = stop.changed() => {
                    stopping = true;
                    tokio::time::timeout(SHUTDOWN_WRITE_GRACE, &mut write).await.ok()
                }
            }
        };
        match written {
            Some(w) => w.context("writing to the client")?,
            None => return Ok(()),
        }
        out.clear();
        if out.capacity() > 2 * OUTPUT_SOFT_BYTES {
            // Do not keep a big reply's buffer for the life of the connection.
            out = Vec::with_capacity(16 * 1024);
        }
        if grown && buf.len() < READ_BUF_INITIAL {
            // Nor a big command's: what is left (part of the next command) moves to a
            // small buffer.
            let mut small = BytesMut::with_capacity(READ_BUF_INITIAL);
            small.extend_from_slice(&buf);
            buf = small;
            grown = false;
        }
        if close {
            let _ = stream.shutdown().await;
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connections_read_buffer_is_given_back_after_a_big_command() {
        let db = silt::Db::open("memory://", Settings::default())
            .await
            .expect("open");
        let shared = Arc::new(Shared::new(
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
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (stream, _) = listener.accept().await.expect("accept");
        let (_stop, stop) = watch::channel(false);
        // This test's runtime has one thread: the connection runs on it, and the hook is
        // read here.
        let server = tokio::spawn(serve_conn(stream, shared, stop, Duration::ZERO));
        let safety = Duration::from_secs(60);
        let value = vec![b'v'; 32 * 1024 * 1024];
        let mut set = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", value.len()).into_bytes();
        set.extend_from_slice(&value);
        set.extend_from_slice(b"\r\n");
        drop(value);
        let mut reply = [0u8; 5];
        tokio::time::timeout(safety, async {
            client.write_all(&set).await.expect("send");
            client.read_exact(&mut reply).await.expect("reply")
        })
        .await
        .expect("SET answered");
        assert_eq!(&reply, b"+OK\r\n");
        // Answering PING means the connection went back to reading after the SET.
        let mut pong = [0u8; 7];
        tokio::time::timeout(safety, async {
            client.write_all(b"PING\r\n").await.expect("send");
            client.read_exact(&mut pong).await.expect("reply")
        })
        .await
        .expect("PING answered");
        assert_eq!(&pong, b"+PONG\r\n");
        let (now, peak) = READ_BUF_SIZE.with(std::cell::Cell::get);
        assert!(peak >= set.len(), "the buffer held the whole SET: {peak}");
        assert!(
            now <= READ_BUF_INITIAL,
            "after the SET the read buffer is small again: {now} bytes"
        );
        drop(client);
        server
            .await
            .expect("join")
            .expect("the connection ends cleanly");
    }
}
