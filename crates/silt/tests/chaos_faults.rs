//! Chaos scenario: a store that fails under the workload, with a local log (all three
//! durabilities; `chaos_faults_remote.rs` is the same without one). Every life of the child (see
//! `chaos/mod.rs`) runs on paused time against a local directory behind 5% injected errors
//! on every request, 2% lost PUT responses (applied, then reported failed), rare 5 s
//! timeouts and 2 s latency spikes, and one outage window of 5-20 s at a seeded time, then
//! is killed with SIGKILL 20-60 simulated seconds in, often during the outage. After each
//! kill the database is reopened under faults and checked. Writes must all succeed: every
//! outage is shorter than `store.retry.deadline`.
//!
//! It fails when retries are switched off (the first injected error fails a write) and when
//! the read-back resolution of create-only PUTs is (a lost WAL or manifest response reads
//! as another writer's object and stops the handle).

mod chaos;

use std::time::Duration;

use anyhow::Context;
use chaos::{file_config, long_mode, verify, Child, Known, Rng, Scenario};

#[test]
fn chaos_child() -> anyhow::Result<()> {
    chaos::child_main()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_under_store_faults() -> anyhow::Result<()> {
    let seed = chaos::seed(0xc4a0_5001);
    let dir = tempfile::tempdir().context("creating the scenario's directory")?;
    let sc = Scenario {
        child_test: "chaos_child",
        cfg: file_config(dir.path(), true, Duration::from_secs(60)),
        paused: true,
        may_fail: false,
    };
    let lives = if long_mode() { 16 } else { 4 };
    let mut rng = Rng(seed);
    let mut known = Known::default();
    let (mut secs, mut retries) = (0, 0);
    for life in 1..=lives {
        let kill_at = rng.range(20, 60);
        let outage = format!("{}s@{}s", rng.range(5, 20), rng.range(0, kill_at));
        let faults = format!(
            "all=0.05,lost=0.02,timeout=0.002:5s,spike=0.01:2s,outage={outage},seed={}",
            seed ^ life
        );
        let mut child = Child::spawn(&sc, life, Some(&faults))?;
        child.wait_until(|l| l.secs >= kill_at)?;
        let log = child.kill()?;
        eprintln!("life {life}: faults {faults}, killed at {kill_at}s: {log:?}");
        assert!(
            log.acks > 0,
            "seed {seed} life {life}: nothing acknowledged"
        );
        (secs, retries) = (secs + log.secs, retries + log.retries);
        known.lives.insert(life, log);
        let check = format!("all=0.05,lost=0.02,seed={}", seed ^ life ^ 0xc4ec);
        verify(&sc, &mut known, life, Some(&check), seed).await?;
    }
    assert!(secs >= 60, "only {secs} s of simulated time");
    assert!(retries > 0, "no store request was ever retried");
    Ok(())
}
