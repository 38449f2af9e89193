//! The write side: the active file, the write position, file switches and recycling.
//! Only the one running writer task (or `open`) touches a [`Writer`].

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use silt_format::local_log::{align_up, encode_group, GROUP_HEADER_SIZE, LOCAL_BLOCK_SIZE};
use silt_format::SeqNo;

use super::{BlockObserver, LocalLogMetrics, LocalLogMode, Pending};
use crate::error::{Error, Result};

const BLOCK: u64 = LOCAL_BLOCK_SIZE as u64;
/// Free files kept for recycling; more are deleted at file switches.
pub(super) const MAX_SPARE_FILES: usize = 2;
/// Largest payload of one group (its length field is a u32).
const MAX_GROUP_PAYLOAD: u64 = u32::MAX as u64 - 2 * BLOCK;
/// Zeros written per `pwrite` while preallocating.
const ZERO_CHUNK: usize = 1 << 20;
/// Capacity of the group I/O buffer kept between groups; a bigger one (a big group) is
/// freed after its group, so it is not held for the life of the log.
const IO_KEEP_BYTES: usize = 1 << 20;

pub(super) fn io_err(what: &'static str, path: &Path, e: std::io::Error) -> Error {
    Error::io(what, path, e)
}

/// File name of log file `index`.
pub(super) fn file_name(index: u64) -> String {
    format!("{index:010}.slog")
}

/// One log file.
#[derive(Debug)]
pub(super) struct LogFile {
    pub index: u64,
    pub path: PathBuf,
    pub file: File,
    /// Usable length: the file length rounded down to 4 KiB.
    pub len: u64,
    /// Last sequence number of this file's current life (`None`: no records).
    pub last_seq: Option<SeqNo>,
}

impl LogFile {
    pub(super) fn open(dir: &Path, index: u64) -> Result<LogFile> {
        let path = dir.join(file_name(index));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_err("open", &path, e))?;
        let len = file.metadata().map_err(|e| io_err("stat", &path, e))?.len() & !(BLOCK - 1);
        Ok(LogFile {
            index,
            path,
            file,
            len,
            last_seq: None,
        })
    }

    /// Creates file `index` of `len` bytes of written zeros: a temporary name, zero fill,
    /// fsync, rename, fsync of the directory.
    fn create(dir: &Path, index: u64, len: u64) -> Result<LogFile> {
        let path = dir.join(file_name(index));
        let tmp = dir.join(format!("{}.tmp", file_name(index)));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| io_err("create", &tmp, e))?;
        write_zeros(&file, &tmp, 0, len)?;
        file.sync_all().map_err(|e| io_err("fsync", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io_err("rename", &tmp, e))?;
        sync_dir(dir)?;
        Ok(LogFile {
            index,
            path,
            file,
            len,
            last_seq: None,
        })
    }

    /// Grows the file to `len` bytes of written zeros (fsync'd).
    fn grow(&mut self, len: u64) -> Result<()> {
        if len <= self.len {
            return Ok(());
        }
        write_zeros(&self.file, &self.path, self.len, len)?;
        self.file
            .sync_all()
            .map_err(|e| io_err("fsync", &self.path, e))?;
        self.len = len;
        Ok(())
    }
}

fn write_zeros(file: &File, path: &Path, from: u64, to: u64) -> Result<()> {
    let zeros = vec![0u8; ZERO_CHUNK];
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZERO_CHUNK as u64) as usize;
        file.write_all_at(&zeros[..n], at)
            .map_err(|e| io_err("preallocate", path, e))?;
        at += n as u64;
    }
    Ok(())
}

pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("fsync directory", dir, e))
}

/// The write side of the log.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(super) dir: PathBuf,
    pub(super) mode: LocalLogMode,
    pub(super) file_bytes: u64,
    /// The file being written.
    pub(super) active: LogFile,
    /// Next write offset in `active`.
    pub(super) pos: u64,
    /// Bytes of `active` from `pos` rounded down to 4 KiB up to `pos` (a packed group's
    /// tail): rewritten with the next group, so every `pwrite` covers whole blocks.
    pub(super) tail: Vec<u8>,
    /// Generation of the current life.
    pub(super) generation: u32,
    /// Older files that still hold records the remote WAL may not cover, oldest first.
    pub(super) live: VecDeque<LogFile>,
    /// Files free for recycling.
    pub(super) free: Vec<LogFile>,
    pub(super) next_index: u64,
    pub(super) io: Vec<u8>,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        dir: PathBuf,
        mode: LocalLogMode,
        file_bytes: u64,
        active: LogFile,
        pos: u64,
        tail: Vec<u8>,
        generation: u32,
        live: VecDeque<LogFile>,
        free: Vec<LogFile>,
        next_index: u64,
    ) -> Writer {
        Writer {
            dir,
            mode,
            file_bytes,
            active,
            pos,
            tail,
            generation,
            live,
            free,
            next_index,
            io: Vec::new(),
        }
    }

    /// A file for a new life: a free one (recycled) or a new one, at least `min_len`
    /// bytes long.
    pub(super) fn take_file(
        dir: &Path,
        free: &mut Vec<LogFile>,
        next_index: &mut u64,
        file_bytes: u64,
        min_len: u64,
        metrics: &LocalLogMetrics,
    ) -> Result<LogFile> {
        let mut file = if let Some(i) = free.iter().position(|f| f.len >= min_len) {
            free.swap_remove(i)
        } else if let Some(mut f) = free.pop() {
            f.grow(min_len.max(file_bytes))?;
            f
        } else {
            let index = *next_index;
            *next_index += 1;
            metrics.files_created.incr();
            return LogFile::create(dir, index, min_len.max(file_bytes));
        };
        metrics.files_recycled.incr();
        file.last_seq = None;
        Ok(file)
    }

    /// Deletes free files beyond [`MAX_SPARE_FILES`] (largest first: grown ones).
    pub(super) fn trim_free(free: &mut Vec<LogFile>, metrics: &LocalLogMetrics) {
        if free.len() <= MAX_SPARE_FILES {
            return;
        }
        free.sort_by_key(|f| std::cmp::Reverse(f.len));
        let surplus = free.len() - MAX_SPARE_FILES;
        for f in free.drain(..surplus) {
            // Best effort: a file that stays is found again on the next open.
            if let Err(e) = std::fs::remove_file(&f.path) {
                tracing::warn!(path = %f.path.display(), error = %e, "local log: cannot delete spare file");
            } else {
                metrics.files_deleted.incr();
            }
        }
    }

    /// Starts a new life in another file of at least `min_len` bytes. The active file must
    /// be synced already.
    fn switch_file(
        &mut self,
        min_len: u64,
        covered: Option<SeqNo>,
        metrics: &LocalLogMetrics,
    ) -> Result<()> {
        let generation = self
            .generation
            .checked_add(1)
            .ok_or_else(|| Error::Internal("local log: generation overflow".into()))?;
        // Files wholly covered by the remote WAL become free, the old active one included.
        while let Some(f) = self.live.front() {
            if covered.is_some_and(|c| f.last_seq.is_none_or(|l| l <= c)) {
                if let Some(f) = self.live.pop_front() {
                    self.free.push(f);
                }
            } else {
                break;
            }
        }
        let next = Self::take_file(
            &self.dir,
            &mut self.free,
            &mut self.next_index,
            self.file_bytes,
            min_len,
            metrics,
        )?;
        let old = std::mem::replace(&mut self.active, next);
        // Older live files are not covered (see above), so neither is a newer one.
        let old_free = match (old.last_seq, covered) {
            (None, _) => true,
            (Some(l), Some(c)) => l <= c && self.live.is_empty(),
            (Some(_), None) => false,
        };
        if old_free {
            self.free.push(old);
        } else {
            self.live.push_back(old);
        }
        Self::trim_free(&mut self.free, metrics);
        self.generation = generation;
        self.pos = 0;
        self.tail.clear();
        Ok(())
    }

    /// Whether a group with `payload` bytes fits in the active file at `pos`.
    fn fits(&self, payload: u64) -> bool {
        payload <= MAX_GROUP_PAYLOAD
            && align_up(self.pos + GROUP_HEADER_SIZE as u64 + payload) <= self.active.len
    }

    /// Writes `batch` as one group (more when it spans files), then `fdatasync`s.
    pub(super) fn write_batch(
        &mut self,
        batch: &Pending,
        metrics: &LocalLogMetrics,
        observer: Option<&BlockObserver>,
        covered: Option<SeqNo>,
    ) -> Result<()> {
        let records = &batch.records;
        let mut i = 0;
        let mut start = 0usize;
        let mut first_seq = batch.first_seq;
        let mut unsynced = false;
        while i < records.len() {
            let mut j = i;
            while j < records.len() && self.fits((records[j].end - start) as u64) {
                j += 1;
            }
            if j == i {
                // Not even the next record fits here: sync what this file got, move on.
                if unsynced {
                    self.sync(metrics)?;
                    unsynced = false;
                }
                let need = align_up(GROUP_HEADER_SIZE as u64 + (records[i].end - start) as u64);
                self.switch_file(need, covered, metrics)?;
                continue;
            }
            let payload = &batch.payload[start..records[j - 1].end];
            let last_seq = records[j - 1].last_seq;
            self.write_group(
                first_seq,
                last_seq,
                (j - i) as u32,
                payload,
                metrics,
                observer,
            )?;
            unsynced = true;
            start = records[j - 1].end;
            first_seq = last_seq + 1;
            i = j;
        }
        if self.io.capacity() > IO_KEEP_BYTES {
            self.io = Vec::new();
        }
        self.sync(metrics)
    }

    fn sync(&mut self, metrics: &LocalLogMetrics) -> Result<()> {
        self.active
            .file
            .sync_data()
            .map_err(|e| io_err("fdatasync", &self.active.path, e))?;
        metrics.syncs.incr();
        Ok(())
    }

    fn write_group(
        &mut self,
        first_seq: SeqNo,
        last_seq: SeqNo,
        record_count: u32,
        payload: &[u8],
        metrics: &LocalLogMetrics,
        observer: Option<&BlockObserver>,
    ) -> Result<()> {
        let block_start = self.pos - self.tail.len() as u64;
        debug_assert_eq!(block_start % BLOCK, 0);
        let sparse = self.mode == LocalLogMode::Sparse;
        self.io.clear();
        self.io.extend_from_slice(&self.tail);
        let header = encode_group(
            &mut self.io,
            self.generation,
            first_seq,
            last_seq,
            record_count,
            payload,
            sparse,
        );
        let group_end = self.pos + header.group_len();
        // Whole blocks: zeros after a packed group up to the block end.
        self.io.resize(align_up(self.io.len() as u64) as usize, 0);
        self.active
            .file
            .write_all_at(&self.io, block_start)
            .map_err(|e| io_err("pwrite", &self.active.path, e))?;
        let blocks = self.io.len() / LOCAL_BLOCK_SIZE;
        metrics.groups.incr();
        metrics.blocks_written.add(blocks as u64);
        metrics.bytes_written.add(self.io.len() as u64);
        if let Some(observe) = observer {
            for block in self.io.chunks(LOCAL_BLOCK_SIZE) {
                observe(block);
            }
        }
        self.active.last_seq = Some(last_seq);
        self.tail.clear();
        if sparse {
            self.pos = align_up(group_end);
        } else {
            self.pos = group_end;
            let tail_start = (group_end & !(BLOCK - 1)) - block_start;
            let tail_end = group_end - block_start;
            self.tail
                .extend_from_slice(&self.io[tail_start as usize..tail_end as usize]);
        }
        Ok(())
    }
}
