//! `silt`: the command-line tool of the Silt key-value store.
//!
//! See `docs/cli.md` for usage. Errors are printed as one `error: ...` line on stderr and
//! mapped to the exit codes in [`exit`].

// No unwrap on I/O or decoded data outside tests (tests may: clippy.toml).
#![warn(clippy::unwrap_used)]

mod bench;
mod checkpoints;
mod cli;
mod commands;
mod exit;
mod maintenance;
mod recovery;
mod report;
mod serve;
mod shared;
mod walwa;

use std::io::IsTerminal;
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// mimalloc instead of glibc malloc: `silt serve` and `silt bench` allocate per request
/// (docs/BENCHMARKS.md, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tracing_subscriber::EnvFilter;

use crate::cli::Cli;

fn main() -> ExitCode {
    install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(exit::USAGE));
        }
    };
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::OTHER);
        }
    };
    let outcome =
        std::panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(commands::run(cli))));
    runtime.shutdown_timeout(Duration::from_secs(2));
    ExitCode::from(match outcome {
        Ok(Ok(code)) => code,
        Ok(Err(e)) if exit::is_broken_pipe(&e) => exit::OK,
        Ok(Err(e)) => {
            eprintln!("error: {}", exit::one_line(&e));
            exit::code_for(&e)
        }
        // The panic hook already printed the message.
        Err(_) => exit::OTHER,
    })
}

/// Log to stderr. `RUST_LOG` wins; otherwise -v/-vv/-vvv log at info/debug/trace, and without
/// either nothing is logged, so a failure prints exactly one `error:` line.
fn init_logging(verbose: u8) {
    let from_env = std::env::var_os(EnvFilter::DEFAULT_ENV)
        .is_some()
        .then(EnvFilter::try_from_default_env)
        .and_then(Result::ok);
    let filter = match (from_env, verbose) {
        (Some(f), _) => f,
        (None, 0) => return,
        (None, 1) => EnvFilter::new("info"),
        (None, 2) => EnvFilter::new("debug"),
        (None, _) => EnvFilter::new("trace"),
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .try_init();
}

/// Print one line instead of the default panic message and backtrace.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("unknown cause");
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error (a bug in silt): {msg}{at}");
    }));
}
