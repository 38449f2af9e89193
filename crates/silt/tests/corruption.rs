//! Damaged objects on a `file://` store are reported as `ErrorKind::Corrupt`, never used
//! silently and never a panic: SST data blocks (on read), SST footer and index (on open),
//! WAL segments past the replay point (on recovery) and the newest manifest (on open),
//! unless that one is torn (empty or cut short, as a crash leaves an unsynced write): then
//! the manifest before it is used, with a warning.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use silt::{Db, Durability, ErrorKind, Settings, WriteOptions};
use silt_format::block::decode_block_frame;
use silt_format::sst::{Footer, IndexBlock};

const BUFFERED: WriteOptions = WriteOptions::with_durability(Durability::Buffered);

fn url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// Every file under `dir/sub` whose name ends with `.{ext}`, sorted by name (ids are
/// zero-padded, so this is id order for WAL segments and manifests).
fn files(dir: &Path, sub: &str, ext: &str) -> Result<Vec<PathBuf>> {
    let listing = || format!("listing {}", dir.join(sub).display());
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join(sub)).with_context(listing)? {
        let p = e.with_context(listing)?.path();
        if p.extension().is_some_and(|e| e == ext) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn flip_byte(path: &Path, offset: usize) -> Result<()> {
    let mut data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    assert!(
        offset < data.len(),
        "offset {offset} past {}",
        path.display()
    );
    data[offset] ^= 0x5a;
    std::fs::write(path, data).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn truncate_by(path: &Path, n: usize) -> Result<()> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    std::fs::write(path, &data[..data.len() - n])
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn key(i: usize) -> String {
    format!("key{i:05}")
}

fn value(i: usize) -> Vec<u8> {
    format!("value-{i:05}-{}", "v".repeat(60)).into_bytes()
}

const KEYS: usize = 400;

/// Small memtables and blocks; a generous PUT budget so durable writes do not wait; no
/// memtable flush on close, so data written without `flush_memtables` stays in the WAL.
fn settings() -> Settings {
    let mut s = Settings::small_for_tests();
    // Large enough that KEYS entries make exactly one memtable (one SST).
    s.memtable_bytes = 1024 * 1024;
    s.flush_on_close = false;
    s.wal.max_puts_per_sec = 10_000.0;
    s.wal.put_burst = 100;
    s
}

/// A database whose data sits in exactly one SST (several data blocks); closed.
async fn db_with_one_sst(dir: &Path) -> Result<PathBuf> {
    let db = Db::open(&url(dir), settings()).await.context("open")?;
    for i in 0..KEYS {
        db.put_with(key(i), value(i), &BUFFERED)
            .await
            .with_context(|| format!("put_with {}", key(i)))?;
    }
    db.flush_memtables().await.context("flush_memtables")?;
    db.close().await.context("close")?;
    let ssts = files(dir, "sst", "sst")?;
    assert_eq!(ssts.len(), 1, "expected one SST");
    ssts.into_iter().next().context("no SST")
}

fn footer_of(data: &[u8]) -> Result<Footer> {
    Footer::decode(&data[data.len() - Footer::SIZE..], data.len() as u64)
        .context("decoding the SST footer")
}

fn index_of(data: &[u8]) -> Result<IndexBlock> {
    let f = footer_of(data)?;
    let r = f.index.range();
    IndexBlock::decode(
        decode_block_frame(&data[r.start as usize..r.end as usize])
            .context("decoding the SST index block's frame")?,
    )
    .context("decoding the SST index block")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sst_data_block_corruption_is_reported_on_read() -> Result<()> {
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let sst = db_with_one_sst(dir.path()).await?;
    let data = std::fs::read(&sst).with_context(|| format!("reading {}", sst.display()))?;
    let index = index_of(&data)?;
    assert!(index.entries().len() >= 3, "want several data blocks");
    // Damage the middle of the second data block.
    let victim = &index.entries()[1];
    let h = victim.handle;
    flip_byte(&sst, (h.offset + h.len / 2) as usize)?;
    // A key stored in that block: the block's last key.
    let victim_key = victim.last_key.clone();
    let healthy_key = index.entries()[0].last_key.clone();

    // Open reads only footer, index and filter: it succeeds.
    let db = Db::open(&url(dir.path()), settings())
        .await
        .context("open")?;
    let e = db.get(&victim_key).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    // Other blocks are still readable.
    assert!(db
        .get(&healthy_key)
        .await
        .with_context(|| format!("get {healthy_key:?}"))?
        .is_some());
    // A scan over the damaged block fails too (no partial silent results past it).
    let mut it = db.scan::<&str>(..).context("scan")?;
    let err = loop {
        match it.next().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("scan over a corrupt block ended without an error"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    // The error is not cached as a good block: reading again fails again.
    let e = db.get(&victim_key).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    db.close().await.context("close")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sst_footer_corruption_fails_open() -> Result<()> {
    for offset_from_end in [1, 10, Footer::SIZE - 1] {
        let dir = tempfile::tempdir().context("creating a temp dir")?;
        let sst = db_with_one_sst(dir.path()).await?;
        let len = std::fs::metadata(&sst)
            .with_context(|| format!("stat {}", sst.display()))?
            .len() as usize;
        flip_byte(&sst, len - offset_from_end)?;
        let e = Db::open(&url(dir.path()), settings()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "byte -{offset_from_end}: {e}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sst_index_and_filter_corruption_fails_open() -> Result<()> {
    for part in ["index", "filter"] {
        let dir = tempfile::tempdir().context("creating a temp dir")?;
        let sst = db_with_one_sst(dir.path()).await?;
        let data = std::fs::read(&sst).with_context(|| format!("reading {}", sst.display()))?;
        let f = footer_of(&data)?;
        let h = if part == "index" { f.index } else { f.filter };
        flip_byte(&sst, (h.offset + 1) as usize)?;
        let e = Db::open(&url(dir.path()), settings()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{part}: {e}");
        // Read-only opens validate the same way.
        let (store, root) =
            silt::objstore::store_from_url(&url(dir.path())).context("store_from_url")?;
        let e = Db::builder(store, root)
            .settings(settings())
            .read_only()
            .open()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{part} (read-only): {e}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_sst_fails_open() -> Result<()> {
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let sst = db_with_one_sst(dir.path()).await?;
    truncate_by(&sst, 7)?;
    let e = Db::open(&url(dir.path()), settings()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    Ok(())
}

/// A closed database whose writes are only in the WAL (no memtable flush): recovery must
/// replay them. Returns the WAL segments holding data (not fence segments), oldest first.
async fn db_with_wal_only(dir: &Path) -> Result<Vec<PathBuf>> {
    let db = Db::open(&url(dir), settings()).await.context("open")?;
    // Two data segments: one made durable by flush(), one by Remote puts.
    for i in 0..10 {
        db.put_with(key(i), value(i), &BUFFERED)
            .await
            .with_context(|| format!("put_with {}", key(i)))?;
    }
    db.flush().await.context("flush")?;
    for i in 10..20 {
        db.put(key(i), value(i))
            .await
            .with_context(|| format!("put {}", key(i)))?;
    }
    db.close().await.context("close")?;
    // Sanity: a clean reopen replays everything.
    let db = Db::open(&url(dir), settings()).await.context("reopen")?;
    assert_eq!(
        db.get(key(19))
            .await
            .with_context(|| format!("get {}", key(19)))?
            .as_deref(),
        Some(&value(19)[..])
    );
    db.close().await.context("close the reopened db")?;
    let mut data: Vec<PathBuf> = Vec::new();
    for p in files(dir, "wal", "wal")? {
        let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        let h = silt_format::wal::decode_segment_header(&bytes)
            .with_context(|| format!("decoding the header of {}", p.display()))?;
        if h.record_count > 0 {
            data.push(p);
        }
    }
    assert!(!data.is_empty());
    Ok(data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_segment_corruption_fails_recovery() -> Result<()> {
    // Header, first body byte, last body byte (before the trailer), trailer.
    for which in ["header", "body-start", "body-end", "trailer"] {
        let dir = tempfile::tempdir().context("creating a temp dir")?;
        let segs = db_with_wal_only(dir.path()).await?;
        let seg = segs.last().context("no data WAL segment")?;
        let len = std::fs::metadata(seg)
            .with_context(|| format!("stat {}", seg.display()))?
            .len() as usize;
        let hdr = silt_format::wal::WAL_HEADER_SIZE;
        let offset = match which {
            "header" => 12,
            "body-start" => hdr,
            "body-end" => len - 5,
            _ => len - 1,
        };
        flip_byte(seg, offset)?;
        let e = Db::open(&url(dir.path()), settings()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{which}: {e}");
        // Not silently "repaired" by the failed attempt: still corrupt.
        let e = Db::open(&url(dir.path()), settings()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{which} (second open): {e}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_wal_segment_fails_recovery() -> Result<()> {
    for cut in [1, 4, 30] {
        let dir = tempfile::tempdir().context("creating a temp dir")?;
        let segs = db_with_wal_only(dir.path()).await?;
        let seg = segs.first().context("no data WAL segment")?;
        truncate_by(seg, cut)?;
        let e = Db::open(&url(dir.path()), settings()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "cut {cut}: {e}");
    }
    // An empty object is no segment either.
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let segs = db_with_wal_only(dir.path()).await?;
    std::fs::write(&segs[0], b"").with_context(|| format!("writing {}", segs[0].display()))?;
    let e = Db::open(&url(dir.path()), settings()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "empty segment: {e}");
    Ok(())
}

/// Segments before the manifest's replay point are never read: damage there is harmless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_segments_before_replay_point_are_not_read() -> Result<()> {
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let segs = db_with_wal_only(dir.path()).await?;
    let db = Db::open(&url(dir.path()), settings())
        .await
        .context("open")?;
    db.flush_memtables().await.context("flush_memtables")?;
    db.put("after", "flush").await.context("put after")?;
    db.close().await.context("close")?;
    for seg in &segs {
        if seg.exists() {
            flip_byte(seg, silt_format::wal::WAL_HEADER_SIZE)?;
        }
    }
    let db = Db::open(&url(dir.path()), settings())
        .await
        .context("reopen")?;
    for i in 0..20 {
        assert_eq!(
            db.get(key(i))
                .await
                .with_context(|| format!("get {}", key(i)))?
                .as_deref(),
            Some(&value(i)[..])
        );
    }
    assert_eq!(
        db.get("after").await.context("get after")?.as_deref(),
        Some(&b"flush"[..])
    );
    db.close().await.context("close the reopened db")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_manifest_corruption_fails_open() -> Result<()> {
    // Full-length damage, including the length field; cut-short manifests are below.
    for how in ["flip-start", "flip-length", "flip-middle", "flip-end"] {
        let dir = tempfile::tempdir().context("creating a temp dir")?;
        db_with_one_sst(dir.path()).await?;
        let manifests = files(dir.path(), "manifest", "manifest")?;
        assert!(manifests.len() >= 2);
        let newest = manifests.last().context("no manifest")?;
        let len = std::fs::metadata(newest)
            .with_context(|| format!("stat {}", newest.display()))?
            .len() as usize;
        match how {
            "flip-start" => flip_byte(newest, 0)?,
            "flip-length" => flip_byte(newest, 10)?,
            "flip-middle" => flip_byte(newest, len / 2)?,
            _ => flip_byte(newest, len - 1)?,
        }
        let e = Db::open(&url(dir.path()), settings()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{how}: {e}");
        // Never falls back to an older manifest, read-only or not.
        let (store, root) =
            silt::objstore::store_from_url(&url(dir.path())).context("store_from_url")?;
        let e = Db::builder(store, root)
            .settings(settings())
            .read_only()
            .open()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{how} (read-only): {e}");
        // The failed opens did not write a newer manifest over the damage.
        assert_eq!(
            files(dir.path(), "manifest", "manifest")?.len(),
            manifests.len()
        );
    }
    Ok(())
}

/// Keys 0..100 in an SST (manifest 2), 100..200 in another (manifest 3), 200..250 only in
/// the WAL; `Remote` writes, closed. Returns the manifest files, oldest first.
async fn db_with_two_flushes(dir: &Path) -> Result<Vec<PathBuf>> {
    let db = Db::open(&url(dir), settings()).await.context("open")?;
    for i in 0..250 {
        db.put(key(i), value(i))
            .await
            .with_context(|| format!("put {}", key(i)))?;
        if i == 99 || i == 199 {
            db.flush_memtables().await.context("flush_memtables")?;
        }
    }
    db.close().await.context("close")?;
    let manifests = files(dir, "manifest", "manifest")?;
    assert_eq!(manifests.len(), 3, "claim + two flushes");
    Ok(manifests)
}

async fn check_all(db: &Db, n: usize) -> Result<()> {
    for i in 0..n {
        assert_eq!(
            db.get(key(i))
                .await
                .with_context(|| format!("get {}", key(i)))?
                .as_deref(),
            Some(&value(i)[..]),
            "{}",
            key(i)
        );
    }
    Ok(())
}

fn cut(path: &Path, how: &str) -> Result<()> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let keep = match how {
        "empty" => 0,
        "header" => silt_format::manifest::MANIFEST_HEADER_SIZE,
        "half" => data.len() / 2,
        _ => data.len() - 1,
    };
    std::fs::write(path, &data[..keep]).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A torn newest manifest is skipped for the one before it: the open sees that one's SSTs
/// and replays the WAL from its replay point, which restores what the torn one recorded.
/// The new writer claims the id after the torn one with epoch + 2, and later opens read
/// past the torn manifest below the newest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_newest_manifest_falls_back_to_the_one_before() -> Result<()> {
    for how in ["empty", "header", "half", "last-byte"] {
        let dir = tempfile::tempdir().context("creating a temp dir")?;
        let manifests = db_with_two_flushes(dir.path()).await?;
        cut(&manifests[2], how)?;

        // Read-only: manifest 2 (one SST) plus the WAL from its replay point.
        let (store, root) =
            silt::objstore::store_from_url(&url(dir.path())).context("store_from_url")?;
        let storage = silt::objstore::Storage::new(store.clone(), root.clone());
        let r = silt::inspect::inspect(&storage).await.context("inspect")?;
        assert_eq!((r.manifest_id, r.l0_ssts), (2, 1), "{how}: {r:?}");
        let ro = Db::builder(store, root)
            .settings(settings())
            .read_only()
            .open()
            .await
            .context("open")?;
        check_all(&ro, 250).await?;
        ro.close().await.context("close ro")?;

        let db = Db::open(&url(dir.path()), settings())
            .await
            .context("reopen")?;
        assert_eq!(db.writer_epoch(), 3, "{how}: two past manifest 2's epoch");
        check_all(&db, 250).await?;
        let r = silt::inspect::inspect(db.storage())
            .await
            .context("inspect")?;
        assert_eq!(r.manifest_id, 4, "{how}: the claim skips the torn id 3");
        db.put("after", "fallback").await.context("put after")?;
        db.flush_memtables().await.context("flush_memtables")?;
        // GC passes over the torn manifest (nobody can read it) instead of failing on it.
        db.gc(None).await.context("gc")?;
        db.compact().await.context("compact")?;
        db.close().await.context("close the reopened db")?;

        // The torn manifest 3 now sits below valid ones: only the newest is read.
        let db = Db::open(&url(dir.path()), settings())
            .await
            .context("second reopen")?;
        assert_eq!(db.writer_epoch(), 4, "{how}");
        check_all(&db, 250).await?;
        assert_eq!(
            db.get("after").await.context("get after")?.as_deref(),
            Some(&b"fallback"[..])
        );
        db.close().await.context("close after the second reopen")?;
    }
    Ok(())
}

/// A torn first manifest (the first writer's claim) falls back to the empty database; the
/// WAL that writer uploaded replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_first_manifest_falls_back_to_empty() -> Result<()> {
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let db = Db::open(&url(dir.path()), settings())
        .await
        .context("open")?;
    for i in 0..20 {
        db.put(key(i), value(i))
            .await
            .with_context(|| format!("put {}", key(i)))?;
    }
    db.close().await.context("close")?;
    let manifests = files(dir.path(), "manifest", "manifest")?;
    assert_eq!(manifests.len(), 1);
    cut(&manifests[0], "half")?;
    let db = Db::open(&url(dir.path()), settings())
        .await
        .context("reopen")?;
    assert_eq!(db.writer_epoch(), 2);
    check_all(&db, 20).await?;
    db.close().await.context("close the reopened db")?;
    Ok(())
}

/// Only the newest manifest may be skipped, and only for the one it was written on top of.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_manifest_is_corrupt_unless_the_one_before_it_is_sound() -> Result<()> {
    for how in ["two-torn", "previous-missing"] {
        let dir = tempfile::tempdir().context("creating a temp dir")?;
        let manifests = db_with_two_flushes(dir.path()).await?;
        cut(&manifests[2], "half")?;
        match how {
            "two-torn" => cut(&manifests[1], "empty")?,
            _ => std::fs::remove_file(&manifests[1])
                .with_context(|| format!("removing {}", manifests[1].display()))?,
        }
        let e = Db::open(&url(dir.path()), settings()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{how}: {e}");
        let (store, root) =
            silt::objstore::store_from_url(&url(dir.path())).context("store_from_url")?;
        let e = Db::builder(store, root)
            .settings(settings())
            .read_only()
            .open()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{how} (read-only): {e}");
        // Nothing was claimed over the damage.
        assert_eq!(
            files(dir.path(), "manifest", "manifest")?.len(),
            manifests.len() - usize::from(how == "previous-missing")
        );
    }
    Ok(())
}
