//! `silt bench wal-wa`: write amplification of the local log, sparse versus packed, under a
//! compressing-drive model (DESIGN.md "Local log", seed 003).
//!
//! Layout: the flags, the table (like the source document's figure 3), `--json` and
//! `--plot` (here), the measurement (`measure`) and the compressing-drive model (`csd`),
//! which sees the log's blocks through `LocalLog::open_with_observer`.

mod csd;
mod measure;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use plotters::prelude::*;
use silt::LocalLogMode;

use self::measure::{run_wal_wa, WalWaConfig, WalWaReport};

/// `silt bench wal-wa` arguments.
#[derive(Debug, Args)]
pub struct WalWaArgs {
    /// User bytes per record (key + value), comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "16,32,128",
        value_name = "B,.."
    )]
    pub record_sizes: Vec<usize>,
    /// Concurrent committers, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,4,16",
        value_name = "N,.."
    )]
    pub threads: Vec<usize>,
    /// Log modes, comma-separated: sparse, packed.
    #[arg(long, value_delimiter = ',', default_value = "sparse,packed", value_parser = parse_mode, value_name = "M,..")]
    pub modes: Vec<LocalLogMode>,
    /// Commits per cell (each committer waits for its own commit before the next).
    #[arg(long, default_value_t = 2000, value_name = "N")]
    pub commits: u64,
    /// Optional time limit per cell.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "D")]
    pub duration: Option<Duration>,
    /// Directory on the drive to measure (a subdirectory per cell, removed afterwards).
    #[arg(long, default_value = "./silt-wal-wa", value_name = "DIR")]
    pub dir: PathBuf,
    /// Allocation granule of the modelled compressing drive, in bytes.
    #[arg(long, default_value_t = 64, value_name = "B")]
    pub granule: usize,
    /// zlib level of the modelled drive's per-block compression.
    #[arg(long, default_value_t = 1, value_name = "L")]
    pub zlib_level: u32,
    /// Samples of the raw `pwrite(4 KiB) + fdatasync` baseline (0 skips it).
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub raw_sync_samples: usize,
    /// Write the report as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw compressed-drive WA per cell, sparse next to packed, as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

fn parse_mode(s: &str) -> Result<LocalLogMode, String> {
    match s {
        "sparse" => Ok(LocalLogMode::Sparse),
        "packed" => Ok(LocalLogMode::Packed),
        other => Err(format!("unknown mode {other:?} (use sparse or packed)")),
    }
}

fn mode_name(m: LocalLogMode) -> &'static str {
    match m {
        LocalLogMode::Sparse => "sparse",
        LocalLogMode::Packed => "packed",
    }
}

/// Run the benchmark and report.
pub async fn run(a: WalWaArgs) -> Result<()> {
    if a.record_sizes.is_empty() || a.threads.is_empty() || a.modes.is_empty() {
        return Err(anyhow!(
            "--record-sizes, --threads and --modes need at least one value"
        ));
    }
    let cfg = WalWaConfig {
        record_sizes: a.record_sizes.clone(),
        threads: a.threads.clone(),
        modes: a.modes.clone(),
        commits_per_cell: a.commits,
        duration: a.duration,
        dir: a.dir.clone(),
        granule: a.granule,
        zlib_level: a.zlib_level,
        raw_sync_samples: a.raw_sync_samples,
        ..WalWaConfig::default()
    };
    let report = run_wal_wa(cfg).await.context("wal-wa benchmark")?;
    print_table(&report);
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &a.plot {
        let svg = render(&report)?;
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    let _ = std::fs::remove_dir(&a.dir);
    Ok(())
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

fn print_table(r: &WalWaReport) {
    println!(
        "{:<7} {:>6} {:>7} {:>10} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "mode",
        "rec_B",
        "threads",
        "commits/s",
        "rec/sync",
        "p50_us",
        "p99_us",
        "dev_blk",
        "jrnl_blk",
        "ssd_wa",
        "csd_wa"
    );
    for c in &r.cells {
        println!(
            "{:<7} {:>6} {:>7} {:>10.0} {:>9.2} {:>9.0} {:>9.0} {:>8} {:>8} {:>8.1} {:>8.1}",
            mode_name(c.mode),
            c.record_bytes,
            c.threads,
            c.commits_per_s,
            c.records_per_sync,
            c.latency_us.p50,
            c.latency_us.p99,
            opt(c.device_blocks_per_commit),
            opt(c.journal_blocks_per_commit),
            c.ssd_wa,
            c.csd_wa
        );
    }
    for raw in [&r.raw_fdatasync, &r.raw_append_fdatasync]
        .into_iter()
        .flatten()
    {
        println!(
            "raw pwrite(4 KiB)+fdatasync, {} file: p50 {:.0} us, p99 {:.0} us, device blocks/sync {}",
            if raw.preallocated { "preallocated" } else { "growing" },
            raw.p50_us,
            raw.p99_us,
            opt(raw.device_blocks_per_sync)
        );
    }
}

#[allow(clippy::cast_precision_loss)]
fn render(r: &WalWaReport) -> Result<String> {
    let err = |e: &dyn std::fmt::Display| anyhow!("plot: {e}");
    let labels: Vec<String> = r
        .cells
        .iter()
        .filter(|c| c.mode == LocalLogMode::Sparse)
        .map(|c| format!("{}B x{}", c.record_bytes, c.threads))
        .collect();
    let value = |mode: LocalLogMode, i: usize| -> f64 {
        r.cells
            .iter()
            .filter(|c| c.mode == mode)
            .nth(i)
            .map_or(0.0, |c| c.csd_wa)
    };
    let top = r.cells.iter().map(|c| c.csd_wa).fold(1.0, f64::max) * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let n = labels.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "Local log write amplification on a compressing drive (zlib-{} per 4 KiB block, {} B granule)",
                    r.config.zlib_level, r.config.granule
                ),
                ("sans-serif", 18),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..n as f64, 0.0..top)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| labels.get(x.floor() as usize).cloned().unwrap_or_default())
            .y_desc("physical bytes / user bytes")
            .draw()
            .map_err(|e| err(&e))?;
        for (mode, color, offset) in [
            (LocalLogMode::Sparse, BLUE, 0.1),
            (LocalLogMode::Packed, RED, 0.5),
        ] {
            chart
                .draw_series((0..n).map(|i| {
                    let x = i as f64 + offset;
                    Rectangle::new([(x, 0.0), (x + 0.38, value(mode, i))], color.filled())
                }))
                .map_err(|e| err(&e))?
                .label(mode_name(mode))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}
