//! `silt serve --max-clients` and `--idle-timeout`, over raw RESP connections.
//!
//! * with `--max-clients 2`, a third connection gets `-ERR max number of clients reached`
//!   and is closed, and once one of the two closes a new one is served;
//! * with `--idle-timeout 1s`, idle connections (after a command, after nothing, inside a
//!   partial frame) are closed by the server, while one sending a command every 250 ms
//!   for 4 s is not;
//! * a pipeline of small commands with large replies does not make the server hold all the
//!   replies in memory at once.

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

/// A new connection that answered PING with PONG, or `None` if it was refused (the error
/// reply, or a reset because the refused connection was closed under the PING).
fn try_admit(port: u16) -> Result<Option<Client>> {
    let mut c = Client::connect(port)?;
    let _ = c.send(b"PING\r\n");
    match c.read_or_eof() {
        Ok(Some(r)) if r == pong() => Ok(Some(c)),
        Ok(Some(r)) if r == refused() => Ok(None),
        Ok(Some(r)) => anyhow::bail!("PING answered {r:?}"),
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
    let mut c = wait_for(
        Duration::from_secs(30),
        "a slot after a client left",
        || try_admit(server.port),
    )?;
    // The new one holds that slot for as long as it is open: a third is refused again.
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

/// 128 `GET`s of a 4 MiB value are 1.2 KB of requests and 512 MiB of replies: the server
/// must write them as it goes (as Redis does), not build them all in memory first. Its
/// peak resident memory (`VmHWM`) stays under 256 MiB. (Before the 1 MiB output bound of
/// `serve_conn`, every reply of a read was encoded before any was written: about 520 MiB
/// here.)
#[test]
fn a_pipeline_of_large_replies_is_not_buffered_whole() -> Result<()> {
    let store = Store::new()?;
    let server = Server::start(&store, &["--durability", "buffered"])?;
    let mut c = server.connect()?;
    let value = vec![b'v'; 4 << 20];
    ensure!(c.call(&[b"SET", b"big", &value])? == Resp::Simple(b"OK".to_vec()));
    let before = server.peak_rss_kib()?;
    let n = 128;
    c.send(&b"GET big\r\n".repeat(n))?;
    for i in 0..n {
        ensure!(
            c.read()? == Resp::Bulk(Some(value.clone())),
            "reply {i} is not the value"
        );
    }
    let peak = server.peak_rss_kib()?;
    eprintln!("VmHWM {before} KiB before, {peak} KiB after {n} GETs of 4 MiB");
    ensure!(
        peak < 256 * 1024,
        "VmHWM {peak} KiB: the server held the pipeline's replies at once"
    );
    server.stop()
}
