//! Command-line definitions (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::shared::LoadDurability;

/// Exit codes, shown at the end of `silt --help`.
const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  key not found (get)
  2  usage error or invalid input (bad arguments, URL, settings file, key or value)
  3  fenced: another writer owns the database
  4  any other error (object store unavailable, corrupt data, internal error)

Store URLs: file://DIR (or a bare path), memory://, s3://BUCKET/PREFIX, gs://BUCKET/PREFIX,
az://CONTAINER/PREFIX. Cloud stores read the usual AWS_*, GOOGLE_* and AZURE_* variables.";

/// Silt: an embedded LSM key-value store whose durable home is object storage.
#[derive(Debug, Parser)]
#[command(name = "silt", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// URL of the database's object store.
    #[arg(
        long,
        global = true,
        env = "SILT_STORE",
        default_value = "file://./silt-data",
        value_name = "URL"
    )]
    pub store: String,

    /// JSON file with engine settings (unknown fields are rejected; omitted fields keep their
    /// defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub settings: Option<PathBuf>,

    /// Log to stderr: -v info, -vv debug, -vvv trace (`RUST_LOG` overrides; default: no logs).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Delay every object-store request: fixed (`50ms`) or uniform jitter (`20ms..80ms`).
    /// For benchmarks and tests: a local directory behaving like a remote store.
    #[arg(long, global = true, value_name = "SPEC")]
    pub store_latency: Option<silt::objstore::LatencySpec>,

    /// Inject object-store faults, seeded: error rates per request group (`all`, `get`,
    /// `put`, `list`, `delete`), lost PUT responses (`lost`), timeouts (`timeout=P[:DUR]`),
    /// latency spikes (`spike=P:DUR`) and an outage window (`outage=DUR@START`), e.g.
    /// `put=0.05,get=0.02,lost=0.01,outage=10s@30s`. For tests and benchmarks.
    #[arg(long, global = true, value_name = "SPEC")]
    pub store_faults: Option<silt::objstore::FaultSpec>,

    /// Read at checkpoint NAME (`silt checkpoint create`): `get` and `scan` see the database
    /// exactly as it was then.
    #[arg(long, global = true, value_name = "NAME")]
    pub at_checkpoint: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Store KEY = VALUE; returns once the write is durable in the object store.
    Put {
        /// The key (UTF-8 text).
        key: String,
        /// The value (UTF-8 text).
        value: String,
    },
    /// Print the value of KEY followed by a newline (exit 1 if absent). Opens read-only.
    Get {
        /// The key (UTF-8 text).
        key: String,
        /// Print the value as lowercase hex.
        #[arg(long)]
        hex: bool,
    },
    /// Delete KEY (deleting an absent key is not an error).
    Delete {
        /// The key (UTF-8 text).
        key: String,
    },
    /// List live keys in order, one `KEY<TAB>VALUE` line each. Opens read-only.
    Scan(ScanArgs),
    /// Describe the store's objects without opening the database (no fencing, no replay).
    Inspect {
        /// Print the full report as pretty JSON.
        #[arg(long)]
        json: bool,
    },
    /// Merge every L0 SST and sorted run into one run now, then run GC; prints what changed.
    Compact,
    /// Delete objects no manifest needs any more (one GC pass); prints what was deleted.
    Gc {
        /// Override `gc.grace` (e.g. `0s` when no other process reads the store).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        grace: Option<std::time::Duration>,
    },
    /// Create, list, renew and delete checkpoints: pinned views of the database that GC
    /// keeps (read one with `--at-checkpoint NAME get|scan`).
    #[command(subcommand)]
    Checkpoint(CheckpointCommand),
    /// Run a benchmark against the store and report on it (see docs/bench.md).
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
    /// Serve the database over the Redis protocol (see docs/serve.md).
    Serve(crate::serve::ServeArgs),
    /// Write COUNT keys `PREFIX{i:08}`, printing each key once its write is acknowledged.
    #[command(hide = true)]
    Load(LoadArgs),
}

#[derive(Debug, Subcommand)]
pub enum CheckpointCommand {
    /// Pin the database as the store holds it now (every write durable in the object
    /// store) under NAME. Opens read-only: a running writer is not fenced.
    Create {
        /// `[A-Za-z0-9._-]{1,128}`.
        name: String,
        /// Expire after this long (e.g. `1h`); default: never, until deleted.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        lifetime: Option<std::time::Duration>,
    },
    /// List checkpoints and reader leases (a table, or `--json`).
    List {
        /// Print a JSON array of the checkpoint objects.
        #[arg(long)]
        json: bool,
    },
    /// Give checkpoint NAME a new expiry, `--lifetime` from now (default: never).
    Renew {
        /// The checkpoint.
        name: String,
        /// New lifetime from now; default: never expires.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        lifetime: Option<std::time::Duration>,
    },
    /// Delete checkpoint NAME (GC may then collect what only it kept).
    Delete {
        /// The checkpoint.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Only keys starting with P.
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
    /// Only keys >= K.
    #[arg(long, value_name = "K")]
    pub start: Option<String>,
    /// Only keys < K (exclusive).
    #[arg(long, value_name = "K")]
    pub end: Option<String>,
    /// Stop after N entries.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Print keys and values as lowercase hex instead of lossy UTF-8.
    #[arg(long)]
    pub hex: bool,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Number of keys to write.
    #[arg(long)]
    pub count: u64,
    /// Key prefix.
    #[arg(long, default_value = "key")]
    pub prefix: String,
    /// When a write is acknowledged.
    #[arg(long, value_enum, default_value_t = LoadDurability::Remote)]
    pub durability: LoadDurability,
    /// Bytes of each value.
    #[arg(long, value_name = "B", default_value_t = 16)]
    pub value_size: usize,
    /// After writing, stay open as the (idle) writer this long before closing; exits early,
    /// with the fenced exit code, once the background GC finds that another writer took
    /// over. For tests of idle writers (e.g. `--idle 60s`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub idle: Option<std::time::Duration>,
}
