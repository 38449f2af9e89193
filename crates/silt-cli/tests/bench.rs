//! End-to-end test of `silt bench`: a short mixed run on a temporary directory store, then its
//! JSON report, plot and metrics files checked against each other and against `silt inspect`.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, Result};
use serde_json::Value;

fn silt(url: &str, args: &[&str]) -> Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_silt"))
        .env_remove("RUST_LOG")
        .env_remove("SILT_STORE")
        .arg("--store")
        .arg(url)
        .args(args)
        .output()
        .with_context(|| format!("running silt {args:?}"))
}

fn ok(url: &str, args: &[&str]) -> Result<String> {
    let out = silt(url, args)?;
    assert!(
        out.status.success(),
        "silt {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).with_context(|| format!("silt {args:?}: stdout"))
}

fn inspect(url: &str) -> Result<Value> {
    serde_json::from_str(&ok(url, &["inspect", "--json"])?).context("parsing silt inspect --json")
}

/// The JSON file at `path` (a report the bench wrote).
fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn u(v: &Value, ptr: &str) -> u64 {
    v.pointer(ptr)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{ptr} is not an unsigned integer in {v:#}"))
}

fn num(v: &Value, ptr: &str) -> f64 {
    v.pointer(ptr)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{ptr} is not a number"))
}

/// Every field `docs/bench.md` promises.
const REQUIRED: &[&str] = &[
    "/workload",
    "/duration_s",
    "/threads",
    "/ops/read",
    "/ops/write",
    "/ops_per_s",
    "/throughput_by_second",
    "/latency_us/read/p50",
    "/latency_us/read/p99",
    "/latency_us/read/p999",
    "/latency_us/read/max",
    "/latency_us/write/p50",
    "/latency_us/write/p99",
    "/latency_us/write/p999",
    "/latency_us/write/max",
    "/wal/segments",
    "/wal/bytes",
    "/wal/segments_per_s",
    "/wal/mean_segment_bytes",
    "/wal/puts_per_1000_writes",
    "/wal/put_rate_bound_per_s",
    "/object_store/get",
    "/object_store/put",
    "/object_store/list",
    "/object_store/head",
    "/object_store/delete",
    "/object_store/bytes_read",
    "/object_store/bytes_written",
    "/cost_usd_per_million_writes",
    "/rss_mb/start",
    "/rss_mb/peak",
    "/rss_mb/end",
    "/rss_mb/growth_mb_per_s",
    "/wal_segments_by_second",
    "/gets_per_read",
    "/write_amplification",
    "/space_amplification",
    "/settings/wal/segment_bytes",
    "/store_url",
    "/store_latency",
    "/store_faults",
    "/machine/nproc",
    "/date",
];

#[test]
fn mixed_run_report_is_complete_and_consistent() -> Result<()> {
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let url = format!("file://{}", dir.path().join("db").display());
    let json = dir.path().join("r.json");
    let plot = dir.path().join("r.svg");
    let prom = dir.path().join("r.prom");

    // Some history first, so "objects present before the run" is not trivially zero.
    ok(&url, &["put", "a", "1"])?;
    let before = inspect(&url)?;
    let table = ok(
        &url,
        &[
            "--store-latency",
            "1ms..3ms",
            "bench",
            "mixed",
            "--duration",
            "2s",
            "--keys",
            "1000",
            "--preload",
            "1000",
            "--threads",
            "8",
            "--json",
            json.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
            "--metrics",
            prom.to_str().unwrap(),
        ],
    )?;
    assert!(table.contains("throughput"), "{table}");
    assert!(table.contains("WAL"), "{table}");
    let after = inspect(&url)?;

    let r: Value = read_json(&json)?;
    for ptr in REQUIRED {
        assert!(r.pointer(ptr).is_some(), "missing {ptr} in {r:#}");
    }
    assert_eq!(r["workload"], "mixed");
    assert_eq!(r["store_latency"], "1ms..3ms");
    assert_eq!(r["store_faults"], "none");
    assert_eq!(u(&r, "/threads"), 8);
    assert_eq!(u(&r, "/preload"), 1000);

    // Operations: counts, rate and the per-second series agree.
    let ops = u(&r, "/ops/read") + u(&r, "/ops/write");
    assert!(u(&r, "/ops/read") > 0 && u(&r, "/ops/write") > 0, "{r:#}");
    let duration = num(&r, "/duration_s");
    assert!((duration - 2.0).abs() < 1e-9);
    let rate_times_duration = num(&r, "/ops_per_s") * duration;
    assert!(
        (rate_times_duration - ops as f64).abs() < 0.5,
        "{ops} ops vs {rate_times_duration}"
    );
    let by_second: Vec<u64> = r["throughput_by_second"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(by_second.len(), 2);
    assert_eq!(by_second.iter().sum::<u64>(), ops);

    // Reads were of preloaded keys, and preloaded keys are found.
    assert_eq!(u(&r, "/ops/read_misses"), 0);
    assert!(u(&r, "/latency_us/read/count") >= u(&r, "/ops/read"));
    assert!(u(&r, "/latency_us/write/p50") <= u(&r, "/latency_us/write/max"));

    // WAL: the per-second series sums to the total, and the objects in the store match the
    // PUTs the run made (open's fence segment, preload, timed phase, close), less GC.
    let segs: u64 = r["wal_segments_by_second"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(segs, u(&r, "/wal/segments"));
    assert!(u(&r, "/wal/segments") > 0);
    // The PUT-rate bound, plus the bucket's burst, plus one PUT of slack: the counters are
    // read when the sampler wakes, a few ms after the deadline.
    let allowed =
        num(&r, "/wal/put_rate_bound_per_s") * duration + num(&r, "/settings/wal/put_burst") + 1.0;
    assert!(u(&r, "/wal/puts") as f64 <= allowed, "{:#}", r["wal"]);
    let new_objects = u(&after, "/wal_segments") - u(&before, "/wal_segments");
    assert_eq!(u(&r, "/wal/objects_before"), u(&before, "/wal_segments"));
    assert_eq!(u(&r, "/wal/objects_after"), u(&after, "/wal_segments"));
    assert_eq!(
        new_objects,
        u(&r, "/wal/puts_whole_run") - u(&r, "/wal/gc_deleted_whole_run"),
        "{:#}",
        r["wal"]
    );
    // The timed phase's segments are a part of them (the rest: fence, preload, close).
    assert!(u(&r, "/wal/segments") < new_objects);

    // Derived figures are finite and sensible.
    assert!(num(&r, "/write_amplification") > 0.0);
    assert!(num(&r, "/space_amplification") >= 1.0);
    assert!(num(&r, "/cost_usd_per_million_writes") > 0.0);
    assert!(num(&r, "/rss_mb/peak") >= num(&r, "/rss_mb/start"));

    // The plot is an SVG document with its title.
    let svg = read_text(&plot)?;
    assert!(svg.trim_start().starts_with("<svg"), "{}", &svg[..100]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("silt bench mixed"));
    assert!(svg.contains("read ratio 0.80"));
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());

    let prom = read_text(&prom)?;
    assert!(prom.contains("silt_wal_segments_uploaded "), "{prom}");
    assert!(prom.contains("silt_store_wal_puts "));

    // Maintenance commands work on the same store.
    let compacted = ok(&url, &["compact"])?;
    assert!(compacted.contains("L0 SSTs"), "{compacted}");
    let gc = ok(&url, &["gc", "--grace", "0s"])?;
    assert!(gc.starts_with("deleted "), "{gc}");
    assert_eq!(ok(&url, &["get", "a"])?, "1\n");
    Ok(())
}

#[test]
fn bad_bench_arguments_are_usage_errors() -> Result<()> {
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let url = format!("file://{}", dir.path().join("db").display());
    for args in [
        &["--store-latency", "5parsecs", "inspect"][..],
        &["--store-faults", "put=2", "inspect"],
        &["--store-faults", "bogus=0.1", "put", "a", "b"],
        &["bench", "mixed", "--read-ratio", "1.5"],
        &["bench", "fill", "--threads", "0", "--duration", "1s"],
        &[
            "bench",
            "read",
            "--keys",
            "1000",
            "--key-size",
            "3",
            "--duration",
            "1s",
        ],
        &["bench", "fill", "--rate", "0", "--duration", "1s"],
    ] {
        let out = silt(&url, args)?;
        assert_eq!(out.status.code(), Some(2), "silt {args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!Path::new(&dir.path().join("db").join("wal")).exists());
    Ok(())
}

/// The soak's extra fields, on a 3 s run with a 1 s warm-up.
#[test]
fn soak_reports_memory_cache_and_gets_per_read() -> Result<()> {
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let url = format!("file://{}", dir.path().join("db").display());
    let json = dir.path().join("soak.json");
    let plot = dir.path().join("soak.svg");
    let table = ok(
        &url,
        &[
            "bench",
            "soak",
            "--duration",
            "3s",
            "--warmup",
            "1s",
            "--keys",
            "2000",
            "--threads",
            "4",
            "--json",
            json.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
        ],
    )?;
    assert!(table.contains("soak"), "{table}");
    let r: Value = read_json(&json)?;
    for ptr in REQUIRED.iter().chain(&[
        "/memory_budget_mb",
        "/cache_hit_ratio",
        "/object_store_gets_per_read",
        "/rss_growth_after_warmup_mb_per_s",
        "/rss_peak_mb",
        "/gauges_end_mb/memtables",
        "/gauges_end_mb/wal_unflushed",
        "/gauges_end_mb/block_cache",
        "/gauges_end_mb/sst_meta",
        "/live_end/databases",
        "/memory_by_second",
    ]) {
        assert!(r.pointer(ptr).is_some(), "missing {ptr} in {r:#}");
    }
    assert_eq!(r["workload"], "soak");
    assert!((num(&r, "/read_ratio") - 0.8).abs() < 1e-9);
    assert!((num(&r, "/warmup_s") - 1.0).abs() < 1e-9);
    // A soak preloads its key space by default, so reads find their keys and reach SSTs.
    assert_eq!(u(&r, "/preload"), 2000);
    assert_eq!(u(&r, "/ops/read_misses"), 0);
    assert!(u(&r, "/ops/read") > 0);

    // The budget is the settings' total (464 MiB by default).
    let budget = num(&r, "/memory_budget_mb");
    assert!(budget > 0.0);
    let parts: f64 = r["memory_budget_parts_mb"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((parts - budget).abs() < 0.01, "{parts} vs {budget}");
    assert!((budget - 464.0).abs() < 1e-9, "{budget}");

    let hit = num(&r, "/cache_hit_ratio");
    assert!((0.0..=1.0).contains(&hit), "{hit}");
    if let Some(h) = r["cache_hit_ratio_after_warmup"].as_f64() {
        assert!((0.0..=1.0).contains(&h), "{h}");
    }
    assert!(
        r["disk_cache_hit_ratio"].is_null(),
        "no disk cache configured"
    );
    let gpr = num(&r, "/object_store_gets_per_read");
    assert!(gpr.is_finite() && gpr >= 0.0);
    assert!((gpr - num(&r, "/gets_per_read")).abs() < 1e-9);
    let after = num(&r, "/object_store_gets_per_read_after_warmup");
    assert!(after.is_finite() && after >= 0.0);
    assert!(u(&r, "/reads_after_warmup") <= u(&r, "/ops/read"));

    let growth = num(&r, "/rss_growth_after_warmup_mb_per_s");
    assert!(growth.is_finite(), "{growth}");
    let peak = num(&r, "/rss_peak_mb");
    assert!(peak > 0.0 && (peak - num(&r, "/rss_mb/peak")).abs() < 0.1);
    assert!((num(&r, "/rss_peak_over_budget") - peak / budget).abs() < 1e-3);
    let samples = r["memory_by_second"].as_array().unwrap();
    assert_eq!(samples.len(), 4, "start and one per second");
    assert_eq!(u(&r, "/live_end/databases"), 1);
    assert!(
        num(&r, "/gauges_end_mb/block_cache") > 0.0,
        "reads filled the cache"
    );

    let svg = read_text(&plot)?;
    assert!(svg.contains("silt bench soak"));
    assert!(svg.contains("memory budget"));

    // The warm-up must leave some of the run to measure.
    let out = silt(
        &url,
        &["bench", "soak", "--duration", "2s", "--warmup", "2s"],
    )?;
    assert_eq!(out.status.code(), Some(2));
    Ok(())
}

/// `--delete-ratio`: the report counts deletes, deleted keys read back as absent, and
/// `bench verify` checks every key against the state the runs recorded.
#[test]
fn delete_ratio_deletes_and_verify_checks_latest_values() -> Result<()> {
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let url = format!("file://{}", dir.path().join("db").display());
    let state = dir.path().join("state.bin");
    let state = state.to_str().unwrap();
    let json = dir.path().join("fill.json");
    let common = [
        "--keys",
        "500",
        "--durability",
        "buffered",
        "--threads",
        "4",
        "--state",
        state,
    ];
    // Run 1: every key, then overwrites. Run 2: overwrites and half deletes.
    let mut run1 = vec!["bench", "fill", "--duration", "1s", "--preload", "500"];
    run1.extend(common);
    ok(&url, &run1)?;
    let mut run2 = vec![
        "bench",
        "fill",
        "--duration",
        "1s",
        "--seed",
        "7",
        "--delete-ratio",
        "0.5",
        "--json",
        json.to_str().unwrap(),
    ];
    run2.extend(common);
    ok(&url, &run2)?;
    let r: Value = read_json(&json)?;
    let (writes, deletes) = (u(&r, "/ops/write"), u(&r, "/ops/delete"));
    assert!(deletes > 0 && deletes < writes, "{deletes} of {writes}");
    assert!((num(&r, "/delete_ratio") - 0.5).abs() < 1e-9);
    // Writes hit all 500 keys many times over, so about half are deleted now.
    let live = u(&r, "/live_keys");
    assert!((150..350).contains(&live), "{live}");

    // The same seed twice would make the runs' values indistinguishable.
    let mut again = run2.clone();
    again.retain(|a| *a != "--json" && !a.ends_with("fill.json"));
    assert_eq!(silt(&url, &again)?.status.code(), Some(2));

    let report = dir.path().join("verify.json");
    let text = ok(
        &url,
        &[
            "bench",
            "verify",
            "--state",
            state,
            "--json",
            report.to_str().unwrap(),
        ],
    )?;
    assert!(text.contains("mismatches 0"), "{text}");
    let v: Value = read_json(&report)?;
    assert_eq!(u(&v, "/checked"), 500);
    assert_eq!(u(&v, "/mismatches"), 0);
    assert_eq!(u(&v, "/ok_present"), live);
    assert_eq!(u(&v, "/ok_absent"), 500 - live);

    // A deleted key reads back as nothing (`get` exits 1). Find one through the verify
    // state: the keys that run 2 deleted are exactly those the report counts as absent.
    let mut absent = None;
    for k in (0..500).map(|i| format!("k{i:0>15}")) {
        if silt(&url, &["get", &k])?.status.code() == Some(1) {
            absent = Some(k);
            break;
        }
    }
    let absent = absent.context("no key was deleted")?;
    assert_eq!(absent.len(), 16);

    // After compaction and GC the store still reads back the same, with no WAL segment older
    // than the replay point.
    ok(&url, &["compact"])?;
    let gc = ok(&url, &["gc", "--grace", "0s"])?;
    assert!(gc.contains("0 segments older than it remain"), "{gc}");
    let insp = inspect(&url)?;
    assert_eq!(
        u(&insp, "/wal_segments"),
        u(&insp, "/wal_segments_to_replay")
    );
    assert!(ok(
        &url,
        &["bench", "verify", "--state", state, "--sample", "200"]
    )?
    .contains("mismatches 0"));

    // A tampered key is caught.
    ok(&url, &["put", &absent, "x"])?;
    let out = silt(&url, &["bench", "verify", "--state", state])?;
    assert_eq!(out.status.code(), Some(4));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unexpected 1"), "{text}");
    Ok(())
}

/// Under injected faults the report counts the engine's retries, and nothing gave up.
#[test]
fn mixed_run_under_store_faults_reports_retries() -> Result<()> {
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let url = format!("file://{}", dir.path().join("db").display());
    let json = dir.path().join("r.json");
    ok(
        &url,
        &[
            "--store-faults",
            "all=0.05",
            "bench",
            "mixed",
            "--duration",
            "2s",
            "--keys",
            "1000",
            "--preload",
            "1000",
            "--json",
            json.to_str().unwrap(),
        ],
    )?;
    let r: Value = read_json(&json)?;
    assert_eq!(r["store_faults"], "all=0.05");
    let retries = u(&r, "/object_store/retries");
    assert!(retries > 0, "{r:#}");
    assert!(num(&r, "/object_store/retries_per_1000_requests") > 0.0);
    assert_eq!(u(&r, "/object_store/retries_gave_up"), 0);
    // Every retry followed an error the instrumented layer counted.
    assert!(u(&r, "/object_store/errors") >= retries, "{r:#}");
    Ok(())
}

/// `silt bench recovery`: two simulated hours of one put a second. With the replay bound
/// (200 segments here) an open replays at most the bound; without it, every write's segment.
#[test]
fn recovery_bench_replays_at_most_the_bound() -> Result<()> {
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let settings = dir.path().join("s.json");
    std::fs::write(&settings, r#"{"wal": {"max_replay_segments": 200}}"#)
        .with_context(|| format!("writing {}", settings.display()))?;
    let json = dir.path().join("r.json");
    let out = ok(
        "memory://",
        &[
            "--settings",
            settings.to_str().unwrap(),
            "bench",
            "recovery",
            "--simulated",
            "2h",
            "--opens",
            "2",
            "--json",
            json.to_str().unwrap(),
        ],
    )?;
    assert!(out.contains("replay bound"), "{out}");
    let r: Value = read_json(&json)?;
    let (on, off) = (&r["runs"][0], &r["runs"][1]);
    assert_eq!(on["replay_bound"], true);
    assert_eq!(u(on, "/writes"), 7200);
    assert!(u(on, "/replay_bound_flushes") >= 7200 / 201, "{on:#}");
    // Besides the writes' segments, each writer (the simulated one, then each open)
    // starts its epoch with one segment of its own.
    for s in on["segments_replayed"].as_array().unwrap() {
        assert!(s.as_u64().unwrap() <= 201 + 3, "{on:#}");
    }
    assert_eq!(off["replay_bound"], false);
    assert_eq!(u(off, "/replay_bound_flushes"), 0);
    for s in off["segments_replayed"].as_array().unwrap() {
        assert!((7200..=7203).contains(&s.as_u64().unwrap()), "{off:#}");
    }
    Ok(())
}
