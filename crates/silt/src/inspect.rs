//! Read-only description of a database's objects, for `silt inspect` and tests.

use serde::Serialize;

use crate::error::Result;
use crate::manifest;
use crate::objstore::Storage;

/// One SST as the current manifest lists it.
#[derive(Debug, Clone, Serialize)]
pub struct SstReport {
    /// ULID of the SST (object `sst/<id>.sst`).
    pub id: String,
    /// `L0`, or `run-<id>` for an SST of a sorted run.
    pub level: String,
    /// Object size in bytes.
    pub size: u64,
    /// Entries (all versions and tombstones).
    pub entries: u64,
    /// Smallest user key (lossy UTF-8).
    pub smallest_key: String,
    /// Largest user key (lossy UTF-8).
    pub largest_key: String,
    /// Lowest sequence number in the SST.
    pub min_seq: u64,
    /// Highest sequence number in the SST.
    pub max_seq: u64,
}

/// One sorted run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Run id.
    pub id: u64,
    /// SSTs in the run.
    pub ssts: usize,
    /// Bytes of those SSTs.
    pub bytes: u64,
    /// Entries in those SSTs.
    pub entries: u64,
    /// Smallest key of the run (lossy UTF-8).
    pub smallest_key: String,
    /// Largest key of the run (lossy UTF-8).
    pub largest_key: String,
}

/// What `silt inspect` prints.
#[derive(Debug, Clone, Serialize)]
pub struct StoreReport {
    /// Epoch of the newest writer (0 for an empty store).
    pub writer_epoch: u64,
    /// Id of the newest manifest (0 for an empty store).
    pub manifest_id: u64,
    /// First WAL segment recovery replays.
    pub wal_replay_from: u64,
    /// Every sequence at or below this is in SSTs.
    pub last_flushed_seq: u64,
    /// WAL segment objects in the store.
    pub wal_segments: usize,
    /// Bytes of those objects.
    pub wal_bytes: u64,
    /// Segments at or past the replay point.
    pub wal_segments_to_replay: usize,
    /// SSTs in L0.
    pub l0_ssts: usize,
    /// Sorted runs, newest first.
    pub runs: Vec<RunReport>,
    /// Every SST the manifest references.
    pub ssts: Vec<SstReport>,
    /// SST objects in the store (referenced or not).
    pub sst_objects: usize,
    /// Bytes of SST objects.
    pub sst_bytes: u64,
    /// Manifest objects in the store.
    pub manifests: usize,
    /// Checkpoint and reader lease objects (`checkpoints/`; `silt checkpoint list`).
    pub checkpoints: usize,
    /// Bytes of every object of the database.
    pub store_bytes: u64,
}

/// Describe the database under `storage` without opening it (no fencing, no replay).
///
/// # Errors
/// Store errors, or a corrupt newest manifest.
pub async fn inspect(storage: &Storage) -> Result<StoreReport> {
    let m = manifest::load_latest(storage).await?.unwrap_or_default();
    let wal = storage.list_numbered("wal", "wal").await?;
    let (sst_objects, sst_bytes) = storage.dir_bytes("sst").await?;
    let (manifests, manifest_bytes) = storage.dir_bytes("manifest").await?;
    let (checkpoints, checkpoint_bytes) = storage.dir_bytes(crate::checkpoint::DIR).await?;
    let wal_bytes: u64 = wal.iter().map(|l| l.size).sum();
    let report = |level: String, i: &silt_format::manifest::SstInfo| SstReport {
        id: i.id.clone(),
        level,
        size: i.size,
        entries: i.props.entries,
        smallest_key: String::from_utf8_lossy(&i.props.smallest_key).into_owned(),
        largest_key: String::from_utf8_lossy(&i.props.largest_key).into_owned(),
        min_seq: i.props.min_seq,
        max_seq: i.props.max_seq,
    };
    let mut ssts: Vec<SstReport> = m.l0.iter().map(|i| report("L0".into(), i)).collect();
    let mut runs = Vec::new();
    for run in &m.runs {
        ssts.extend(
            run.ssts
                .iter()
                .map(|i| report(format!("run-{}", run.id), i)),
        );
        let key = |k: Option<&Vec<u8>>| {
            k.map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default()
        };
        runs.push(RunReport {
            id: run.id,
            ssts: run.ssts.len(),
            bytes: run.ssts.iter().map(|i| i.size).sum(),
            entries: run.ssts.iter().map(|i| i.props.entries).sum(),
            smallest_key: key(run.ssts.first().map(|i| &i.props.smallest_key)),
            largest_key: key(run.ssts.last().map(|i| &i.props.largest_key)),
        });
    }
    Ok(StoreReport {
        writer_epoch: m.writer_epoch,
        manifest_id: m.id,
        wal_replay_from: m.wal_replay_from,
        last_flushed_seq: m.last_flushed_seq,
        wal_segments: wal.len(),
        wal_bytes,
        wal_segments_to_replay: wal.iter().filter(|l| l.id >= m.wal_replay_from).count(),
        l0_ssts: m.l0.len(),
        runs,
        ssts,
        sst_objects,
        sst_bytes,
        manifests,
        checkpoints,
        store_bytes: wal_bytes + sst_bytes + manifest_bytes + checkpoint_bytes,
    })
}

/// Every checkpoint and reader lease in the store, by name, without opening the database
/// (`silt checkpoint list`).
///
/// # Errors
/// Store errors; [`crate::Error::Corrupt`] for a checkpoint object that does not decode.
pub async fn checkpoints(storage: &Storage) -> Result<Vec<crate::CheckpointInfo>> {
    crate::checkpoint::list(storage)
        .await?
        .into_iter()
        .map(|l| l.checkpoint)
        .collect()
}

/// Delete checkpoint `name` without opening the database (`silt checkpoint delete`).
///
/// # Errors
/// [`crate::Error::InvalidInput`] for a bad name; [`crate::Error::Checkpoint`] when there
/// is no such checkpoint; store errors.
pub async fn delete_checkpoint(storage: &Storage, name: &str) -> Result<()> {
    crate::checkpoint::delete_existing(storage, name).await
}
