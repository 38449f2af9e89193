//! The model of a drive with transparent compression: each 4 KiB block the local log writes
//! is compressed on its own with zlib (flate2, default `miniz_oxide` backend, zlib container)
//! and rounded up to the drive's allocation granule; the sum is the physical bytes.

use std::io::Write as _;
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{anyhow, Result};

/// Size of `block` compressed alone with zlib at `level`, rounded up to `granule`.
pub fn csd_block_bytes(block: &[u8], level: u32, granule: usize) -> usize {
    let mut enc = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(block.len() / 4),
        flate2::Compression::new(level),
    );
    // Writing to a Vec cannot fail; an error would only under-count.
    let len = match enc.write_all(block).and_then(|()| enc.finish()) {
        Ok(out) => out.len(),
        Err(_) => block.len(),
    };
    len.div_ceil(granule.max(1)) * granule.max(1)
}

/// A running model: the blocks its observer is handed are compressed on a thread of their
/// own, so that the log's writer is not slowed down.
#[derive(Debug)]
pub struct CsdModel(JoinHandle<u64>);

impl CsdModel {
    /// Starts the model; the observer goes to `LocalLog::open_with_observer`.
    pub fn start(level: u32, granule: usize) -> (silt::BlockObserver, CsdModel) {
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let thread = std::thread::spawn(move || {
            rx.iter()
                .map(|b| csd_block_bytes(&b, level, granule) as u64)
                .sum::<u64>()
        });
        let observer: silt::BlockObserver = std::sync::Arc::new(move |block: &[u8]| {
            let _ = tx.send(block.to_vec());
        });
        (observer, CsdModel(thread))
    }

    /// The modelled physical bytes of every block observed. Blocks until the observer is
    /// gone (dropped with the log that owns it).
    pub fn physical_bytes(self) -> Result<u64> {
        self.0
            .join()
            .map_err(|_| anyhow!("wal-wa bench: model thread panicked"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use silt::{LocalLog, LocalLogMode, LocalLogSettings};
    use silt_format::ValueKind;

    use super::*;

    #[tokio::test]
    async fn sparse_block_with_one_16_byte_record_compresses() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalLogSettings {
            dir: dir.path().to_path_buf(),
            file_bytes: 64 << 10,
            mode: LocalLogMode::Sparse,
            ..LocalLogSettings::default()
        };
        let blocks = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
        let sink = Arc::clone(&blocks);
        let observer: silt::BlockObserver =
            Arc::new(move |b: &[u8]| sink.lock().unwrap().push(b.to_vec()));
        let (log, _) = LocalLog::open_with_observer(&s, Some(observer)).unwrap();
        // 16 user bytes: an 8-byte key and an 8-byte value, both text-like...
        let t = log
            .enqueue(
                123_456,
                [(ValueKind::Put, &b"user:042"[..], &b"val:0042"[..])],
            )
            .unwrap();
        log.wait(t).await.unwrap();
        // ... and both incompressible.
        let t = log
            .enqueue(
                123_457,
                [(
                    ValueKind::Put,
                    &[0x9c, 0x27, 0xe1, 0x5a, 0x03, 0xb8, 0x7f, 0x46][..],
                    &[0xd2, 0x11, 0x8e, 0x6b, 0xf4, 0x35, 0xa9, 0x50][..],
                )],
            )
            .unwrap();
        log.wait(t).await.unwrap();
        let blocks = blocks.lock().unwrap();
        assert_eq!(blocks.len(), 2);
        let zlib = |b: &[u8]| csd_block_bytes(b, 1, 1);
        let zero = zlib(&[0u8; 4096]);
        let (text, random) = (zlib(&blocks[0]), zlib(&blocks[1]));
        println!(
            "zlib-1 bytes: zero block {zero}, 16 B text record {text}, 16 B random record {random}"
        );
        // A block of zeros alone takes ~40 bytes, so a lone record's block cannot reach 64
        // bytes with zlib level 1; it stays within two 64-byte granules.
        assert!(zero <= 48, "{zero}");
        assert!(text <= 128, "{text}");
        assert!(random <= 128, "{random}");
        assert_eq!(csd_block_bytes(&blocks[0], 1, 64), 128);
        assert_eq!(csd_block_bytes(&[0u8; 4096], 1, 64), 64);
    }

    #[test]
    fn the_model_adds_up_every_observed_block() {
        let (observer, model) = CsdModel::start(1, 64);
        observer(&[0u8; 4096]);
        observer(&[0u8; 4096]);
        drop(observer);
        assert_eq!(model.physical_bytes().unwrap(), 128);
    }
}
