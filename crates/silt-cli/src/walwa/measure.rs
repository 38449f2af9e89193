//! Write amplification of the local log, measured (DESIGN.md "Local log").
//!
//! For every cell (mode × record size × committer count) a fresh log commits records, each
//! committer waiting for its own record before the next (flush at every commit). Every
//! 4 KiB block the log writes is also fed, through the log's block observer hook
//! (`LocalLog::open_with_observer`), to the model of a drive with transparent compression
//! ([`super::csd`]): the block is compressed on its own with zlib at `zlib_level` and
//! rounded up to `granule` bytes. `csd_wa` = modelled physical bytes / user bytes;
//! `ssd_wa` = blocks written × 4096 / user bytes (a drive without compression).
//!
//! Device-level bytes come from `/proc/self/io` (`write_bytes`: pages this process sent to
//! the block layer) and from the log directory's block device
//! (`/sys/dev/block/<major>:<minor>/stat`, sectors written by everybody, journal included).
//! `journal_blocks_per_commit` = device blocks per commit − data blocks per commit, when
//! the device counters are readable.

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use serde::Serialize;
use silt::{LocalLog, LocalLogMode, LocalLogSettings};
use silt_format::{SeqNo, ValueKind};

use super::csd::CsdModel;
use crate::exit::UsageError;

/// What to measure.
#[derive(Clone, Debug, Serialize)]
pub struct WalWaConfig {
    /// User bytes per record (key + value; the key is an 8-byte counter, the rest a
    /// pseudo-random value). Default `[16, 128, 1024]`.
    pub record_sizes: Vec<usize>,
    /// Concurrent committers. Default `[1, 4, 16]`.
    pub threads: Vec<usize>,
    /// Default both.
    pub modes: Vec<LocalLogMode>,
    /// Commits per cell. Default 2000.
    pub commits_per_cell: u64,
    /// Optional time limit per cell (whichever comes first).
    #[serde(with = "humantime_serde")]
    pub duration: Option<Duration>,
    /// Where the logs are written (a subdirectory per cell, removed afterwards).
    pub dir: PathBuf,
    /// Drive block size; the log writes 4 KiB blocks, so only 4096 is accepted.
    pub block_bytes: usize,
    /// Allocation granule of the modelled compressing drive. Default 64.
    pub granule: usize,
    /// zlib level of the model. Default 1.
    pub zlib_level: u32,
    /// Log file size. Default 64 MiB.
    pub file_bytes: u64,
    /// Samples of the raw `pwrite(4 KiB) + fdatasync` baselines (0: skip). Default 500.
    pub raw_sync_samples: usize,
}

impl Default for WalWaConfig {
    fn default() -> Self {
        WalWaConfig {
            record_sizes: vec![16, 128, 1024],
            threads: vec![1, 4, 16],
            modes: vec![LocalLogMode::Sparse, LocalLogMode::Packed],
            commits_per_cell: 2000,
            duration: None,
            dir: std::env::temp_dir().join("silt-wal-wa"),
            block_bytes: 4096,
            granule: 64,
            zlib_level: 1,
            file_bytes: 64 << 20,
            raw_sync_samples: 500,
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct LatencyUs {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// One cell of the report.
#[derive(Clone, Debug, Serialize)]
pub struct WalWaCell {
    /// Sparse or packed.
    pub mode: LocalLogMode,
    /// User bytes per record.
    pub record_bytes: usize,
    /// Concurrent committers.
    pub threads: usize,
    /// Records committed (each waited for).
    pub commits: u64,
    /// Wall time of the cell.
    pub elapsed_s: f64,
    /// Commits per second.
    pub commits_per_s: f64,
    /// `fdatasync` calls.
    pub syncs: u64,
    /// Records per sync (group commit effect).
    pub records_per_sync: f64,
    /// Enqueue-to-durable latency.
    pub latency_us: LatencyUs,
    /// 4 KiB blocks the log wrote.
    pub blocks_written: u64,
    /// Of those, per commit.
    pub data_blocks_per_commit: f64,
    /// `/proc/self/io` `write_bytes` per commit, in 4 KiB blocks (None if unreadable).
    /// Kernels with large page-cache folios count a whole folio per dirtied page here, so
    /// this can overstate the device writes by orders of magnitude; see
    /// `device_blocks_per_commit`.
    pub process_blocks_per_commit: Option<f64>,
    /// Device sectors written per commit, in 4 KiB blocks (whole device: other processes
    /// add noise; None if unreadable).
    pub device_blocks_per_commit: Option<f64>,
    /// `device_blocks_per_commit - data_blocks_per_commit` (None if unmeasurable).
    pub journal_blocks_per_commit: Option<f64>,
    /// Key + value bytes committed.
    pub user_bytes: u64,
    /// Modelled physical bytes on the compressing drive.
    pub csd_physical_bytes: u64,
    /// Plain SSD: blocks written × 4096 / user bytes.
    pub ssd_wa: f64,
    /// Compressing drive: modelled physical bytes / user bytes.
    pub csd_wa: f64,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct WalWaReport {
    /// The configuration measured.
    pub config: WalWaConfig,
    /// Block device of `dir` (`major:minor`), when found.
    pub device: Option<String>,
    /// `pwrite(4 KiB) + fdatasync` on a preallocated file in `dir`.
    pub raw_fdatasync: Option<RawSyncLatency>,
    /// The same, appending to a growing file (what preallocation avoids).
    pub raw_append_fdatasync: Option<RawSyncLatency>,
    /// One entry per cell.
    pub cells: Vec<WalWaCell>,
}

/// Latency of a bare `pwrite` of one 4 KiB block plus `fdatasync`.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct RawSyncLatency {
    /// Samples taken.
    pub samples: usize,
    /// Overwriting a preallocated file (true) or appending to a growing one (false).
    pub preallocated: bool,
    /// Device sectors written per sync, in 4 KiB blocks (whole device; None if
    /// unreadable).
    pub device_blocks_per_sync: Option<f64>,
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
}

#[expect(clippy::needless_pass_by_value, reason = "a `map_err` adapter")]
fn io(what: &str, path: &Path, e: std::io::Error) -> anyhow::Error {
    anyhow!("wal-wa bench: {what} {}: {e}", path.display())
}

/// `a / b`, 0 when `b` is 0.
fn div(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

#[expect(clippy::needless_pass_by_value, reason = "a `map_err` adapter")]
fn joined(e: tokio::task::JoinError) -> anyhow::Error {
    anyhow!("wal-wa bench: {e}")
}

/// `pwrite(4 KiB) + fdatasync`, either overwriting a preallocated file or appending to a
/// growing one (each sync then also commits the size change to the journal).
fn raw_fdatasync(dir: &Path, samples: usize, preallocated: bool) -> Result<RawSyncLatency> {
    const LEN: u64 = 4 << 20;
    std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let device = device_of(dir);
    let path = dir.join("raw-fdatasync.tmp");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| io("create", &path, e))?;
    if preallocated {
        file.write_all_at(&vec![0u8; LEN as usize], 0)
            .map_err(|e| io("preallocate", &path, e))?;
    }
    file.sync_all().map_err(|e| io("fsync", &path, e))?;
    let mut block = [0u8; 4096];
    let mut lat = Vec::with_capacity(samples);
    let dev_before = device.as_deref().and_then(device_sectors_written);
    for i in 0..samples {
        block[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let at = if preallocated {
            (i as u64 * 4096) % LEN
        } else {
            i as u64 * 4096
        };
        let t = Instant::now();
        file.write_all_at(&block, at)
            .map_err(|e| io("pwrite", &path, e))?;
        file.sync_data().map_err(|e| io("fdatasync", &path, e))?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let dev_after = device.as_deref().and_then(device_sectors_written);
    drop(file);
    let _ = std::fs::remove_file(&path);
    let p = percentiles(&mut lat);
    Ok(RawSyncLatency {
        samples,
        preallocated,
        p50_us: p.p50,
        p99_us: p.p99,
        device_blocks_per_sync: dev_before
            .zip(dev_after)
            .map(|(b, a)| a.saturating_sub(b) as f64 * 512.0 / 4096.0 / samples.max(1) as f64),
    })
}

fn percentiles(v: &mut [f64]) -> LatencyUs {
    if v.is_empty() {
        return LatencyUs::default();
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    LatencyUs {
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// The block device holding `dir`, as `major:minor`, if `/sys/dev/block` knows it.
fn device_of(dir: &Path) -> Option<String> {
    let dev = std::fs::metadata(dir).ok()?.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let id = format!("{major}:{minor}");
    Path::new("/sys/dev/block")
        .join(&id)
        .join("stat")
        .exists()
        .then_some(id)
}

/// Sectors (512 B) written by the device, from `/sys/dev/block/<id>/stat` field 7.
fn device_sectors_written(id: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/sys/dev/block/{id}/stat")).ok()?;
    stat.split_whitespace().nth(6)?.parse().ok()
}

/// `write_bytes` of `/proc/self/io`.
fn process_write_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Runs every cell of `cfg` and reports (needs a tokio runtime; blocking I/O goes to the
/// blocking pool).
///
/// # Errors
/// A [`UsageError`] for a bad configuration; I/O and local log errors.
pub async fn run_wal_wa(cfg: WalWaConfig) -> Result<WalWaReport> {
    if cfg.block_bytes != silt_format::local_log::LOCAL_BLOCK_SIZE {
        return Err(UsageError(format!(
            "invalid settings: block_bytes must be 4096, got {}",
            cfg.block_bytes
        ))
        .into());
    }
    if cfg.threads.contains(&0) || cfg.commits_per_cell == 0 || cfg.zlib_level > 9 {
        return Err(UsageError(
            "invalid settings: threads and commits_per_cell must be positive, zlib_level at \
             most 9"
                .into(),
        )
        .into());
    }
    let dir = cfg.dir.clone();
    std::fs::create_dir_all(&dir).map_err(|e| io("create", &dir, e))?;
    let device = device_of(&dir);
    let mut raw = [None, None];
    if cfg.raw_sync_samples > 0 {
        for (slot, preallocated) in raw.iter_mut().zip([true, false]) {
            let (d, n) = (dir.clone(), cfg.raw_sync_samples);
            *slot = Some(
                tokio::task::spawn_blocking(move || raw_fdatasync(&d, n, preallocated))
                    .await
                    .map_err(joined)??,
            );
        }
    }
    let [raw_fdatasync, raw_append_fdatasync] = raw;
    let mut cells = Vec::new();
    let mut n = 0;
    for &mode in &cfg.modes {
        for &record_bytes in &cfg.record_sizes {
            for &threads in &cfg.threads {
                let cell_dir = dir.join(format!("cell-{n}"));
                n += 1;
                let cell = run_cell(
                    &cfg,
                    &cell_dir,
                    device.as_deref(),
                    mode,
                    record_bytes,
                    threads,
                )
                .await;
                let _ = std::fs::remove_dir_all(&cell_dir);
                let cell = cell?;
                tracing::info!(?cell, "wal-wa cell");
                cells.push(cell);
            }
        }
    }
    Ok(WalWaReport {
        config: cfg,
        device,
        raw_fdatasync,
        raw_append_fdatasync,
        cells,
    })
}

async fn run_cell(
    cfg: &WalWaConfig,
    dir: &Path,
    device: Option<&str>,
    mode: LocalLogMode,
    record_bytes: usize,
    threads: usize,
) -> Result<WalWaCell> {
    let _ = std::fs::remove_dir_all(dir);
    let settings = LocalLogSettings {
        dir: dir.to_path_buf(),
        file_bytes: cfg.file_bytes,
        mode,
        ..LocalLogSettings::default()
    };
    let (observer, model) = CsdModel::start(cfg.zlib_level, cfg.granule);
    let (log, _) = tokio::task::spawn_blocking(move || {
        LocalLog::open_with_observer(&settings, Some(observer))
    })
    .await
    .map_err(joined)?
    .context("wal-wa bench: opening the local log")?;

    let seq = Arc::new(Mutex::new(1 as SeqNo));
    let issued = Arc::new(AtomicU64::new(0));
    let deadline = cfg.duration.map(|d| Instant::now() + d);
    let target = cfg.commits_per_cell;
    let key_len = record_bytes.min(8);
    let value_len = record_bytes - key_len;

    let proc_before = process_write_bytes();
    let dev_before = device.and_then(device_sectors_written);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..threads {
        let (log, seq, issued) = (log.clone(), Arc::clone(&seq), Arc::clone(&issued));
        tasks.spawn(async move {
            let mut rng =
                0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407);
            let mut value = vec![0u8; value_len];
            let mut lat = Vec::new();
            loop {
                if issued.fetch_add(1, Ordering::Relaxed) >= target
                    || deadline.is_some_and(|d| Instant::now() >= d)
                {
                    break;
                }
                for chunk in value.chunks_mut(8) {
                    let r = xorshift(&mut rng).to_le_bytes();
                    chunk.copy_from_slice(&r[..chunk.len()]);
                }
                let t0 = Instant::now();
                let ticket = {
                    let mut next = seq.lock().unwrap_or_else(PoisonError::into_inner);
                    let key = next.to_be_bytes();
                    let ticket = log.enqueue(
                        *next,
                        [(ValueKind::Put, &key[8 - key_len..], value.as_slice())],
                    )?;
                    *next += 1;
                    ticket
                };
                log.wait(ticket).await?;
                lat.push(t0.elapsed().as_secs_f64() * 1e6);
            }
            Ok::<_, silt::Error>(lat)
        });
    }
    let mut lat = Vec::new();
    while let Some(r) = tasks.join_next().await {
        lat.extend(
            r.map_err(joined)?
                .context("wal-wa bench: a committer failed")?,
        );
    }
    let elapsed = start.elapsed().as_secs_f64();
    let dev_after = device.and_then(device_sectors_written);
    let proc_after = process_write_bytes();
    let metrics = log.metrics();
    // The model thread ends when the log (which owns the observer) is dropped.
    drop(log);
    let csd_physical_bytes = tokio::task::spawn_blocking(move || model.physical_bytes())
        .await
        .map_err(joined)??;

    let commits = metrics.commits;
    let blocks_written = metrics.blocks_written;
    let user_bytes = metrics.user_bytes;
    let per_commit = |x: f64| div(x, commits as f64);
    let data_blocks_per_commit = per_commit(blocks_written as f64);
    let process_blocks_per_commit = proc_before
        .zip(proc_after)
        .map(|(b, a)| per_commit(a.saturating_sub(b) as f64 / 4096.0));
    let device_blocks_per_commit = dev_before
        .zip(dev_after)
        .map(|(b, a)| per_commit(a.saturating_sub(b) as f64 * 512.0 / 4096.0));
    Ok(WalWaCell {
        mode,
        record_bytes,
        threads,
        commits,
        elapsed_s: elapsed,
        commits_per_s: div(commits as f64, elapsed),
        syncs: metrics.syncs,
        records_per_sync: metrics.records_per_sync(),
        latency_us: percentiles(&mut lat),
        blocks_written,
        data_blocks_per_commit,
        process_blocks_per_commit,
        device_blocks_per_commit,
        journal_blocks_per_commit: device_blocks_per_commit.map(|d| d - data_blocks_per_commit),
        user_bytes,
        csd_physical_bytes,
        ssd_wa: metrics.write_amplification(),
        csd_wa: div(csd_physical_bytes as f64, user_bytes as f64),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn raw_fdatasync_runs() {
        let dir = tempfile::tempdir().unwrap();
        let r = raw_fdatasync(dir.path(), 5, true).unwrap();
        assert_eq!(r.samples, 5);
        assert!(r.preallocated && r.p50_us > 0.0 && r.p99_us >= r.p50_us);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_small_cell_reports_its_write_amplification() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = WalWaConfig {
            record_sizes: vec![16],
            threads: vec![2],
            modes: vec![LocalLogMode::Sparse],
            commits_per_cell: 50,
            dir: dir.path().join("ww"),
            file_bytes: 1 << 20,
            raw_sync_samples: 0,
            ..WalWaConfig::default()
        };
        let r = run_wal_wa(cfg).await.unwrap();
        let [c] = r.cells.as_slice() else {
            panic!("{:?}", r.cells)
        };
        assert_eq!(c.commits, 50);
        assert_eq!(c.user_bytes, 50 * 16);
        // Sparse: a block per group, at least one group per sync.
        assert!(c.blocks_written >= c.syncs && c.syncs > 0, "{c:?}");
        assert!((c.ssd_wa - (c.blocks_written * 4096) as f64 / 800.0).abs() < 1e-9);
        assert!(c.csd_physical_bytes >= 64 * c.blocks_written, "{c:?}");
        assert!(r.raw_fdatasync.is_none());
        let bad = WalWaConfig {
            zlib_level: 10,
            ..WalWaConfig::default()
        };
        let e = run_wal_wa(bad).await.unwrap_err();
        assert!(e.is::<UsageError>(), "{e:#}");
    }
}
