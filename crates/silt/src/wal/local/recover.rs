//! Opening the log: scan every file, order them, keep the contiguous tail, pick where to
//! write next.
//!
//! 1. Leftover `*.slog.tmp` files (a creation cut short) are deleted.
//! 2. Each `<index>.slog` file is scanned from offset 0 ([`scan_groups`]): groups follow
//!    each other while their CRC holds, their generation does not go down, and sequence
//!    numbers follow on within a generation.
//! 3. Files with at least one valid group are ordered by the generation of their first
//!    group (every file switch takes a new generation, so this is write order). Their
//!    groups are concatenated, and the records returned are the contiguous run that ends
//!    at the newest group: a gap means the records before it belong to an older stretch of
//!    the log, which the remote WAL covered (the first record after an open may skip
//!    forward only past sequence numbers the database already had).
//! 4. The newest file stays active: writing resumes right after its last valid group,
//!    with generation `1 + the highest generation seen anywhere`, so whatever lies beyond
//!    (a torn group, an older life) reads as stale. Files whose records all precede the
//!    returned run, and files without a valid group, are free for recycling.

use std::collections::VecDeque;
use std::os::unix::fs::FileExt;
use std::path::Path;

use silt_format::local_log::{scan_groups, GroupEnd, LOCAL_BLOCK_SIZE};
use silt_format::wal::WalRecord;
use silt_format::SeqNo;

use super::writer::{io_err, sync_dir, LogFile, Writer};
use super::{LocalLogMetrics, LocalLogSettings};
use crate::error::{Error, Result};

const BLOCK: u64 = LOCAL_BLOCK_SIZE as u64;

/// The outcome of opening the log.
#[derive(Debug)]
pub(super) struct Recovered {
    pub writer: Writer,
    pub records: Vec<WalRecord>,
    pub last_seq: Option<SeqNo>,
}

#[derive(Debug)]
struct Group {
    first_seq: SeqNo,
    last_seq: SeqNo,
    records: Vec<WalRecord>,
}

#[derive(Debug)]
struct Scanned {
    file: LogFile,
    first_generation: u32,
    groups: Vec<Group>,
    end_offset: u64,
    tail: Vec<u8>,
}

/// Parses `<index>.slog`.
fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".slog")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn list(dir: &Path) -> Result<Vec<u64>> {
    let mut indexes = Vec::new();
    let mut removed = false;
    for entry in std::fs::read_dir(dir).map_err(|e| io_err("list", dir, e))? {
        let entry = entry.map_err(|e| io_err("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".slog.tmp") {
            std::fs::remove_file(entry.path()).map_err(|e| io_err("remove", &entry.path(), e))?;
            removed = true;
        } else if let Some(i) = parse_name(name) {
            indexes.push(i);
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    indexes.sort_unstable();
    Ok(indexes)
}

/// Deletes every log file (and leftover temporary one) in `dir`, then syncs the directory.
pub(super) fn remove_log_files(dir: &Path) -> Result<()> {
    for index in list(dir)? {
        let path = dir.join(super::writer::file_name(index));
        std::fs::remove_file(&path).map_err(|e| io_err("remove", &path, e))?;
    }
    sync_dir(dir)
}

pub(super) fn recover(settings: &LocalLogSettings, metrics: &LocalLogMetrics) -> Result<Recovered> {
    let dir = settings.dir.as_path();
    std::fs::create_dir_all(dir).map_err(|e| io_err("create directory", dir, e))?;
    let indexes = list(dir)?;
    let next_index = indexes.last().map_or(0, |i| i + 1);

    let mut with_groups: Vec<Scanned> = Vec::new();
    let mut free: Vec<LogFile> = Vec::new();
    let mut max_generation = 0u32;
    for index in indexes {
        let file = LogFile::open(dir, index)?;
        let mut data = vec![0u8; file.len as usize];
        file.file
            .read_exact_at(&mut data, 0)
            .map_err(|e| io_err("read", &file.path, e))?;
        let (groups, end_offset, end) =
            scan_groups(&data).map_err(|e| Error::corrupt(file.path.display().to_string(), e))?;
        tracing::debug!(path = %file.path.display(), groups = groups.len(), end_offset, end = %end, "local log file scanned");
        if let GroupEnd::Stale { generation, .. } = end {
            max_generation = max_generation.max(generation);
        }
        let Some(first) = groups.first() else {
            free.push(file);
            continue;
        };
        let first_generation = first.group.header.generation;
        for g in &groups {
            max_generation = max_generation.max(g.group.header.generation);
        }
        let tail_start = end_offset & !(BLOCK - 1);
        let tail = data
            .get(tail_start as usize..end_offset as usize)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        with_groups.push(Scanned {
            file,
            first_generation,
            groups: groups
                .into_iter()
                .map(|g| Group {
                    first_seq: g.group.header.first_seq,
                    last_seq: g.group.header.last_seq,
                    records: g.records,
                })
                .collect(),
            end_offset,
            tail,
        });
    }
    with_groups.sort_by_key(|s| (s.first_generation, s.file.index));

    // The contiguous run ending at the newest group: (file, group) where it starts.
    let mut run_start = (0usize, 0usize);
    let mut prev_last: Option<SeqNo> = None;
    for (fi, s) in with_groups.iter().enumerate() {
        for (gi, g) in s.groups.iter().enumerate() {
            if prev_last.is_some_and(|p| p.checked_add(1) != Some(g.first_seq)) {
                run_start = (fi, gi);
            }
            prev_last = Some(g.last_seq);
        }
    }

    let mut records = Vec::new();
    let mut live: VecDeque<LogFile> = VecDeque::new();
    let mut active: Option<(LogFile, u64, Vec<u8>)> = None;
    let count = with_groups.len();
    for (fi, s) in with_groups.into_iter().enumerate() {
        if fi < run_start.0 {
            free.push(s.file);
            continue;
        }
        let skip = if fi == run_start.0 { run_start.1 } else { 0 };
        let mut file = s.file;
        file.last_seq = s.groups.last().map(|g| g.last_seq);
        for g in s.groups.into_iter().skip(skip) {
            records.extend(g.records);
        }
        if fi + 1 == count {
            active = Some((file, s.end_offset, s.tail));
        } else {
            live.push_back(file);
        }
    }
    let last_seq = prev_last;

    let generation = max_generation
        .checked_add(1)
        .ok_or_else(|| Error::Internal("local log: generation overflow".into()))?;
    let mut next_index = next_index;
    let (active, pos, tail) = if let Some(a) = active {
        a
    } else {
        let f = Writer::take_file(
            dir,
            &mut free,
            &mut next_index,
            settings.file_bytes,
            settings.file_bytes,
            metrics,
        )?;
        (f, 0, Vec::new())
    };
    Writer::trim_free(&mut free, metrics);
    let writer = Writer::new(
        dir.to_path_buf(),
        settings.mode,
        settings.file_bytes,
        active,
        pos,
        tail,
        generation,
        live,
        free,
        next_index,
    );
    Ok(Recovered {
        writer,
        records,
        last_seq,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_name;

    #[test]
    fn names() {
        assert_eq!(parse_name("0000000007.slog"), Some(7));
        assert_eq!(parse_name("7.slog"), Some(7));
        assert_eq!(parse_name(".slog"), None);
        assert_eq!(parse_name("0000000007.slog.tmp"), None);
        assert_eq!(parse_name("x7.slog"), None);
        assert_eq!(parse_name("99999999999999999999999.slog"), None);
    }
}
