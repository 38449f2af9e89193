//! Chaos scenario: `chaos_faults.rs` without a local log, so tasks 2 and 3 write Remote
//! too and a Remote write is only as durable as the WAL objects in the store (with a local
//! log, its records survive a SIGKILL in the page cache whatever the remote WAL did). Every
//! life of the child (see `chaos/mod.rs`) runs on paused time against a local directory behind 5% injected errors
//! on every request, 2% lost PUT responses (applied, then reported failed), rare 5 s
//! timeouts and 2 s latency spikes, and one outage window of 5-20 s at a seeded time, then
//! is killed with SIGKILL 20-60 simulated seconds in, often during the outage. After each
//! kill the database is reopened under faults and checked. Writes must all succeed: every
//! outage is shorter than `store.retry.deadline`.
//!
//! It fails when retries are switched off (the first injected error fails a write) and when
//! the read-back resolution of create-only PUTs is (a lost WAL or manifest response reads
//! as another writer's object and stops the handle), and when a Remote write is
//! acknowledged before its WAL segment is stored (`acknowledged write lost: ...`).

mod chaos;
mod common;

#[test]
fn chaos_child() -> anyhow::Result<()> {
    chaos::child_main()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_under_store_faults_without_local_log() -> anyhow::Result<()> {
    chaos::fault_scenario(0xc4a0_5004, false).await
}
