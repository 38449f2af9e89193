//! The object-store wrappers: exact request/byte accounting of `InstrumentedStore`,
//! injected delays of `LatencyStore` (in paused time), `LatencySpec` parsing, and a `Db`
//! running through the whole stack.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};
use silt::objstore::{
    wrap, InstrumentedStore, LatencySpec, LatencyStore, RequestKind, StoreMetricsSnapshot,
};
use silt::{Db, Settings};
use tokio::time::Instant;

fn mem() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}

fn payload(n: usize) -> PutPayload {
    PutPayload::from(vec![7u8; n])
}

fn create() -> PutOptions {
    PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test]
async fn counts_and_bytes_are_exact() -> Result<()> {
    let (store, metrics) = wrap(mem(), None, None);
    let a = Path::from("db/a");
    let wal = Path::from("db/wal/00000000000000000001.wal");
    let sst = Path::from("db/sst/01J.sst");

    // PUTs: plain, create-only (won, then lost), versioned update.
    let first = store
        .put(&a, payload(100))
        .await
        .with_context(|| format!("put {a}"))?;
    store
        .put_opts(&wal, payload(10), create())
        .await
        .with_context(|| format!("put_opts {wal}"))?;
    let lost = store.put_opts(&wal, payload(10), create()).await;
    assert!(matches!(
        lost,
        Err(object_store::Error::AlreadyExists { .. })
    ));
    let update = PutOptions {
        mode: PutMode::Update(UpdateVersion::from(first)),
        ..PutOptions::default()
    };
    store
        .put_opts(&a, payload(50), update)
        .await
        .with_context(|| format!("put_opts {a}"))?;
    store
        .put(&sst, payload(1000))
        .await
        .with_context(|| format!("put {sst}"))?;

    // GETs: whole, ranged, several ranges, HEAD, a missing object.
    assert_eq!(
        store
            .get(&a)
            .await
            .with_context(|| format!("get {a}"))?
            .bytes()
            .await
            .context("reading the body")?
            .len(),
        50
    );
    assert_eq!(
        store
            .get_range(&sst, 10..30)
            .await
            .with_context(|| format!("get_range {sst}"))?
            .len(),
        20
    );
    let parts = store
        .get_ranges(&sst, &[0..5, 100..150])
        .await
        .with_context(|| format!("get_ranges {sst}"))?;
    assert_eq!(parts.iter().map(silt::Bytes::len).sum::<usize>(), 55);
    let ranged = GetOptions::new().with_range(Some(900..1000));
    let r = store
        .get_opts(&sst, ranged)
        .await
        .with_context(|| format!("get_opts {sst}"))?;
    assert_eq!(r.bytes().await.context("reading the body")?.len(), 100);
    assert_eq!(
        store
            .head(&sst)
            .await
            .with_context(|| format!("head {sst}"))?
            .size,
        1000
    );
    assert!(store.get(&Path::from("db/nope")).await.is_err());

    // LISTs, COPY, DELETEs.
    let listed: Vec<_> = store
        .list(Some(&Path::from("db")))
        .try_collect()
        .await
        .context("list")?;
    assert_eq!(listed.len(), 3);
    let dirs = store
        .list_with_delimiter(Some(&Path::from("db")))
        .await
        .context("list_with_delimiter db")?;
    assert_eq!(dirs.common_prefixes.len(), 2);
    let b = Path::from("db/b");
    store
        .copy(&a, &b)
        .await
        .with_context(|| format!("copy {a}"))?;
    store
        .delete(&b)
        .await
        .with_context(|| format!("delete {b}"))?;
    let gone: Vec<_> = store
        .delete_stream(futures::stream::iter(vec![Ok(a.clone()), Ok(wal.clone())]).boxed())
        .try_collect()
        .await
        .context("delete_stream")?;
    assert_eq!(gone.len(), 2);

    // Multipart: two parts and a completion.
    let big = Path::from("db/big");
    let mut up = store
        .put_multipart(&big)
        .await
        .with_context(|| format!("put_multipart {big}"))?;
    up.put_part(payload(10)).await.context("the first part")?;
    up.put_part(payload(20)).await.context("the second part")?;
    up.complete()
        .await
        .context("complete the multipart upload")?;

    let s = metrics.snapshot();
    let want = StoreMetricsSnapshot {
        gets: 2,
        get_ranges: 4,
        heads: 1,
        puts: 2,
        put_conditionals: 3,
        put_conditional_conflicts: 1,
        lists: 2,
        deletes: 3,
        copies: 1,
        renames: 0,
        multipart_inits: 1,
        multipart_parts: 2,
        multipart_completes: 1,
        multipart_aborts: 0,
        errors: 2, // the lost create and the missing GET
        bytes_read: 50 + 20 + 55 + 100,
        bytes_written: 100 + 10 + 10 + 50 + 1000 + 10 + 20,
        wal_puts: 2,
        wal_bytes: 20,
        sst_gets: 4,
        latency: s.latency.clone(),
    };
    assert_eq!(s, want);
    assert_eq!(s.requests(), 22);

    // One latency sample per call (get_ranges is one call for two ranges; delete_stream
    // one call for two deletes).
    let samples = |k: RequestKind| s.latency.get(k.name()).map_or(0, |l| l.count);
    assert_eq!(samples(RequestKind::Get), 2);
    assert_eq!(samples(RequestKind::GetRange), 3);
    assert_eq!(samples(RequestKind::Head), 1);
    assert_eq!(samples(RequestKind::Put), 2);
    assert_eq!(samples(RequestKind::PutConditional), 3);
    assert_eq!(samples(RequestKind::List), 2);
    assert_eq!(samples(RequestKind::Delete), 2);
    assert_eq!(samples(RequestKind::MultipartPart), 2);
    assert_eq!(samples(RequestKind::MultipartComplete), 1);
    assert!(!s.latency.contains_key("rename"));
    assert_eq!(metrics.requests(RequestKind::PutConditional), 3);

    // The snapshot serializes with the documented field names.
    let json = serde_json::to_value(&s).context("serializing the snapshot")?;
    for field in [
        "wal_puts",
        "wal_bytes",
        "sst_gets",
        "bytes_read",
        "put_conditionals",
    ] {
        assert!(json.get(field).is_some(), "{field} missing from {json}");
    }
    assert!(json["latency"]["get"]["p99_us"].is_u64());
    Ok(())
}

#[tokio::test]
async fn bytes_read_count_what_is_consumed() -> Result<()> {
    let (store, metrics) = wrap(mem(), None, None);
    let p = Path::from("x");
    store
        .put(&p, payload(1000))
        .await
        .with_context(|| format!("put {p}"))?;
    let r = store.get(&p).await.with_context(|| format!("get {p}"))?;
    // Dropped unread: the GET counts, its bytes do not.
    drop(r);
    let s = metrics.snapshot();
    assert_eq!((s.gets, s.bytes_read, s.latency["get"].count), (1, 0, 1));
    let mut stream = store
        .get(&p)
        .await
        .with_context(|| format!("get {p}"))?
        .into_stream();
    let first = stream
        .next()
        .await
        .context("the GET stream is empty")?
        .context("reading the first chunk")?;
    assert_eq!(metrics.snapshot().bytes_read, first.len() as u64);
    Ok(())
}

#[tokio::test]
async fn local_file_payloads_count_their_range() -> Result<()> {
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let local = object_store::local::LocalFileSystem::new_with_prefix(dir.path())
        .with_context(|| format!("LocalFileSystem at {}", dir.path().display()))?;
    let (store, metrics) = wrap(Arc::new(local), None, None);
    let p = Path::from("sst/f.sst");
    store
        .put(&p, payload(300))
        .await
        .with_context(|| format!("put {p}"))?;
    assert_eq!(
        store
            .get(&p)
            .await
            .with_context(|| format!("get {p}"))?
            .bytes()
            .await
            .context("reading the body")?
            .len(),
        300
    );
    assert_eq!(
        store
            .get_range(&p, 0..10)
            .await
            .with_context(|| format!("get_range {p}"))?
            .len(),
        10
    );
    let s = metrics.snapshot();
    assert_eq!(
        (s.gets, s.get_ranges, s.sst_gets, s.bytes_read),
        (1, 1, 2, 310)
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn fixed_latency_is_exact_and_seen_by_the_instrumented_layer() -> Result<()> {
    let spec: LatencySpec = "50ms".parse()?;
    let (store, metrics) = wrap(mem(), Some(spec), None);
    assert_eq!(store.to_string(), "Instrumented(Latency(50ms, InMemory))");
    let p = Path::from("k");

    let t = Instant::now();
    store
        .put(&p, payload(5))
        .await
        .with_context(|| format!("put {p}"))?;
    assert_eq!(t.elapsed(), ms(50));

    let t = Instant::now();
    store
        .get(&p)
        .await
        .with_context(|| format!("get {p}"))?
        .bytes()
        .await
        .context("reading the body")?;
    assert_eq!(t.elapsed(), ms(50));

    let t = Instant::now();
    store.head(&p).await.with_context(|| format!("head {p}"))?;
    store
        .get_ranges(&p, &[0..1, 2..3])
        .await
        .with_context(|| format!("get_ranges {p}"))?;
    assert_eq!(t.elapsed(), ms(100));

    // A list waits once, before its stream starts.
    let t = Instant::now();
    let listed: Vec<_> = store.list(None).try_collect().await.context("list")?;
    assert_eq!(listed.len(), 1);
    assert_eq!(t.elapsed(), ms(50));
    let t = Instant::now();
    store
        .list_with_delimiter(None)
        .await
        .context("list_with_delimiter")?;
    assert_eq!(t.elapsed(), ms(50));

    // Multipart: the start, each part and the completion.
    let t = Instant::now();
    let mut up = store
        .put_multipart(&Path::from("m"))
        .await
        .context("put_multipart m")?;
    up.put_part(payload(3)).await.context("the first part")?;
    up.put_part(payload(3)).await.context("the second part")?;
    up.complete()
        .await
        .context("complete the multipart upload")?;
    assert_eq!(t.elapsed(), ms(200));

    let t = Instant::now();
    store
        .copy(&p, &Path::from("k2"))
        .await
        .with_context(|| format!("copy {p}"))?;
    store
        .delete(&p)
        .await
        .with_context(|| format!("delete {p}"))?;
    assert_eq!(t.elapsed(), ms(100));

    let s = metrics.snapshot();
    for (kind, l) in &s.latency {
        assert_eq!(
            (l.p50_us, l.p99_us, l.max_us),
            (50_000, 50_000, 50_000),
            "{kind}"
        );
    }
    assert_eq!(s.latency["put"].count, 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn zero_latency_adds_nothing() -> Result<()> {
    let store = LatencyStore::new(mem(), LatencySpec::ZERO);
    let t = Instant::now();
    store
        .put(&Path::from("k"), payload(1))
        .await
        .context("put k")?;
    store.get(&Path::from("k")).await.context("get k")?;
    assert_eq!(t.elapsed(), Duration::ZERO);
    // `wrap` leaves a zero latency layer out altogether.
    let (wrapped, _) = wrap(mem(), Some(LatencySpec::ZERO), None);
    assert_eq!(wrapped.to_string(), "Instrumented(InMemory)");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn jitter_stays_inside_the_range() -> Result<()> {
    let spec: LatencySpec = "20ms..80ms".parse()?;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let store = LatencyStore::with_seed(mem(), spec, 42);
        let mut delays = Vec::new();
        for i in 0..200 {
            let t = Instant::now();
            store
                .put(&Path::from(format!("k{i}")), payload(1))
                .await
                .with_context(|| format!("put k{i}"))?;
            let d = t.elapsed();
            assert!((ms(20)..=ms(80)).contains(&d), "{d:?} outside 20ms..80ms");
            delays.push(d);
        }
        seen.push(delays);
    }
    // Seeded: reproducible.
    assert_eq!(seen[0], seen[1]);
    // And actually jittered across the range.
    let (lo, hi) = (
        seen[0].iter().min().context("no delays")?,
        seen[0].iter().max().context("no delays")?,
    );
    assert!(*lo < ms(30) && *hi > ms(70), "{lo:?}..{hi:?}");

    // Jitter on a list, through the instrumented layer.
    let (store, metrics) = wrap(mem(), Some(spec), None);
    for _ in 0..20 {
        let _: Vec<_> = store.list(None).try_collect().await.context("list")?;
    }
    let l = metrics.snapshot().latency["list"];
    assert_eq!(l.count, 20);
    assert!(l.max_us <= 80_000 && l.p50_us >= 20_000, "{l:?}");
    Ok(())
}

#[test]
fn latency_spec_parses_good_inputs() {
    let cases = [
        ("0", LatencySpec::ZERO, "0"),
        ("0ms", LatencySpec::ZERO, "0"),
        ("50ms", LatencySpec::Fixed(ms(50)), "50ms"),
        (" 2s ", LatencySpec::Fixed(Duration::from_secs(2)), "2s"),
        (
            "250us",
            LatencySpec::Fixed(Duration::from_micros(250)),
            "250us",
        ),
        (
            "10µs",
            LatencySpec::Fixed(Duration::from_micros(10)),
            "10us",
        ),
        ("7ns", LatencySpec::Fixed(Duration::from_nanos(7)), "7ns"),
        (
            "1.5ms",
            LatencySpec::Fixed(Duration::from_micros(1500)),
            "1500us",
        ),
        ("1000ms", LatencySpec::Fixed(Duration::from_secs(1)), "1s"),
        (
            "20ms..80ms",
            LatencySpec::Uniform {
                min: ms(20),
                max: ms(80),
            },
            "20ms..80ms",
        ),
        (
            "0..1s",
            LatencySpec::Uniform {
                min: Duration::ZERO,
                max: Duration::from_secs(1),
            },
            "0..1s",
        ),
        (
            "5ms..5ms",
            LatencySpec::Uniform {
                min: ms(5),
                max: ms(5),
            },
            "5ms..5ms",
        ),
    ];
    for (input, want, shown) in cases {
        let got: LatencySpec = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(got, want, "{input}");
        assert_eq!(got.to_string(), shown, "{input}");
        assert_eq!(
            shown.parse::<LatencySpec>().unwrap(),
            got,
            "round trip {shown}"
        );
    }
    assert!(LatencySpec::ZERO.is_zero());
    assert!(!"0..1ms".parse::<LatencySpec>().unwrap().is_zero());
}

#[test]
fn latency_spec_rejects_bad_inputs() {
    let cases = [
        ("", "empty duration"),
        ("abc", "does not start with a number"),
        ("50", "no unit"),
        ("5h", "unknown unit"),
        ("5 parsecs", "unknown unit"),
        ("-5ms", "does not start with a number"),
        ("1.2.3ms", "not a number"),
        ("0.5ns", "finer than a nanosecond"),
        ("80ms..20ms", "range start 80ms is above its end 20ms"),
        ("..5ms", "range start: empty duration"),
        ("5ms..", "range end: empty duration"),
        ("20ms..=80ms", "MIN..MAX"),
        ("1ms..2ms..3ms", "range end"),
        ("99999999999999999999s", "too large"),
    ];
    for (input, reason) in cases {
        let e = input
            .parse::<LatencySpec>()
            .expect_err(&format!("{input:?} should not parse"));
        let msg = e.to_string();
        assert!(msg.contains(reason), "{input:?}: {msg}");
        assert!(msg.contains("expected e.g."), "{input:?}: {msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_runs_through_the_wrappers() -> Result<()> {
    let base = mem();
    let (store, metrics) = wrap(Arc::clone(&base), Some("1ms".parse()?), None);
    let db = Db::open_with_store(store, Path::from("db"), Settings::small_for_tests())
        .await
        .context("open")?;
    for i in 0..50 {
        db.put(format!("k{i:03}"), vec![b'v'; 200])
            .await
            .with_context(|| format!("put k{i:03}"))?;
    }
    db.flush_memtables().await.context("flush_memtables")?;
    assert_eq!(
        db.get("k007")
            .await
            .context("get k007")?
            .context("k007 missing")?
            .len(),
        200
    );
    db.close().await.context("close")?;

    let s = metrics.snapshot();
    assert!(s.wal_puts >= 1, "{s:?}");
    assert!(s.wal_bytes >= 50 * 200, "{s:?}");
    // WAL segments and manifests are written create-only.
    assert!(s.put_conditionals >= s.wal_puts, "{s:?}");
    assert!(s.bytes_written >= s.wal_bytes, "{s:?}");
    assert!(s.lists >= 1, "{s:?}");
    assert!(s.latency["put_conditional"].p50_us >= 1_000, "{s:?}");

    // Reopen through a fresh stack (no latency) and read back from the SSTs.
    let (store, metrics) = wrap(base, None, None);
    let db = Db::open_with_store(store, Path::from("db"), Settings::small_for_tests())
        .await
        .context("reopen without latency")?;
    for i in 0..50 {
        assert_eq!(
            db.get(format!("k{i:03}"))
                .await
                .with_context(|| format!("get k{i:03}"))?
                .with_context(|| format!("k{i:03} missing"))?
                .len(),
            200
        );
    }
    db.close().await.context("close")?;
    let s = metrics.snapshot();
    assert!(s.gets + s.get_ranges >= 1, "{s:?}");
    assert!(s.sst_gets >= 1, "{s:?}");
    assert!(s.bytes_read > 0, "{s:?}");
    Ok(())
}

#[test]
fn wrappers_display_and_debug() {
    let inst = InstrumentedStore::new(Arc::new(LatencyStore::new(
        mem(),
        "1ms..2ms".parse().unwrap(),
    )));
    assert_eq!(
        inst.to_string(),
        "Instrumented(Latency(1ms..2ms, InMemory))"
    );
    let dbg = format!("{inst:?}");
    assert!(
        dbg.contains("InstrumentedStore") && dbg.contains("LatencyStore"),
        "{dbg}"
    );
    assert_eq!(inst.metrics().snapshot(), StoreMetricsSnapshot::default());
}
