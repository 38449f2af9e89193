//! `silt serve --max-clients` and `--idle-timeout`, over raw RESP connections.
//!
//! * with `--max-clients 2`, a third connection gets `-ERR max number of clients reached`
//!   and is closed, and once one of the two closes a new one is served;
//! * with `--idle-timeout 1s`, idle connections (after a command, after nothing, inside a
//!   partial frame) are closed by the server, while one sending a command every 250 ms
//!   for 4 s is not.

mod serve_support;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serve_support::{wait_for, Client, Resp, Server, Store};

fn pong() -> Resp {
    Resp::Simple(b"PONG".to_vec())
}

fn refused() -> Resp {
    Resp::Error(b"ERR max number of clients reached".to_vec())
}

/// A new connection's answer to PING: `Some(PONG)`, or `None` if it was refused (the
/// error reply, or a reset because the refused connection was closed under the PING).
fn try_ping(port: u16) -> Result<Option<Resp>> {
    let mut c = Client::connect(port)?;
    let _ = c.send(b"PING\r\n");
    match c.read_or_eof() {
        Ok(Some(r)) if r == refused() => Ok(None),
        Ok(Some(r)) => Ok(Some(r)),
        Ok(None) | Err(_) => Ok(None),
    }
}

#[test]
fn max_clients_refuses_the_one_too_many_and_admits_once_one_leaves() -> Result<()> {
    let store = Store::new()?;
    let server = Server::start(&store, &["--max-clients", "2"])?;
    let mut a = server.connect()?;
    let mut b = server.connect()?;
    // Answered: both hold a slot.
    ensure!(a.call(&[b"PING"])? == pong());
    ensure!(b.call(&[b"SET", b"k", b"v"])? == Resp::Simple(b"OK".to_vec()));

    // The third is refused with Redis's error, then closed, without sending anything.
    for _ in 0..3 {
        let mut c = server.connect()?;
        ensure!(c.read_or_eof()? == Some(refused()));
        ensure!(
            c.read_or_eof()?.is_none(),
            "the refused connection stays open"
        );
    }
    // The two are unaffected.
    ensure!(a.call(&[b"GET", b"k"])? == Resp::Bulk(Some(b"v".to_vec())));
    ensure!(b.call(&[b"PING"])? == pong());

    // One leaves: its slot is freed (once the server sees the EOF) and a new client is
    // served.
    drop(a);
    let r = wait_for(
        Duration::from_secs(30),
        "a slot after a client left",
        || try_ping(server.port),
    )?;
    ensure!(r == pong(), "{r:?}");
    // The new one holds that slot for as long as it is open: a third is refused again.
    let mut c = server.connect()?;
    ensure!(c.call(&[b"PING"])? == pong());
    let mut d = server.connect()?;
    ensure!(d.read_or_eof()? == Some(refused()));
    ensure!(b.call(&[b"PING"])? == pong());
    ensure!(c.call(&[b"GET", b"k"])? == Resp::Bulk(Some(b"v".to_vec())));
    server.stop()
}

/// Wait for the server to close `c` (a generous deadline, not a fixed sleep); how long it
/// took. Anything it sends before closing is an error.
fn closed_by_server(mut c: Client) -> Result<Duration> {
    let started = Instant::now();
    c.stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .context("read timeout")?;
    match c.read_or_eof().context("waiting for the server to close")? {
        None => Ok(started.elapsed()),
        Some(r) => anyhow::bail!("expected the connection closed, got {r:?}"),
    }
}

#[test]
fn idle_timeout_closes_idle_clients_only() -> Result<()> {
    let store = Store::new()?;
    let server = Server::start(&store, &["--idle-timeout", "1s"])?;
    let port = server.port;

    let mut after_command = server.connect()?;
    ensure!(after_command.call(&[b"PING"])? == pong());
    let silent = server.connect()?;
    let mut partial = server.connect()?;
    partial.send(b"*2\r\n$3\r\nGET\r\n$1\r\n")?;
    let idle: Vec<_> = [after_command, silent, partial]
        .into_iter()
        .map(|c| std::thread::spawn(move || closed_by_server(c)))
        .collect();

    // Meanwhile an active client: a command every 250 ms for 4 s, four idle timeouts.
    let mut active = Client::connect(port)?;
    let started = Instant::now();
    let mut n = 0u32;
    while started.elapsed() < Duration::from_secs(4) {
        let key = format!("active{n}");
        ensure!(
            active.call(&[b"SET", key.as_bytes(), b"x"])? == Resp::Simple(b"OK".to_vec()),
            "command {n}"
        );
        ensure!(active.call(&[b"PING"])? == pong(), "command {n}");
        n += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    for (what, t) in ["after a command", "silent", "inside a partial frame"]
        .iter()
        .zip(idle)
    {
        let took = t
            .join()
            .map_err(|_| anyhow::anyhow!("a waiting thread panicked"))?
            .with_context(|| format!("the connection idle {what}"))?;
        ensure!(
            took >= Duration::from_millis(900),
            "the connection idle {what} was closed after {took:?}, before the 1 s timeout"
        );
    }
    ensure!(active.call(&[b"GET", b"active0"])? == Resp::Bulk(Some(b"x".to_vec())));
    server.stop()
}
