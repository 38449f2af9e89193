//! `silt bench verify --state FILE`: read keys back and compare them with the state the bench
//! runs recorded (see `state`). Every key must read back as the value of the last run that
//! wrote it, or as absent when that run deleted it or no run wrote it.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use silt::{Db, DbBuilder, Settings};
use tokio::time::Instant;

use super::state::{key, State};
use crate::exit::{self, UsageError};
use crate::shared::{write_file, StoreStack};

/// Mismatches listed in the report.
const SHOWN: usize = 10;

/// `silt bench verify` arguments.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The expected-state file written by bench runs with `--state`.
    #[arg(long, value_name = "FILE")]
    pub state: PathBuf,
    /// Check N keys drawn at random (with replacement) instead of every key of the key space.
    #[arg(long, value_name = "N")]
    pub sample: Option<u64>,
    /// Concurrent readers.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub threads: usize,
    /// Seed of the sample.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write the result as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// What a verify pass found.
#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub state_file: String,
    pub runs: usize,
    pub key_space: u64,
    pub checked: u64,
    /// Keys that read back as the expected value.
    pub ok_present: u64,
    /// Keys that read back absent, as expected.
    pub ok_absent: u64,
    /// Expected a value, found none.
    pub missing: u64,
    /// Expected absent (deleted or never written), found a value.
    pub unexpected: u64,
    /// Found the value of an older (or other) recorded run: a lost update.
    pub stale: u64,
    /// Found bytes no recorded run wrote to this key.
    pub corrupt: u64,
    pub mismatches: u64,
    /// The first mismatches: key, expected run (0 = absent), found run (0 = absent, -1 = none).
    pub examples: Vec<(String, u8, i64)>,
    pub seconds: f64,
    pub gets_per_read: f64,
}

/// Run the check and print it; exit code 4 when any key differs.
pub async fn run(url: &str, stack: StoreStack, settings: Settings, args: VerifyArgs) -> Result<u8> {
    if args.threads == 0 {
        return Err(UsageError("--threads must be at least 1".into()).into());
    }
    let st = State::load(&args.state).map_err(|e| UsageError(format!("{e:#}")))?;
    let st = Arc::new(st);
    let db = DbBuilder::from_url(url)
        .map(|b| stack.apply(b.settings(settings)).read_only())
        .with_context(|| format!("cannot open {url}"))?
        .open()
        .await
        .with_context(|| format!("cannot open {url}"))?;
    let db = Arc::new(db);
    let m0 = db.metrics();
    let start = Instant::now();
    let keys: Arc<Vec<u64>> = Arc::new(match args.sample {
        Some(n) => {
            let mut rng = StdRng::seed_from_u64(args.seed);
            (0..n)
                .map(|_| rng.random_range(0..st.key_space().max(1)))
                .collect()
        }
        None => (0..st.key_space()).collect(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..args.threads {
        let (db, st, keys) = (Arc::clone(&db), Arc::clone(&st), Arc::clone(&keys));
        let threads = args.threads;
        tasks.spawn(async move { check(&db, &st, &keys, c, threads).await });
    }
    let mut r = VerifyReport {
        state_file: args.state.display().to_string(),
        runs: st.runs.len(),
        key_space: st.key_space(),
        ..VerifyReport::default()
    };
    while let Some(joined) = tasks.join_next().await {
        let p = joined.context("a verify reader panicked")??;
        r.checked += p.checked;
        r.ok_present += p.ok_present;
        r.ok_absent += p.ok_absent;
        r.missing += p.missing;
        r.unexpected += p.unexpected;
        r.stale += p.stale;
        r.corrupt += p.corrupt;
        r.examples.extend(p.examples);
    }
    r.examples.sort();
    r.examples.truncate(SHOWN);
    r.mismatches = r.missing + r.unexpected + r.stale + r.corrupt;
    r.seconds = start.elapsed().as_secs_f64();
    let m1 = db.metrics();
    let gets = |m: &silt::Metrics| m.store.gets + m.store.get_ranges;
    r.gets_per_read = if r.checked == 0 {
        0.0
    } else {
        (gets(&m1) - gets(&m0)) as f64 / r.checked as f64
    };
    db.close().await.context("closing the database")?;

    if let Some(path) = &args.json {
        let mut text = serde_json::to_vec_pretty(&r)?;
        text.push(b'\n');
        write_file(path, &text)?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "verified {} keys of {} ({} runs recorded) in {:.1} s: {} present as expected, {} absent as expected",
        r.checked, r.key_space, r.runs, r.seconds, r.ok_present, r.ok_absent
    )?;
    writeln!(
        out,
        "mismatches {}: missing {}, unexpected {}, stale {}, corrupt {}; {:.3} GETs per key",
        r.mismatches, r.missing, r.unexpected, r.stale, r.corrupt, r.gets_per_read
    )?;
    for (k, want, got) in &r.examples {
        writeln!(out, "  {k}: expected run {want}, found {got}")?;
    }
    out.flush()?;
    if r.mismatches > 0 {
        return Err(anyhow!(
            "verify failed: {} of {} keys differ from the recorded state",
            r.mismatches,
            r.checked
        ));
    }
    Ok(exit::OK)
}

/// Reader `c` of `threads` checks `keys[c], keys[c + threads], ...`.
async fn check(
    db: &Db,
    st: &State,
    keys: &[u64],
    c: usize,
    threads: usize,
) -> Result<VerifyReport> {
    let mut p = VerifyReport::default();
    for &k in keys.iter().skip(c).step_by(threads) {
        let name = key(k, st.key_size);
        let got = db
            .get(&name)
            .await
            .with_context(|| format!("reading {name}"))?;
        let want_run = st.keys.get(usize::try_from(k)?).copied().unwrap_or(0);
        let want = st.expected(k);
        p.checked += 1;
        let found = |v: &[u8]| st.which_run(k, v).map_or(-1, |i| i as i64);
        let bad = match (&want, &got) {
            (None, None) => {
                p.ok_absent += 1;
                None
            }
            (Some(w), Some(g)) if w.as_slice() == g.as_ref() => {
                p.ok_present += 1;
                None
            }
            (Some(_), None) => {
                p.missing += 1;
                Some(0)
            }
            (None, Some(g)) => {
                p.unexpected += 1;
                Some(found(g))
            }
            (Some(_), Some(g)) => {
                let run = found(g);
                if run > 0 {
                    p.stale += 1;
                } else {
                    p.corrupt += 1;
                }
                Some(run)
            }
        };
        if let Some(run) = bad {
            if p.examples.len() < SHOWN {
                p.examples.push((name, want_run, run));
            }
        }
    }
    Ok(p)
}
