//! End-to-end tests of the `silt` binary: each command is a separate process, so every
//! read after a write goes through a reopen of the database.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result};
use tempfile::TempDir;

struct Store {
    dir: TempDir,
}

impl Store {
    fn new() -> Result<Self> {
        Ok(Store {
            dir: tempfile::tempdir().context("creating the store's temp dir")?,
        })
    }

    fn url(&self) -> String {
        format!("file://{}", self.dir.path().join("db").display())
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_silt"));
        c.env_remove("RUST_LOG")
            .env("SILT_STORE", self.url())
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Result<Output> {
        self.cmd(args)
            .output()
            .with_context(|| format!("running silt {args:?}"))
    }

    /// Run and require success; returns stdout.
    fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args)?;
        assert!(
            out.status.success(),
            "silt {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).with_context(|| format!("silt {args:?}: stdout"))
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A failure prints exactly one `error: ...` line and no panic or backtrace.
fn assert_one_line_error(out: &Output) -> String {
    let err = stderr(out);
    assert!(!out.status.success());
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("backtrace"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

#[test]
fn put_get_scan_delete_round_trip() -> Result<()> {
    let s = Store::new()?;
    s.ok(&["put", "user:1", "ada"])?;
    s.ok(&["put", "user:2", "grace"])?;
    s.ok(&["put", "other", "x y\tz"])?;
    assert_eq!(s.ok(&["get", "user:1"])?, "ada\n");
    assert_eq!(s.ok(&["get", "--hex", "user:2"])?, "6772616365\n");
    assert_eq!(
        s.ok(&["scan"])?,
        "other\tx y\tz\nuser:1\tada\nuser:2\tgrace\n"
    );
    s.ok(&["put", "user:1", "lovelace"])?;
    s.ok(&["delete", "user:2"])?;
    assert_eq!(s.ok(&["get", "user:1"])?, "lovelace\n");
    assert_eq!(s.ok(&["scan", "--prefix", "user:"])?, "user:1\tlovelace\n");
    assert_eq!(s.run(&["get", "user:2"])?.status.code(), Some(1));
    assert_eq!(
        s.ok(&["scan", "--hex", "--prefix", "user"])?,
        "757365723a31\t6c6f76656c616365\n"
    );
    // Deleting an absent key is fine.
    s.ok(&["delete", "never"])?;
    Ok(())
}

#[test]
fn get_missing_key_exits_1() -> Result<()> {
    let s = Store::new()?;
    s.ok(&["put", "a", "1"])?;
    let out = s.run(&["get", "nope"])?;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.contains("key not found: nope"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Also on a store that was never written.
    let empty = Store::new()?;
    assert_eq!(empty.run(&["get", "a"])?.status.code(), Some(1));
    assert_eq!(empty.ok(&["scan"])?, "");
    Ok(())
}

#[test]
fn scan_prefix_start_end_limit() -> Result<()> {
    let s = Store::new()?;
    let loaded = s.ok(&[
        "load",
        "--count",
        "10",
        "--prefix",
        "k",
        "--durability",
        "buffered",
    ])?;
    assert_eq!(loaded.lines().count(), 10);
    s.ok(&["put", "j", "before"])?;
    s.ok(&["put", "l", "after"])?;
    let keys = |args: &[&str]| -> Result<Vec<String>> {
        Ok(s.ok(args)?
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect())
    };
    assert_eq!(keys(&["scan"])?.len(), 12);
    assert_eq!(keys(&["scan", "--prefix", "k"])?.len(), 10);
    assert_eq!(
        keys(&["scan", "--start", "k00000003", "--end", "k00000006"])?,
        ["k00000003", "k00000004", "k00000005"]
    );
    assert_eq!(
        keys(&["scan", "--prefix", "k", "--start", "k00000008"])?,
        ["k00000008", "k00000009"]
    );
    assert_eq!(
        keys(&["scan", "--start", "k00000008"])?,
        ["k00000008", "k00000009", "l"]
    );
    assert_eq!(keys(&["scan", "--end", "k00000001"])?, ["j", "k00000000"]);
    assert_eq!(
        keys(&["scan", "--prefix", "k", "--limit", "2"])?,
        ["k00000000", "k00000001"]
    );
    assert_eq!(keys(&["scan", "--limit", "0"])?, Vec::<String>::new());
    // Values written by `load` are the key repeated to --value-size (16) bytes.
    assert_eq!(s.ok(&["get", "k00000002"])?, "k00000002k000000\n");
    Ok(())
}

#[test]
fn inspect_json_has_the_report_fields() -> Result<()> {
    let s = Store::new()?;
    // Empty store: inspect works without a database.
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["inspect", "--json"])?)
        .context("parsing the JSON of inspect --json")?;
    assert_eq!(v["writer_epoch"], 0);
    // Small memtables so the load flushes SSTs.
    let settings = s.dir.path().join("settings.json");
    std::fs::write(
        &settings,
        r#"{"memtable_bytes": 4096, "wal": {"segment_bytes": 1024, "flush_interval": "10ms"}}"#,
    )
    .with_context(|| format!("writing {}", settings.display()))?;
    let settings = settings.to_str().unwrap();
    s.ok(&[
        "--settings",
        settings,
        "load",
        "--count",
        "200",
        "--value-size",
        "64",
        "--durability",
        "buffered",
    ])?;
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["inspect", "--json"])?)
        .context("parsing the JSON of inspect --json")?;
    for field in [
        "writer_epoch",
        "manifest_id",
        "wal_replay_from",
        "last_flushed_seq",
        "wal_segments",
        "wal_bytes",
        "wal_segments_to_replay",
        "l0_ssts",
        "ssts",
        "sst_objects",
        "sst_bytes",
        "manifests",
        "checkpoints",
        "store_bytes",
    ] {
        assert!(v.get(field).is_some(), "missing {field} in {v}");
    }
    assert_eq!(v["writer_epoch"], 1);
    let ssts = v["ssts"].as_array().unwrap();
    assert!(!ssts.is_empty(), "{v}");
    for sst in ssts {
        for field in [
            "id",
            "level",
            "size",
            "entries",
            "smallest_key",
            "largest_key",
            "min_seq",
            "max_seq",
        ] {
            assert!(sst.get(field).is_some(), "missing {field} in {sst}");
        }
    }
    assert!(v["store_bytes"].as_u64().unwrap() > 0);
    let human = s.ok(&["inspect"])?;
    for label in [
        "writer epoch",
        "manifest id",
        "wal segments",
        "wal replay from",
        "ssts",
        "store bytes",
    ] {
        assert!(human.contains(label), "{human}");
    }
    assert!(human.contains("L0 "), "{human}");
    // inspect does not open the database: no new writer epoch.
    let again: serde_json::Value = serde_json::from_str(&s.ok(&["inspect", "--json"])?)
        .context("parsing the JSON of inspect --json")?;
    assert_eq!(again["writer_epoch"], 1);
    // Everything is still readable after the SST flushes.
    assert_eq!(s.ok(&["scan", "--prefix", "key"])?.lines().count(), 200);
    Ok(())
}

/// `silt --store s3://… | az://… | gs://…` round-trips against each emulator
/// `scripts/test` starts, with the variables `scripts/<x>-server env` prints (inherited
/// from the test's environment). A scheme whose URL is unset is skipped unless its
/// `SILT_REQUIRE_*` is `1`.
#[test]
fn every_emulator_round_trips_through_the_cli() -> Result<()> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    for (url_var, require_var) in [
        ("SILT_TEST_S3_URL", "SILT_REQUIRE_S3"),
        ("SILT_TEST_AZURE_URL", "SILT_REQUIRE_AZURE"),
        ("SILT_TEST_GCS_URL", "SILT_REQUIRE_GCS"),
    ] {
        let Some(base) = std::env::var(url_var).ok().filter(|v| !v.is_empty()) else {
            assert!(
                std::env::var(require_var).as_deref() != Ok("1"),
                "{require_var}=1 but {url_var} is unset: run scripts/test"
            );
            eprintln!("skipping {url_var}: unset");
            continue;
        };
        let url = format!(
            "{}/cli-{nanos:x}-{}",
            base.trim_end_matches('/'),
            std::process::id()
        );
        let silt = |args: &[&str]| -> Result<Output> {
            Command::new(env!("CARGO_BIN_EXE_silt"))
                .env_remove("RUST_LOG")
                .env_remove("SILT_STORE")
                .arg("--store")
                .arg(&url)
                .args(args)
                .output()
                .with_context(|| format!("silt --store {url} {args:?}"))
        };
        let ok = |args: &[&str]| -> Result<String> {
            let out = silt(args)?;
            assert!(
                out.status.success(),
                "silt --store {url} {args:?}: {}",
                stderr(&out)
            );
            String::from_utf8(out.stdout).context("stdout")
        };
        ok(&["put", "k1", "v1"])?;
        ok(&["put", "k2", "v2"])?;
        assert_eq!(ok(&["get", "k1"])?, "v1\n", "{url}");
        ok(&["delete", "k1"])?;
        assert_eq!(ok(&["scan"])?, "k2\tv2\n", "{url}");
        assert_eq!(silt(&["get", "k1"])?.status.code(), Some(1), "{url}");
    }
    Ok(())
}

#[test]
fn bad_url_scheme_is_one_line_error() -> Result<()> {
    let s = Store::new()?;
    for args in [
        &["--store", "ftp://host/x", "get", "a"][..],
        &["--store", "ftp://host/x", "put", "a", "b"],
        &["--store", "ftp://host/x", "inspect"],
        &["--store", "s3://", "scan"],
    ] {
        let out = s.run(args)?;
        let err = assert_one_line_error(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("store URL"), "{err}");
    }
    Ok(())
}

#[test]
fn settings_errors_are_clear() -> Result<()> {
    let s = Store::new()?;
    let path = s.dir.path().join("settings.json");
    let p = path.to_str().unwrap();

    std::fs::write(&path, r#"{"memtable_bytes": 65536, "nope": 1}"#)
        .with_context(|| format!("writing {}", path.display()))?;
    let out = s.run(&["--settings", p, "put", "a", "b"])?;
    let err = assert_one_line_error(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("unknown field: found `nope`"), "{err}");
    assert!(err.contains("settings.json"), "{err}");

    std::fs::write(&path, r#"{"wal": {"max_puts_per_sec": 0}}"#)
        .with_context(|| format!("writing {}", path.display()))?;
    let out = s.run(&["--settings", p, "get", "a"])?;
    let err = assert_one_line_error(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("max_puts_per_sec"), "{err}");

    let out = s.run(&["--settings", "/nonexistent/settings.json", "get", "a"])?;
    let err = assert_one_line_error(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("cannot read settings file"), "{err}");

    std::fs::write(&path, r#"{"wal": {"flush_interval": "50ms"}}"#)
        .with_context(|| format!("writing {}", path.display()))?;
    s.ok(&["--settings", p, "put", "a", "b"])?;
    assert_eq!(s.ok(&["--settings", p, "get", "a"])?, "b\n");
    Ok(())
}

#[test]
fn settings_from_toml_and_the_environment() -> Result<()> {
    let s = Store::new()?;
    let path = s.dir.path().join("settings.toml");
    let p = path.to_str().unwrap();
    let write = |text: &str| {
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write("[wal]\nflush_interval = \"20ms\"\nmax_puts_per_sec = 50.0\n")?;
    s.ok(&["--settings", p, "put", "a", "b"])?;
    assert_eq!(s.ok(&["--settings", p, "get", "a"])?, "b\n");

    write("[wal]\nflush_intervall = \"20ms\"\n")?;
    let err = assert_one_line_error(&s.run(&["--settings", p, "get", "a"])?);
    assert!(
        err.contains("settings.toml") && err.contains("flush_intervall"),
        "{err}"
    );

    // A `SILT_` variable overrides the file, and is validated like it.
    write("[wal]\nmax_puts_per_sec = 50.0\n")?;
    let out = s
        .cmd(&["--settings", p, "get", "a"])
        .env("SILT_WAL__MAX_PUTS_PER_SEC", "0")
        .output()
        .context("running silt get with SILT_WAL__MAX_PUTS_PER_SEC=0")?;
    let err = assert_one_line_error(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("max_puts_per_sec"), "{err}");
    let out = s
        .cmd(&["get", "a"])
        .env("SILT_GC__GRACE", "whenever")
        .output()
        .context("running silt get with SILT_GC__GRACE=whenever")?;
    let err = assert_one_line_error(&out);
    assert!(err.contains("SILT_") && err.contains("GC.GRACE"), "{err}");
    Ok(())
}

#[test]
fn usage_errors_exit_2_and_help_lists_exit_codes() -> Result<()> {
    let s = Store::new()?;
    assert_eq!(s.run(&["frobnicate"])?.status.code(), Some(2));
    assert_eq!(s.run(&["put", "only-key"])?.status.code(), Some(2));
    assert_eq!(s.run(&["scan", "--limit", "many"])?.status.code(), Some(2));
    let help = s.ok(&["--help"])?;
    assert!(help.contains("Exit codes"), "{help}");
    assert!(!help.contains("load"), "load is hidden: {help}");
    // Invalid input caught by the engine (empty key) is exit 2 too.
    let out = s.run(&["put", "", "v"])?;
    if !out.status.success() {
        assert_one_line_error(&out);
        assert_eq!(out.status.code(), Some(2));
    }
    Ok(())
}

#[test]
fn readers_do_not_fence_and_a_new_writer_fences_the_old_one() -> Result<()> {
    let s = Store::new()?;
    let mut load = s
        .cmd(&["load", "--count", "1000000", "--prefix", "bg"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning silt load")?;
    let stdout = load
        .stdout
        .take()
        .context("the loader's stdout is not piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .next()
        .context("the loader printed nothing")?
        .context("reading the loader's output")?;
    assert_eq!(first, "bg00000000");
    // A read-only get sees acknowledged writes and does not stop the writer.
    assert_eq!(s.ok(&["get", "bg00000000"])?, "bg00000000bg0000\n");
    assert!(lines.next().context("the loader stopped printing")?.is_ok());
    // inspect reports the running writer's epoch without changing it.
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["inspect", "--json"])?)
        .context("parsing the JSON of inspect --json")?;
    assert_eq!(v["writer_epoch"], 1);
    // A second writer fences the first, which then exits with code 3.
    s.ok(&["put", "x", "y"])?;
    let acked: Vec<String> = lines
        .collect::<std::io::Result<_>>()
        .context("reading the loader's output")?;
    let out = load.wait_with_output().context("waiting for the loader")?;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = assert_one_line_error(&out);
    assert!(err.contains("fenced"), "{err}");
    // Every key the loader acknowledged survives.
    if let Some(last) = acked.last() {
        assert!(s.run(&["get", last])?.status.success(), "{last} lost");
    }
    assert_eq!(s.ok(&["get", "x"])?, "y\n");
    Ok(())
}

#[test]
fn bare_path_store_and_default_store() -> Result<()> {
    let s = Store::new()?;
    let path = s.dir.path().join("plain");
    let p = path.to_str().unwrap();
    s.ok(&["--store", p, "put", "k", "v"])?;
    assert_eq!(s.ok(&["--store", p, "get", "k"])?, "v\n");
    // Default store is ./silt-data in the working directory.
    let mut c = Command::new(env!("CARGO_BIN_EXE_silt"));
    let out = c
        .env_remove("SILT_STORE")
        .current_dir(s.dir.path())
        .args(["put", "d", "1"])
        .output()
        .context("running silt put d 1 with the default store")?;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(Path::new(&s.dir.path().join("silt-data")).is_dir());
    Ok(())
}

/// The issue's scenario with the engine's own CLI, in separate processes: writer A loads
/// keys and then sits idle; writer B (fencing A) loads more keys and compacts, with short GC
/// settings. A's background GC must find B's manifests, delete nothing and stop A as fenced
/// (exit 3), and the database must open afterwards with every acknowledged key.
#[test]
fn an_idle_fenced_writer_deletes_nothing_and_exits_fenced() -> Result<()> {
    let s = Store::new()?;
    let settings = s.dir.path().join("settings.json");
    std::fs::write(
        &settings,
        r#"{"gc": {"interval": "300ms", "grace": "1s"}, "memtable_bytes": 4096,
            "wal": {"max_puts_per_sec": 2000, "put_burst": 8}}"#,
    )
    .with_context(|| format!("writing {}", settings.display()))?;
    let settings = settings.to_str().unwrap();
    let load = |prefix: &str, extra: &[&str]| {
        let mut args = vec!["--settings", settings, "load", "--count", "200"];
        args.extend(["--prefix", prefix, "--value-size", "64"]);
        args.extend(extra);
        s.cmd(&args)
    };

    let mut a = load("a-", &["--idle", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning writer A")?;
    // A prints "idle" once all of its keys are acknowledged.
    let stdout = a.stdout.take().context("writer A's stdout is not piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut a_keys = Vec::new();
    for line in lines.by_ref() {
        let line = line.context("reading writer A's output")?;
        if line == "idle" {
            break;
        }
        a_keys.push(line);
    }
    assert_eq!(a_keys.len(), 200, "writer A did not finish loading");

    let out = load("b-", &[]).output().context("running writer B")?;
    assert!(out.status.success(), "{}", stderr(&out));
    s.ok(&["--settings", settings, "compact"])?;

    // A notices within a GC interval or so; without the ownership check it would instead
    // delete B's compacted SSTs once they are older than the grace, and idle on.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(st) = a.try_wait().context("polling writer A")? {
            break Some(st);
        }
        if std::time::Instant::now() > deadline {
            a.kill().context("killing writer A")?;
            a.wait().context("waiting for the killed writer A")?;
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut a_err = String::new();
    let mut a_stderr = a.stderr.take().context("writer A's stderr is not piped")?;
    std::io::Read::read_to_string(&mut a_stderr, &mut a_err)
        .context("reading writer A's stderr")?;

    let all = s.ok(&["scan"])?;
    let keys: Vec<&str> = all.lines().map(|l| l.split('\t').next().unwrap()).collect();
    for i in 0..200 {
        for p in ["a-", "b-"] {
            let k = format!("{p}{i:08}");
            assert!(
                keys.contains(&k.as_str()),
                "acknowledged key {k} is missing"
            );
        }
    }
    let status = status.context("the idle fenced writer never noticed it was fenced")?;
    assert_eq!(status.code(), Some(3), "idle writer: {a_err}");
    assert!(a_err.contains("fenced"), "{a_err}");
    Ok(())
}

#[test]
fn store_faults_are_ridden_out_and_bad_specs_are_usage_errors() -> Result<()> {
    let s = Store::new()?;
    let faults = ["--store-faults", "put=0.3,get=0.3,lost=0.2"];
    for i in 0..5 {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        s.ok(&[&faults[..], &["put", &k, &v]].concat())?;
    }
    for i in 0..5 {
        let k = format!("k{i}");
        let v = format!("v{i}\n");
        assert_eq!(s.ok(&[&faults[..], &["get", &k]].concat())?, v);
        assert_eq!(s.ok(&["get", &k])?, v);
    }
    // The faults reach the store: with every request failing, an open gives up at the
    // retry deadline.
    let settings = s.dir.path().join("settings.json");
    std::fs::write(
        &settings,
        r#"{"store": {"retry": {"initial": "10ms", "max": "20ms", "deadline": "200ms"}}}"#,
    )
    .with_context(|| format!("writing {}", settings.display()))?;
    let settings = settings.to_str().unwrap();
    let out = s.run(&[
        "--settings",
        settings,
        "--store-faults",
        "all=1",
        "get",
        "k0",
    ])?;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("injected"), "{}", stderr(&out));
    let out = s.run(&["--store-faults", "outage=10s", "get", "k0"])?;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("DUR@START"), "{}", stderr(&out));
    Ok(())
}

/// `silt checkpoint create` pins the database as it is; `--at-checkpoint` reads it so after
/// later writes, `silt compact` and `silt gc --grace 0s`; list, renew and delete work, and
/// bad names and a missing checkpoint are usage errors.
#[test]
fn checkpoints_pin_a_view_through_compaction_and_gc() -> Result<()> {
    let s = Store::new()?;
    s.ok(&["put", "a", "1"])?;
    s.ok(&["put", "b", "1"])?;
    let created = s.ok(&["checkpoint", "create", "before"])?;
    assert!(
        created.starts_with("created checkpoint before: "),
        "{created}"
    );
    s.ok(&["checkpoint", "create", "hourly", "--lifetime", "1h"])?;
    s.ok(&["put", "a", "2"])?;
    s.ok(&["delete", "b"])?;
    s.ok(&["put", "c", "3"])?;
    s.ok(&["compact"])?;
    let gc = s.ok(&["gc", "--grace", "0s"])?;
    assert!(gc.contains("checkpoints: 2 live kept"), "{gc}");

    assert_eq!(
        s.ok(&["--at-checkpoint", "before", "scan"])?,
        "a\t1\nb\t1\n"
    );
    assert_eq!(s.ok(&["--at-checkpoint", "before", "get", "a"])?, "1\n");
    let out = s.run(&["--at-checkpoint", "before", "get", "c"])?;
    assert_eq!(out.status.code(), Some(1), "c came later");
    assert_eq!(s.ok(&["scan"])?, "a\t2\nc\t3\n");

    let table = s.ok(&["checkpoint", "list"])?;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("NAME"), "{table}");
    assert!(
        lines[1].starts_with("before ") && lines[1].ends_with("never"),
        "{table}"
    );
    assert!(
        lines[2].starts_with("hourly ") && lines[2].contains("named"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["checkpoint", "list", "--json"])?)?;
    let names: Vec<&str> = json
        .as_array()
        .context("an array")?
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["before", "hourly"]);
    let renewed = s.ok(&["checkpoint", "renew", "hourly"])?;
    assert!(renewed.ends_with("expires never\n"), "{renewed}");

    for bad in [
        &["checkpoint", "create", "a/b"][..],
        &["checkpoint", "delete", "nope"],
        &["--at-checkpoint", "nope", "get", "a"],
        &["--at-checkpoint", "before", "put", "a", "9"],
        &["checkpoint", "create", "before"],
    ] {
        let out = s.run(bad)?;
        assert_one_line_error(&out);
        assert_eq!(out.status.code(), Some(2), "silt {bad:?}: {}", stderr(&out));
    }
    s.ok(&["checkpoint", "delete", "before"])?;
    s.ok(&["checkpoint", "delete", "hourly"])?;
    assert_eq!(s.ok(&["checkpoint", "list", "--json"])?.trim(), "[]");
    Ok(())
}
