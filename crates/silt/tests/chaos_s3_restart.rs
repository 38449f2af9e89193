//! Chaos scenario: the real S3 server process stops and starts again under the workload.
//! The test runs its own `SeaweedFS` (`scripts/s3-server` with a private directory and port,
//! `SILT_CHAOS_S3_PORT`, default 18533) so the shared test server is not disturbed. The
//! child (see `chaos/mod.rs`) runs on real time with Remote, Local and Buffered writers and
//! readers against it:
//!
//! 1. the server is stopped for 8 s and started again with its data: writers pause, then
//!    every Remote writer is acknowledged again on the same handle; then the child is
//!    killed with SIGKILL;
//! 2. the server is stopped and the child killed while it is down; the server starts again;
//! 3. (1 and 2 four times over with `SILT_LONG=1`) a plain life, killed.
//!
//! After each kill the database is reopened against the running server and checked.
//! Skipped unless `SILT_TEST_S3_URL` is set (required when `SILT_REQUIRE_S3=1`), like the
//! other S3 tests: `scripts/test` installs `SeaweedFS`.

mod chaos;
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use chaos::{verify, Child, Config, Known, Scenario};

#[test]
fn chaos_child() -> anyhow::Result<()> {
    chaos::child_main()
}

/// A `SeaweedFS` of this test's own.
struct Server {
    dir: tempfile::TempDir,
    port: u16,
}

impl Server {
    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/s3-server")
    }

    fn run(&self, arg: &str, keep: bool) -> anyhow::Result<String> {
        let t = std::time::Instant::now();
        let out = Command::new(Self::script())
            .arg(arg)
            .env("SILT_S3_DIR", self.dir.path())
            .env("SILT_S3_PORT", self.port.to_string())
            .env("SILT_S3_KEEP_DATA", if keep { "1" } else { "0" })
            .output()
            .with_context(|| format!("running {} {arg}", Self::script().display()))?;
        assert!(
            out.status.success(),
            "s3-server {arg}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("s3-server {arg}: {:?}", t.elapsed());
        String::from_utf8(out.stdout).with_context(|| format!("s3-server {arg}: stdout"))
    }

    /// `s3-server env`: the variables that point a client at this server.
    fn env(&self) -> anyhow::Result<Vec<(String, String)>> {
        Ok(self
            .run("env", true)?
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .arg("stop")
            .env("SILT_S3_DIR", self.dir.path())
            .env("SILT_S3_PORT", self.port.to_string())
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_s3_server_stopped_and_restarted() -> anyhow::Result<()> {
    if common::s3_base_url("chaos_s3_server_stopped_and_restarted").is_none() {
        return Ok(());
    }
    let seed = chaos::seed(0xc4a0_5003);
    let port = std::env::var("SILT_CHAOS_S3_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(18533);
    let server = Server {
        dir: tempfile::tempdir().context("creating the S3 server's directory")?,
        port,
    };
    server.run("start", false)?;
    let mut url = String::new();
    for (k, v) in server.env()? {
        if k == "SILT_TEST_S3_URL" {
            url = format!("{v}/chaos");
        }
        // The child inherits these, and the checks' opens read them.
        std::env::set_var(k, v);
    }
    let local = tempfile::tempdir().context("creating the local-log directory")?;
    let sc = Scenario {
        child_test: "chaos_child",
        cfg: Config {
            url,
            dir: local.path().to_path_buf(),
            local: true,
            deadline: Duration::from_secs(60),
        },
        paused: false,
        may_fail: false,
    };
    let mut known = Known::default();
    let remote = [0u64, 1, 4];
    let acked = |l: &chaos::LifeLog, t: u64| l.acked.get(&t).copied().unwrap_or(0);

    // Lives 1 and 2 (four times over in the long mode).
    let cycles = if chaos::long_mode() { 4 } else { 1 };
    for life in (0..cycles).map(|c| 2 * c + 1) {
        // An 8 s outage, ridden out on the same handle.
        let mut child = Child::spawn(&sc, life, None)?;
        child.wait_until(|l| l.acks >= 200 && remote.iter().all(|t| acked(l, *t) >= 10))?;
        server.run("stop", true)?;
        // The outage's length, not a synchronisation.
        std::thread::sleep(Duration::from_secs(8));
        // What the child printed by the end of the outage (no Remote progress in it).
        let at_restart = child.drain().clone();
        server.run("start", true)?;
        child.wait_until(|l| remote.iter().all(|t| acked(l, *t) > at_restart.issued(*t)))?;
        let resumed = child.log.acks;
        child.wait_until(|l| l.acks >= resumed + 100)?;
        let log = child.kill()?;
        eprintln!("life {life}: at restart {at_restart:?}, at the kill {log:?}");
        known.lives.insert(life, log);
        verify(&sc, &mut known, life, None, seed).await?;

        // The next life: killed while the server is down.
        let mut child = Child::spawn(&sc, life + 1, None)?;
        child.wait_until(|l| l.acks >= 400)?;
        server.run("stop", true)?;
        let before = child.drain().acks;
        std::thread::sleep(Duration::from_secs(2));
        let log = child.kill()?;
        eprintln!(
            "life {}: {before} acknowledged before the stop, {log:?} at the kill",
            life + 1
        );
        server.run("start", true)?;
        known.lives.insert(life + 1, log);
        verify(&sc, &mut known, life + 1, None, seed).await?;
    }

    // A last life: the store is whole again.
    let mut child = Child::spawn(&sc, 2 * cycles + 1, None)?;
    child.wait_until(|l| l.acks >= 300)?;
    let log = child.kill()?;
    known.lives.insert(2 * cycles + 1, log);
    verify(&sc, &mut known, 2 * cycles + 1, None, seed).await?;
    Ok(())
}
