//! Chaos scenario: outages longer than `store.retry.deadline` (15 s here). Each life of the
//! child (see `chaos/mod.rs`) runs on paused time against a local directory with 2%
//! injected errors and 1% lost PUT responses, and one outage of 30-50 s: Remote writes (and
//! the Buffered writer's `flush`) waiting past the deadline fail with `Unavailable`, which
//! leaves their effect unknown but loses nothing acknowledged; Local and Buffered writes go
//! on until the memtables fill (SST flushes fail too), then fail the same way (Buffered ones
//! are retried). Odd lives are killed 10-20 s after the
//! outage ends, once every Remote writer has been acknowledged again on the same handle;
//! even lives are killed inside the outage. After each kill the database is reopened and
//! checked.

mod chaos;
mod common;

use std::time::Duration;

use anyhow::Context;
use chaos::{file_config, long_mode, verify, Child, Known, Rng, Scenario};

#[test]
fn chaos_child() -> anyhow::Result<()> {
    chaos::child_main()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_outages_longer_than_the_deadline() -> anyhow::Result<()> {
    let seed = chaos::seed(0xc4a0_5002);
    let dir = tempfile::tempdir().context("creating the scenario's directory")?;
    let sc = Scenario {
        child_test: "chaos_child",
        cfg: file_config(dir.path(), true, Duration::from_secs(15)),
        paused: true,
        may_fail: true,
    };
    let lives = if long_mode() { 8 } else { 2 };
    let mut rng = Rng(seed);
    let mut known = Known::default();
    let mut fails = 0;
    for life in 1..=lives {
        let (start, len) = (rng.range(5, 15), rng.range(30, 50));
        let end = start + len;
        let faults = format!(
            "all=0.02,lost=0.01,outage={len}s@{start}s,seed={}",
            seed ^ life
        );
        let mut child = Child::spawn(&sc, life, Some(&faults))?;
        let log = if life % 2 == 1 {
            child.wait_until(|l| l.secs > start)?;
            let before = child.log.clone();
            child.wait_until(|l| l.secs >= end)?;
            let during = child.log.clone();
            // Writes waiting past the deadline failed.
            assert!(
                during.fails > before.fails,
                "seed {seed} life {life}: {during:?}"
            );
            // Once the store answers, the same handle acknowledges Remote writes again.
            child.wait_until(|l| {
                [0, 1, 4]
                    .iter()
                    .all(|t| l.acked.get(t).copied().unwrap_or(0) > during.issued(*t))
            })?;
            let kill_at = end + rng.range(10, 20);
            child.wait_until(|l| l.secs >= kill_at)?;
            child.kill()?
        } else {
            let kill_at = rng.range(start + 16, end);
            child.wait_until(|l| l.secs >= kill_at)?;
            child.kill()?
        };
        eprintln!("life {life}: faults {faults}: {log:?}");
        fails += log.fails;
        known.lives.insert(life, log);
        verify(&sc, &mut known, life, None, seed).await?;
    }
    assert!(fails > 0, "no write outlived the deadline");
    Ok(())
}
