//! `silt serve`'s graceful shutdown when a client does not read its replies: SIGTERM must
//! still end the server (after a grace period) and close the database, so the writes of
//! every other client are in the store.

mod serve_support;

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serve_support::{command, wait_for, Resp, Server, Store};

#[test]
fn sigterm_ends_the_server_while_a_client_does_not_read_its_replies() -> Result<()> {
    let store = Store::new()?;
    // Buffered: only the close at shutdown makes the writes durable.
    let args = ["--durability", "buffered"];
    let mut server = Server::start(&store, &args)?;
    let mut writer = server.connect()?;
    let value = vec![b'v'; 1 << 20];
    ensure!(writer.call(&[b"SET", b"big", &value])? == Resp::Simple(b"OK".to_vec()));
    ensure!(writer.call(&[b"SET", b"other", b"kept"])? == Resp::Simple(b"OK".to_vec()));

    // 64 GETs of a 1 MiB value, never read: the server is stuck writing 64 MiB to a
    // client whose receive window is full.
    let mut stuck = server.connect()?;
    stuck.send(&command(&[b"GET", b"big"]).repeat(64))?;
    // Once it has answered a PING on another connection after the GETs arrived, it has
    // had every chance to start on them.
    let mut probe = server.connect()?;
    ensure!(probe.call(&[b"PING"])? == Resp::Simple(b"PONG".to_vec()));
    drop(probe);

    let pid = server.pid().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .context("kill -TERM")?;
    ensure!(status.success(), "kill -TERM failed");
    let started = Instant::now();
    let exit = wait_for(
        Duration::from_secs(60),
        "silt serve to exit after SIGTERM with a client not reading",
        || server.child.try_wait().context("try_wait"),
    );
    let exit = match exit {
        Ok(s) => s,
        Err(e) => bail!("{e:#}\nserver log:\n{}", server.log_text()),
    };
    eprintln!(
        "exited {exit} {:.1} s after SIGTERM",
        started.elapsed().as_secs_f64()
    );
    ensure!(exit.success(), "{exit}:\n{}", server.log_text());
    drop(stuck);
    drop(writer);
    drop(server);

    // The database was closed: the Buffered writes are in the store.
    let server = Server::start(&store, &args)?;
    let mut c = server.connect()?;
    ensure!(c.call(&[b"GET", b"other"])? == Resp::Bulk(Some(b"kept".to_vec())));
    ensure!(c.call(&[b"STRLEN", b"big"])? == Resp::Integer(1 << 20));
    server.stop()
}
