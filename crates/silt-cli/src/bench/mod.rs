//! `silt bench`: load generators that measure throughput, latency, WAL behaviour, object-store
//! requests, cost and memory (see `docs/bench.md`).
//!
//! Layout: the command line ([`BenchCommand`], `args`), the resolved run (`plan`), the load
//! itself (`workload`), the report (`report`), the SVG plot (`plot`), the expected contents
//! (`state`) and `silt bench verify` (`verify`). `silt bench wal-wa` and `silt bench recovery`
//! are their own modules (`crate::walwa`, `crate::recovery`); `silt compact` and `silt gc`
//! are `crate::maintenance`.

mod args;
mod plan;
mod plot;
mod report;
mod state;
mod verify;
mod workload;

use std::io::Write as _;
use std::sync::Arc;

use anyhow::{Context, Result};
use silt::inspect::inspect;
use silt::objstore::{store_from_url, Storage};
use silt::{DbBuilder, Settings};

pub use self::args::BenchCommand;
use self::plan::Plan;
use crate::exit::{self, UsageError};
use crate::shared::{write_file, StoreStack};

/// `silt bench WORKLOAD`: open the store as writer, preload, run the timed phase, report.
pub async fn run(
    url: &str,
    stack: StoreStack,
    settings: Settings,
    cmd: BenchCommand,
) -> Result<u8> {
    let cmd = match cmd {
        BenchCommand::WalWa(args) => {
            crate::walwa::run(args).await?;
            return Ok(0);
        }
        BenchCommand::Verify(args) => return verify::run(url, stack, settings, args).await,
        BenchCommand::Recovery(args) => {
            crate::recovery::run(args, stack, settings).await?;
            return Ok(0);
        }
        other => other,
    };
    let plan = Plan::new(url, stack, settings, cmd)?;
    // The expected state before the run (`--state`), checked before anything is written.
    let mut state = match &plan.args.state {
        Some(path) => Some(
            state::State::load_for_run(path, plan.args.key_size, plan.key_space, plan.args.seed)
                .map_err(|e| anyhow::Error::new(UsageError(format!("{e:#}"))))?,
        ),
        None => None,
    };
    // WAL objects before the run, straight from the store (no latency, not counted).
    let before = {
        let (store, root) = store_from_url(url).with_context(|| format!("cannot open {url}"))?;
        inspect(&Storage::new(store, root))
            .await
            .with_context(|| format!("cannot inspect {url}"))?
    };
    let db = DbBuilder::from_url(url)
        .map(|b| {
            b.settings(plan.settings.clone())
                .store_latency(plan.latency)
                .store_faults(plan.faults)
        })
        .with_context(|| format!("cannot open {url}"))?
        .open()
        .await
        .with_context(|| format!("cannot open {url}"))?;
    let db = Arc::new(db);
    let outcome = workload::run(&plan, &db, state.as_ref()).await;
    let prometheus = db.metrics().to_prometheus();
    let closed = db.close().await.context("closing the database");
    let raw = outcome?;
    closed?;
    // After close: the whole process's requests, and the store as it was left.
    let whole = db.metrics();
    let after = inspect(db.storage())
        .await
        .with_context(|| format!("cannot inspect {url}"))?;
    let report = report::build(&plan, &raw, &whole, &before, &after);
    // The database closed cleanly, so every write of the run is in the store.
    if let (Some(st), Some(path)) = (state.as_mut(), &plan.args.state) {
        workload::record_run(&plan, &raw, st);
        st.save(path)?;
    }

    if let Some(path) = &plan.args.metrics {
        write_file(path, prometheus.as_bytes())?;
    }
    if let Some(path) = &plan.args.json {
        let mut text = serde_json::to_vec_pretty(&report)?;
        text.push(b'\n');
        write_file(path, &text)?;
    }
    if let Some(path) = &plan.args.plot {
        let svg = if report.soak.is_some() {
            plot::render_soak(&report)
        } else {
            plot::render(&report)
        }
        .context("drawing the plot")?;
        write_file(path, svg.as_bytes())?;
    }
    let mut out = std::io::stdout().lock();
    report::write_human(&mut out, &report)?;
    out.flush()?;
    Ok(exit::OK)
}
