//! The subcommands.

use std::io::Write;
use std::ops::Bound;
use std::path::Path;

use anyhow::{Context, Result};
use silt::inspect::inspect;
use silt::objstore::{store_from_url, wrap, Storage};
use silt::{Db, DbBuilder, Durability, Settings, WriteOptions};

use crate::cli::{Cli, Command, LoadArgs, ScanArgs};
use crate::exit::{self, UsageError};
use crate::shared::StoreStack;
use crate::{bench, checkpoints, maintenance, report};

/// Run the parsed command line; returns the exit code for outcomes that are not errors.
pub async fn run(cli: Cli) -> Result<u8> {
    let url = cli.store.as_str();
    let settings = || load_settings(cli.settings.as_deref());
    let lat = StoreStack {
        latency: cli.store_latency,
        faults: cli.store_faults,
    };
    let at = cli.at_checkpoint;
    if at.is_some() && !matches!(cli.command, Command::Get { .. } | Command::Scan(_)) {
        return Err(UsageError("--at-checkpoint applies to get and scan only".into()).into());
    }
    match cli.command {
        Command::Inspect { json } => cmd_inspect(url, lat, json).await,
        Command::Put { key, value } => {
            with_writer(url, lat, settings()?, |db| async move {
                db.put_with(&key, &value, &remote()).await?;
                Ok(exit::OK)
            })
            .await
        }
        Command::Delete { key } => {
            with_writer(url, lat, settings()?, |db| async move {
                db.delete_with(&key, &remote()).await?;
                Ok(exit::OK)
            })
            .await
        }
        Command::Load(args) => with_writer(url, lat, settings()?, |db| cmd_load(db, args)).await,
        Command::Compact => with_writer(url, lat, settings()?, maintenance::cmd_compact).await,
        Command::Gc { grace } => {
            with_writer(url, lat, settings()?, |db| maintenance::cmd_gc(db, grace)).await
        }
        Command::Bench(cmd) => Box::pin(bench::run(url, lat, settings()?, cmd)).await,
        Command::Serve(args) => crate::serve::run(url, lat, settings()?, args).await,
        Command::Checkpoint(cmd) => checkpoints::run(url, lat, settings()?, cmd).await,
        Command::Get { key, hex } => {
            with_reader_at(url, lat, settings()?, at, |db| async move {
                cmd_get(db, &key, hex).await
            })
            .await
        }
        Command::Scan(args) => {
            with_reader_at(url, lat, settings()?, at, |db| cmd_scan(db, args)).await
        }
    }
}

fn remote() -> WriteOptions {
    WriteOptions::with_durability(Durability::Remote)
}

/// Settings from the `--settings` file (TOML or JSON by extension; defaults without one) and
/// the `SILT_` environment variables (`Settings::load`), validated. Any error is a usage
/// error (exit 2).
pub fn load_settings(path: Option<&Path>) -> Result<Settings> {
    Settings::load(path).map_err(|e| UsageError(e.to_string()).into())
}

/// Open as the writer (fencing any other), run `f`, then close (making every write durable).
async fn with_writer<F, Fut>(url: &str, stack: StoreStack, settings: Settings, f: F) -> Result<u8>
where
    F: FnOnce(std::sync::Arc<Db>) -> Fut,
    Fut: std::future::Future<Output = Result<u8>>,
{
    with_db(url, stack, settings, false, f).await
}

/// Open read-only (no fencing of a running writer), run `f`, then close.
pub(crate) async fn with_reader<F, Fut>(
    url: &str,
    stack: StoreStack,
    settings: Settings,
    f: F,
) -> Result<u8>
where
    F: FnOnce(std::sync::Arc<Db>) -> Fut,
    Fut: std::future::Future<Output = Result<u8>>,
{
    with_reader_at(url, stack, settings, None, f).await
}

/// Open read-only, at checkpoint `at` when given, run `f`, then close.
async fn with_reader_at<F, Fut>(
    url: &str,
    stack: StoreStack,
    settings: Settings,
    at: Option<String>,
    f: F,
) -> Result<u8>
where
    F: FnOnce(std::sync::Arc<Db>) -> Fut,
    Fut: std::future::Future<Output = Result<u8>>,
{
    let how = match &at {
        Some(name) => format!(" at checkpoint {name}"),
        None => " read-only".to_owned(),
    };
    let mut builder = stack
        .apply(
            DbBuilder::from_url(url)
                .with_context(|| format!("cannot open {url}"))?
                .settings(settings),
        )
        .read_only();
    if let Some(name) = at {
        builder = builder.at_checkpoint(name);
    }
    let db = builder
        .open()
        .await
        .with_context(|| format!("cannot open {url}{how}"))?;
    finish(db, f).await
}

async fn with_db<F, Fut>(
    url: &str,
    stack: StoreStack,
    settings: Settings,
    read_only: bool,
    f: F,
) -> Result<u8>
where
    F: FnOnce(std::sync::Arc<Db>) -> Fut,
    Fut: std::future::Future<Output = Result<u8>>,
{
    let mut builder = stack.apply(
        DbBuilder::from_url(url)
            .with_context(|| format!("cannot open {url}"))?
            .settings(settings),
    );
    if read_only {
        builder = builder.read_only();
    }
    let how = if read_only { " read-only" } else { "" };
    let db = builder
        .open()
        .await
        .with_context(|| format!("cannot open {url}{how}"))?;
    finish(db, f).await
}

async fn finish<F, Fut>(db: Db, f: F) -> Result<u8>
where
    F: FnOnce(std::sync::Arc<Db>) -> Fut,
    Fut: std::future::Future<Output = Result<u8>>,
{
    let db = std::sync::Arc::new(db);
    let result = f(std::sync::Arc::clone(&db)).await;
    let closed = db.close().await.context("closing the database");
    match (result, closed) {
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        (Ok(code), Ok(())) => Ok(code),
    }
}

async fn cmd_get(db: std::sync::Arc<Db>, key: &str, hex: bool) -> Result<u8> {
    let Some(value) = db.get(key).await? else {
        eprintln!("key not found: {key}");
        return Ok(exit::NOT_FOUND);
    };
    let mut out = std::io::stdout().lock();
    if hex {
        writeln!(out, "{}", to_hex(&value))?;
    } else {
        out.write_all(&value)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(exit::OK)
}

async fn cmd_scan(db: std::sync::Arc<Db>, args: ScanArgs) -> Result<u8> {
    let (start, end) = scan_bounds(
        args.prefix.as_deref().map(str::as_bytes),
        args.start.as_deref().map(str::as_bytes),
        args.end.as_deref().map(str::as_bytes),
    );
    let mut iter = db.scan((start, end))?;
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut n = 0;
    while n < limit {
        let Some((k, v)) = iter.next().await? else {
            break;
        };
        if args.hex {
            writeln!(out, "{}\t{}", to_hex(&k), to_hex(&v))?;
        } else {
            writeln!(
                out,
                "{}\t{}",
                String::from_utf8_lossy(&k),
                String::from_utf8_lossy(&v)
            )?;
        }
        n += 1;
    }
    out.flush()?;
    Ok(exit::OK)
}

async fn cmd_load(db: std::sync::Arc<Db>, args: LoadArgs) -> Result<u8> {
    let opts = WriteOptions::with_durability(args.durability.into());
    let mut out = std::io::stdout();
    for i in 0..args.count {
        let key = format!("{}{i:08}", args.prefix);
        let value = load_value(key.as_bytes(), args.value_size);
        db.put_with(&key, &value, &opts)
            .await
            .with_context(|| format!("writing {key}"))?;
        writeln!(out, "{key}")?;
        out.flush()?;
    }
    if let Some(idle) = args.idle {
        writeln!(out, "idle")?;
        out.flush()?;
        let until = tokio::time::Instant::now() + idle;
        // Nothing is buffered, so a flush uploads nothing: it only reports whether the
        // handle still works (a GC pass that found a newer writer stops it as fenced).
        while tokio::time::Instant::now() < until {
            db.flush().await.context("idle writer")?;
            tokio::time::sleep(IDLE_CHECK.min(until - tokio::time::Instant::now())).await;
        }
    }
    Ok(exit::OK)
}

/// How often an idle `load --idle` checks its handle.
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_millis(50);

/// The value `load` writes for `key`: the key's bytes repeated to `size` bytes.
pub fn load_value(key: &[u8], size: usize) -> Vec<u8> {
    key.iter().copied().cycle().take(size).collect()
}

/// The store of `url` behind the global wrappers, without opening the database.
pub(crate) fn bare_storage(url: &str, stack: StoreStack) -> Result<Storage> {
    let (store, root) = store_from_url(url).with_context(|| format!("cannot open {url}"))?;
    let (store, _) = wrap(store, stack.latency, stack.faults);
    Ok(Storage::new(store, root))
}

async fn cmd_inspect(url: &str, stack: StoreStack, json: bool) -> Result<u8> {
    let storage = bare_storage(url, stack)?;
    let r = inspect(&storage)
        .await
        .with_context(|| format!("cannot inspect {url}"))?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &r)?;
        writeln!(out)?;
    } else {
        report::write_human(&mut out, &r)?;
    }
    out.flush()?;
    Ok(exit::OK)
}

/// The key bounds of a scan: `--prefix` intersected with `[--start, --end)`.
pub fn scan_bounds(
    prefix: Option<&[u8]>,
    start: Option<&[u8]>,
    end: Option<&[u8]>,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let mut lo: Option<&[u8]> = start;
    let mut hi: Option<Vec<u8>> = end.map(<[u8]>::to_vec);
    if let Some(p) = prefix.filter(|p| !p.is_empty()) {
        if lo.is_none_or(|s| s < p) {
            lo = Some(p);
        }
        if let Some(pe) = prefix_end(p) {
            if hi.as_ref().is_none_or(|h| *h > pe) {
                hi = Some(pe);
            }
        }
    }
    (
        lo.map_or(Bound::Unbounded, |s| Bound::Included(s.to_vec())),
        hi.map_or(Bound::Unbounded, Bound::Excluded),
    )
}

/// The smallest key greater than every key starting with `prefix` (`None`: no such key).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while end.last() == Some(&0xff) {
        end.pop();
    }
    let last = end.last_mut()?;
    *last += 1;
    Some(end)
}

fn to_hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(b.len() * 2);
    for byte in b {
        let _ = write!(s, "{byte:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(b: &[u8]) -> Bound<Vec<u8>> {
        Bound::Included(b.to_vec())
    }
    fn exc(b: &[u8]) -> Bound<Vec<u8>> {
        Bound::Excluded(b.to_vec())
    }

    #[test]
    fn bounds() {
        assert_eq!(
            scan_bounds(None, None, None),
            (Bound::Unbounded, Bound::Unbounded)
        );
        assert_eq!(
            scan_bounds(Some(b"ab"), None, None),
            (inc(b"ab"), exc(b"ac"))
        );
        assert_eq!(
            scan_bounds(Some(b"ab"), Some(b"ab5"), Some(b"zz")),
            (inc(b"ab5"), exc(b"ac"))
        );
        assert_eq!(
            scan_bounds(Some(b"ab"), Some(b"a"), Some(b"ab5")),
            (inc(b"ab"), exc(b"ab5"))
        );
        assert_eq!(
            scan_bounds(Some(b"a\xff"), None, None),
            (inc(b"a\xff"), exc(b"b"))
        );
        assert_eq!(
            scan_bounds(Some(b"\xff"), None, None),
            (inc(b"\xff"), Bound::Unbounded)
        );
    }

    #[test]
    fn hex_and_values() {
        assert_eq!(to_hex(b"\x00\xffA"), "00ff41");
        assert_eq!(load_value(b"ab", 5), b"ababa");
        assert!(load_value(b"ab", 0).is_empty());
    }
}
