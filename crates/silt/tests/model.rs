//! Model-based test: random operation sequences against the database and a `BTreeMap`
//! model, including snapshots, memtable flushes, compactions, GC passes and reopens (clean
//! and crash-like) on one `InMemory` store. Tiny memtables, segments and blocks make SSTs appear within a case.
//! Puts may carry an expiry, judged by a wall clock the test moves (`AdvanceClock`): the model
//! hides a value from the moment its expiry comes, through flushes, compactions and reopens.
//!
//! The proptest seed is fixed and failure persistence is off, so every run executes the same
//! cases; a failure prints the shrunk operation sequence.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use silt::clock::{Clock, ManualWallClock};
use silt::object_store::memory::InMemory;
use silt::object_store::path::Path;
use silt::object_store::ObjectStore;
use silt::{Db, Durability, Expiry, Settings, Snapshot, WriteBatch, WriteOptions};

/// What a reader sees: live keys and values.
type Model = BTreeMap<Vec<u8>, Vec<u8>>;
/// What was written: each key's value and its expiry (Unix milliseconds), if any.
type Stored = BTreeMap<Vec<u8>, (Vec<u8>, Option<u64>)>;

/// The model's view at `now`: values whose expiry has come (`at <= now`) are gone.
fn visible(s: &Stored, now: u64) -> Model {
    s.iter()
        .filter(|(_, (_, at))| at.is_none_or(|at| at > now))
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect()
}

/// The wall clock's start: 2026-12-01, in Unix milliseconds.
const WALL_START: u64 = 1_796_083_200_000;

/// Keys are 1..=3 symbols over {a, b, 0xff}: 39 keys with shared prefixes, and 0xff to
/// exercise prefix-range end computation.
const ALPHABET: [u8; 3] = [b'a', b'b', 0xff];

fn all_keys() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for len in 1..=3u32 {
        for mut n in 0..3usize.pow(len) {
            let mut k = Vec::new();
            for _ in 0..len {
                k.push(ALPHABET[n % 3]);
                n /= 3;
            }
            out.push(k);
        }
    }
    out
}

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(all_keys())
}

/// A prefix (0..=2 symbols, so the empty prefix too).
fn prefix_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(ALPHABET.to_vec()), 0..=2)
}

fn value_strategy() -> impl Strategy<Value = Vec<u8>> {
    // Mostly short values, sometimes large enough to fill a memtable quickly.
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..16),
        1 => (0usize..600, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
    ]
}

fn bound_strategy() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        1 => Just(Bound::Unbounded),
        2 => prefix_strategy().prop_map(Bound::Included),
        2 => key_strategy().prop_map(Bound::Excluded),
        2 => key_strategy().prop_map(Bound::Included),
    ]
}

#[derive(Clone, Debug)]
enum Read {
    Get(Vec<u8>),
    Scan(Bound<Vec<u8>>, Bound<Vec<u8>>, usize),
    Prefix(Vec<u8>),
}

fn read_strategy() -> impl Strategy<Value = Read> {
    prop_oneof![
        3 => key_strategy().prop_map(Read::Get),
        2 => (bound_strategy(), bound_strategy(), 1usize..50)
            .prop_map(|(s, e, limit)| Read::Scan(s, e, limit)),
        1 => prefix_strategy().prop_map(Read::Prefix),
    ]
}

/// A key with a value and its time to live (ms), or `None` for a delete.
type ExpiringOp = (Vec<u8>, Option<(Vec<u8>, u64)>);

#[derive(Clone, Debug)]
enum Op {
    Put(Vec<u8>, Vec<u8>, bool),
    /// A put that expires this many milliseconds after the wall clock's time.
    PutExpiring(Vec<u8>, Vec<u8>, u64, bool),
    /// A batch of expiring puts (relative expiries) and deletes.
    BatchExpiring(Vec<ExpiringOp>, bool),
    /// Move the wall clock forward this many milliseconds.
    AdvanceClock(u64),
    Delete(Vec<u8>, bool),
    Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>, bool),
    Read(Read),
    TakeSnapshot,
    ReadSnapshot(usize, Read),
    Flush,
    FlushMemtables,
    /// Explicit compaction.
    Compact,
    /// A GC pass with zero grace: deletes every object no live manifest or handle needs.
    Gc,
    /// Reopen; `clean` closes first, otherwise `flush()` and drop (a crash after the WAL is
    /// durable). The new handle flushes its memtables on close if `flush_on_close`.
    Reopen {
        clean: bool,
        flush_on_close: bool,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    // `buffered` is true about one time in four.
    let buffered = || prop::bool::weighted(0.25);
    prop_oneof![
        10 => (key_strategy(), value_strategy(), buffered()).prop_map(|(k, v, b)| Op::Put(k, v, b)),
        4 => (key_strategy(), value_strategy(), 0u64..3_000, buffered())
            .prop_map(|(k, v, ttl, b)| Op::PutExpiring(k, v, ttl, b)),
        1 => (
            prop::collection::vec(
                (key_strategy(), prop::option::weighted(0.7, (value_strategy(), 0u64..3_000))),
                1..6,
            ),
            buffered()
        )
            .prop_map(|(ops, b)| Op::BatchExpiring(ops, b)),
        3 => (0u64..2_000).prop_map(Op::AdvanceClock),
        4 => (key_strategy(), buffered()).prop_map(|(k, b)| Op::Delete(k, b)),
        3 => (
            prop::collection::vec((key_strategy(), prop::option::weighted(0.7, value_strategy())), 1..8),
            buffered()
        )
            .prop_map(|(ops, b)| Op::Batch(ops, b)),
        8 => read_strategy().prop_map(Op::Read),
        2 => Just(Op::TakeSnapshot),
        4 => (any::<usize>(), read_strategy()).prop_map(|(i, r)| Op::ReadSnapshot(i, r)),
        1 => Just(Op::Flush),
        2 => Just(Op::FlushMemtables),
        1 => Just(Op::Compact),
        1 => Just(Op::Gc),
        1 => (any::<bool>(), any::<bool>())
            .prop_map(|(clean, flush_on_close)| Op::Reopen { clean, flush_on_close }),
    ]
}

fn settings(flush_on_close: bool) -> Settings {
    let mut s = Settings::small_for_tests();
    s.flush_on_close = flush_on_close;
    s.memtable_bytes = 4096;
    s.max_frozen_memtables = 1;
    s.wal.segment_bytes = 1024;
    s.sst.block_bytes = 256;
    // Compact often; small output SSTs so sorted runs hold several.
    s.compaction.l0_trigger = 3;
    s.compaction.target_sst_bytes = 4096;
    s
}

fn opts(buffered: bool) -> WriteOptions {
    WriteOptions::with_durability(if buffered {
        Durability::Buffered
    } else {
        Durability::Remote
    })
}

fn in_bounds(k: &[u8], start: &Bound<Vec<u8>>, end: &Bound<Vec<u8>>) -> bool {
    let after_start = match start {
        Bound::Included(s) => k >= s.as_slice(),
        Bound::Excluded(s) => k > s.as_slice(),
        Bound::Unbounded => true,
    };
    let before_end = match end {
        Bound::Included(e) => k <= e.as_slice(),
        Bound::Excluded(e) => k < e.as_slice(),
        Bound::Unbounded => true,
    };
    after_start && before_end
}

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn model_read(m: &Model, r: &Read) -> (Option<Vec<u8>>, Pairs) {
    match r {
        Read::Get(k) => (m.get(k).cloned(), Vec::new()),
        Read::Scan(s, e, limit) => (
            None,
            m.iter()
                .filter(|(k, _)| in_bounds(k, s, e))
                .take(*limit)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        Read::Prefix(p) => (
            None,
            m.iter()
                .filter(|(k, _)| k.starts_with(p))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
    }
}

fn to_pairs(v: Vec<(silt::Bytes, silt::Bytes)>) -> Pairs {
    v.into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

/// Something that can be read: the database or a snapshot.
enum Reader<'a> {
    Db(&'a Db),
    Snap(&'a Snapshot),
}

async fn db_read(r: Reader<'_>, read: &Read) -> Result<(Option<Vec<u8>>, Pairs)> {
    match read {
        Read::Get(k) => {
            let v = match r {
                Reader::Db(db) => db.get(k).await.with_context(|| format!("get {k:?}"))?,
                Reader::Snap(s) => s
                    .get(k)
                    .await
                    .with_context(|| format!("snapshot get {k:?}"))?,
            };
            Ok((v.map(|b| b.to_vec()), Vec::new()))
        }
        Read::Scan(s, e, limit) => {
            let range = (s.clone(), e.clone());
            let it = match r {
                Reader::Db(db) => db.scan(range).context("scan")?,
                Reader::Snap(snap) => snap.scan(range).context("snapshot scan")?,
            };
            let rows = it
                .collect(*limit)
                .await
                .with_context(|| format!("scan {s:?}..{e:?} limit {limit}"))?;
            Ok((None, to_pairs(rows)))
        }
        Read::Prefix(p) => {
            let it = match r {
                Reader::Db(db) => db
                    .scan_prefix(p)
                    .with_context(|| format!("scan_prefix {p:?}"))?,
                Reader::Snap(snap) => snap
                    .scan_prefix(p)
                    .with_context(|| format!("snapshot scan_prefix {p:?}"))?,
            };
            let rows = it
                .collect(usize::MAX)
                .await
                .with_context(|| format!("scan_prefix {p:?}"))?;
            Ok((None, to_pairs(rows)))
        }
    }
}

async fn open(
    store: &Arc<dyn ObjectStore>,
    flush_on_close: bool,
    wall: &Arc<ManualWallClock>,
) -> Result<Db> {
    let clock: Arc<dyn Clock> = Arc::clone(wall) as Arc<dyn Clock>;
    Db::builder(Arc::clone(store), Path::from("model"))
        .settings(settings(flush_on_close))
        .clock(clock)
        .open()
        .await
        .context("open")
}

async fn full_scan(db: &Db) -> Result<Pairs> {
    Ok(to_pairs(
        db.scan::<&[u8]>(..)
            .context("full scan")?
            .collect(usize::MAX)
            .await
            .context("full scan")?,
    ))
}

fn model_pairs(s: &Stored, now: u64) -> Pairs {
    visible(s, now).into_iter().collect()
}

async fn run(ops: Vec<Op>) -> Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let wall = Arc::new(ManualWallClock::new(WALL_START));
    let mut db = open(&store, false, &wall).await?;
    let mut model = Stored::new();
    let mut snapshots: Vec<(Snapshot, Stored)> = Vec::new();
    let mut buffered_pending = false;
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Put(k, v, b) => {
                db.put_with(&k, &v, &opts(b))
                    .await
                    .with_context(|| format!("step {step}: put_with {k:?}"))?;
                model.insert(k, (v, None));
                buffered_pending |= b;
            }
            Op::PutExpiring(k, v, ttl, b) => {
                let at = wall.unix_millis() + ttl;
                let o = opts(b).expiring(Expiry::After(Duration::from_millis(ttl)));
                db.put_with(&k, &v, &o)
                    .await
                    .with_context(|| format!("step {step}: put_with {k:?} expiring"))?;
                model.insert(k, (v, Some(at)));
                buffered_pending |= b;
            }
            Op::BatchExpiring(entries, b) => {
                let now = wall.unix_millis();
                let mut batch = WriteBatch::new();
                for (k, v) in &entries {
                    match v {
                        Some((v, ttl)) => batch.put_expiring(k, v, now + ttl),
                        None => batch.delete(k),
                    };
                }
                db.write_with(batch, &opts(b))
                    .await
                    .with_context(|| format!("step {step}: write_with expiring"))?;
                for (k, v) in entries {
                    match v {
                        Some((v, ttl)) => model.insert(k, (v, Some(now + ttl))),
                        None => model.remove(&k),
                    };
                }
                buffered_pending |= b;
            }
            Op::AdvanceClock(ms) => {
                wall.advance(Duration::from_millis(ms));
            }
            Op::Delete(k, b) => {
                db.delete_with(&k, &opts(b))
                    .await
                    .with_context(|| format!("step {step}: delete_with {k:?}"))?;
                model.remove(&k);
                buffered_pending |= b;
            }
            Op::Batch(entries, b) => {
                let mut batch = WriteBatch::new();
                for (k, v) in &entries {
                    match v {
                        Some(v) => batch.put(k, v),
                        None => batch.delete(k),
                    };
                }
                db.write_with(batch, &opts(b))
                    .await
                    .with_context(|| format!("step {step}: write_with"))?;
                for (k, v) in entries {
                    match v {
                        Some(v) => model.insert(k, (v, None)),
                        None => model.remove(&k),
                    };
                }
                buffered_pending |= b;
            }
            Op::Read(r) => {
                let got = db_read(Reader::Db(&db), &r)
                    .await
                    .with_context(|| format!("step {step}: {r:?}"))?;
                let want = model_read(&visible(&model, wall.unix_millis()), &r);
                assert_eq!(got, want, "step {step}: {r:?}");
            }
            Op::TakeSnapshot => {
                snapshots.push((db.snapshot(), model.clone()));
                if snapshots.len() > 4 {
                    snapshots.remove(0);
                }
            }
            Op::ReadSnapshot(i, r) => {
                if snapshots.is_empty() {
                    continue;
                }
                let (snap, m) = &snapshots[i % snapshots.len()];
                let got = db_read(Reader::Snap(snap), &r)
                    .await
                    .with_context(|| format!("step {step}: snapshot read {r:?}"))?;
                let want = model_read(&visible(m, wall.unix_millis()), &r);
                assert_eq!(got, want, "step {step}: snapshot read {r:?}");
            }
            Op::Flush => {
                db.flush()
                    .await
                    .with_context(|| format!("step {step}: flush"))?;
                buffered_pending = false;
                assert!(db.durable_seq() >= db.visible_seq());
            }
            Op::FlushMemtables => db
                .flush_memtables()
                .await
                .with_context(|| format!("step {step}: flush_memtables"))?,
            Op::Compact => db
                .compact()
                .await
                .with_context(|| format!("step {step}: compact"))?,
            Op::Gc => {
                db.gc(Some(Duration::ZERO))
                    .await
                    .with_context(|| format!("step {step}: gc"))?;
            }
            Op::Reopen {
                clean,
                flush_on_close,
            } => {
                if buffered_pending {
                    db.flush()
                        .await
                        .with_context(|| format!("step {step}: flush before reopening"))?;
                    buffered_pending = false;
                }
                snapshots.clear();
                if clean {
                    db.close()
                        .await
                        .with_context(|| format!("step {step}: close"))?;
                } else {
                    drop(db);
                }
                db = open(&store, flush_on_close, &wall)
                    .await
                    .with_context(|| format!("step {step}: reopen"))?;
                assert_eq!(
                    full_scan(&db)
                        .await
                        .with_context(|| format!("step {step}: after reopen"))?,
                    model_pairs(&model, wall.unix_millis()),
                    "step {step}: after reopen"
                );
            }
        }
    }
    assert_eq!(
        full_scan(&db).await?,
        model_pairs(&model, wall.unix_millis()),
        "at the end"
    );
    for (snap, m) in &snapshots {
        let got = to_pairs(
            snap.scan::<&[u8]>(..)
                .context("snapshot scan at the end")?
                .collect(usize::MAX)
                .await
                .context("snapshot scan at the end")?,
        );
        assert_eq!(
            got,
            model_pairs(m, wall.unix_millis()),
            "snapshot at the end"
        );
    }
    drop(snapshots);
    db.close().await.context("close at the end")?;
    // Everything is durable after close.
    let db = open(&store, true, &wall)
        .await
        .context("the final reopen")?;
    assert_eq!(
        full_scan(&db).await?,
        model_pairs(&model, wall.unix_millis()),
        "after the final reopen"
    );
    db.close().await.context("close after the final reopen")?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        rng_seed: RngSeed::Fixed(0x5117_a0de_u64),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn db_matches_btreemap_model(ops in prop::collection::vec(op_strategy(), 1..300)) {
        // Paused time: the WAL's linger and PUT-budget waits cost no wall-clock time, and
        // tokio advances the clock only when every task waits on a timer.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .map_err(|e| TestCaseError::fail(format!("building the runtime: {e}")))?;
        rt.block_on(run(ops)).map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
    }
}
