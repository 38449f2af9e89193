//! [`FaultStore`]: the spec parser, and each fault injected as configured on paused time.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::*;
use crate::objstore::retries::Cause;

fn spec(s: &str) -> FaultSpec {
    s.parse().unwrap()
}

fn mem() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}

fn reason(s: &str) -> String {
    s.parse::<FaultSpec>().unwrap_err().reason().to_string()
}

#[test]
fn specs_parse_and_print_back() {
    let s = spec("put=0.05,get=0.02,lost=0.01,outage=10s@30s");
    assert_eq!(s.error_rate(RequestKind::Put), 0.05);
    assert_eq!(s.error_rate(RequestKind::MultipartPart), 0.05);
    assert_eq!(s.error_rate(RequestKind::PutConditional), 0.05);
    assert_eq!(s.error_rate(RequestKind::Head), 0.02);
    assert_eq!(s.error_rate(RequestKind::GetRange), 0.02);
    assert_eq!(s.error_rate(RequestKind::List), 0.0);
    assert_eq!(s.lost_rate(), 0.01);
    assert_eq!(
        s.outage(),
        Some((Duration::from_secs(30), Duration::from_secs(40)))
    );
    // A group's own rate overrides `all`; COPY only has `all`.
    let s = spec("all=0.1,delete=0.5");
    assert_eq!(s.error_rate(RequestKind::Delete), 0.5);
    assert_eq!(s.error_rate(RequestKind::List), 0.1);
    assert_eq!(s.error_rate(RequestKind::Copy), 0.1);
    assert!(!s.is_empty());

    for text in [
        "put=0.05,get=0.02,lost=0.01,outage=10s@30s",
        "all=0.05,lost=0.02",
        "all=1,get=0,put=0.5,list=0.25,delete=0.125,lost=0.001,timeout=0.01:2s,spike=0.1:150ms,outage=1500ms@0",
        "timeout=0.5",
        "all=0.05,seed=42",
    ] {
        let s = spec(text);
        let shown = s.to_string();
        assert_eq!(spec(&shown), s, "{text} printed as {shown}");
    }
    assert_eq!(spec("timeout=0.5").to_string(), "timeout=0.5:30s");
    assert_eq!(
        spec(" put = 0.5 , lost=0.1").to_string(),
        "put=0.5,lost=0.1"
    );
}

#[test]
fn bad_specs_say_what_is_wrong() {
    assert!(reason("").contains("no faults"));
    assert!(reason("bogus=0.1").contains("unknown key \"bogus\""));
    assert!(reason("put").contains("not KEY=VALUE"));
    assert!(reason("put=1.5").contains("0..=1"));
    assert!(reason("put=-0.1").contains("0..=1"));
    assert!(reason("put=NaN").contains("0..=1"));
    assert!(reason("put=lots").contains("not a probability"));
    assert!(reason("put=0.1,put=0.2").contains("put given twice"));
    assert!(reason("spike=0.1").contains("P:DUR"));
    assert!(reason("spike=0.1:fast").starts_with("spike:"));
    assert!(reason("outage=10s").contains("DUR@START"));
    assert!(reason("outage=10s@soon").starts_with("outage:"));
    assert!(reason("seed=-1").contains("seed"));
    let e = "lost=2".parse::<FaultSpec>().unwrap_err().to_string();
    assert!(
        e.contains("\"lost=2\"") && e.contains("expected e.g."),
        "{e}"
    );
}

/// PUTs `n` objects one by one; which of them failed.
async fn put_n(store: &FaultStore, n: usize) -> Vec<usize> {
    let mut failed = Vec::new();
    for i in 0..n {
        let path = Path::from(format!("k/{i}"));
        if let Err(e) = store.put(&path, PutPayload::from_static(b"v")).await {
            assert!(e.to_string().contains("injected"), "{e}");
            failed.push(i);
        }
    }
    failed
}

#[tokio::test(start_paused = true)]
async fn error_rates_fail_about_the_configured_fraction_per_kind() {
    let faults = spec("put=0.05,get=0.2");
    let store = FaultStore::with_seed(mem(), faults, 7);
    let failed = put_n(&store, 1000).await;
    assert!(
        (20..=80).contains(&failed.len()),
        "{} of 1000 PUTs failed",
        failed.len()
    );
    // Failed PUTs never reached the store.
    let listed: Vec<_> = store.inner().list(None).try_collect().await.unwrap();
    assert_eq!(listed.len(), 1000 - failed.len());
    // Deterministic for the seed.
    let again = FaultStore::with_seed(mem(), faults, 7);
    assert_eq!(put_n(&again, 1000).await, failed);
    // A `seed` item seeds `FaultStore::new`; another seed draws other faults.
    let seeded = FaultStore::new(mem(), spec("put=0.05,get=0.2,seed=7"));
    assert_eq!(put_n(&seeded, 1000).await, failed);
    let other = FaultStore::new(mem(), spec("put=0.05,get=0.2,seed=8"));
    assert_ne!(put_n(&other, 1000).await, failed);
    assert!(spec("seed=3").is_empty(), "a seed alone injects nothing");

    let mut get_injected = 0;
    for i in 0..1000 {
        match store.head(&Path::from(format!("k/{i}"))).await {
            Err(e) if e.to_string().contains("injected") => get_injected += 1,
            _ => {}
        }
    }
    // HEAD is in the `get` group, at 20%.
    assert!(
        (150..=250).contains(&get_injected),
        "{get_injected} of 1000 HEADs failed"
    );
    // LIST has no rate.
    for _ in 0..100 {
        store.list(None).try_collect::<Vec<_>>().await.unwrap();
    }
    let c = store.counters().snapshot();
    assert_eq!(c.errors as usize, failed.len() + get_injected);
    assert_eq!(c.lost + c.timeouts + c.spikes + c.outage, 0);
}

#[tokio::test(start_paused = true)]
async fn injected_errors_read_as_transient_causes() {
    let store = FaultStore::with_seed(mem(), spec("all=1"), 1);
    let mut causes = std::collections::BTreeSet::new();
    for i in 0..50 {
        let e = store
            .get(&Path::from(format!("x/{i}")))
            .await
            .expect_err("all=1 fails every request");
        assert!(matches!(e, object_store::Error::Generic { .. }), "{e:?}");
        let c = Cause::of(&e);
        assert!(
            matches!(c, Cause::Throttled | Cause::Connection | Cause::Server),
            "{e}: {c:?}"
        );
        causes.insert(format!("{c:?}"));
    }
    assert!(causes.len() >= 2, "one cause only: {causes:?}");
}

#[tokio::test(start_paused = true)]
async fn lost_puts_are_in_the_store_although_the_caller_got_an_error() {
    let store = FaultStore::with_seed(mem(), spec("lost=0.2"), 3);
    let failed = put_n(&store, 500).await;
    assert!((50..=150).contains(&failed.len()), "{}", failed.len());
    for i in &failed {
        let got = store.inner().get(&Path::from(format!("k/{i}"))).await;
        assert_eq!(got.unwrap().bytes().await.unwrap().as_ref(), b"v", "k/{i}");
    }
    assert_eq!(store.counters().snapshot().lost as usize, failed.len());
    // GETs are never lost.
    for i in 0..100 {
        store
            .get(&Path::from(format!("k/{i}")))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn an_outage_fails_everything_inside_its_window_and_nothing_outside() {
    let store = FaultStore::with_seed(mem(), spec("outage=10s@30s"), 5);
    let start = tokio::time::Instant::now();
    let path = Path::from("o");
    let mut inside = 0;
    // One PUT, GET and LIST every 500 ms for a minute.
    while start.elapsed() < Duration::from_secs(60) {
        let t = start.elapsed();
        let down = Duration::from_secs(30) <= t && t < Duration::from_secs(40);
        let put = store.put(&path, PutPayload::from_static(b"v")).await;
        let get = store.get(&path).await;
        let list = store.list(None).try_collect::<Vec<_>>().await;
        let del = store.delete(&Path::from("gone")).await;
        if down {
            inside += 1;
            assert!(put.is_err() && get.is_err() && list.is_err(), "t={t:?}");
            assert!(del.unwrap_err().to_string().contains("outage"), "t={t:?}");
        } else {
            assert!(put.is_ok() && get.is_ok() && list.is_ok(), "t={t:?}");
            assert!(del.is_ok(), "t={t:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(inside, 20);
    assert_eq!(store.counters().snapshot().outage, 20 * 4);
}

#[tokio::test(start_paused = true)]
async fn timeouts_wait_then_fail_without_reaching_the_store() {
    let store = FaultStore::with_seed(mem(), spec("timeout=1:5s"), 9);
    let path = Path::from("t");
    let t0 = tokio::time::Instant::now();
    let e = store
        .put(&path, PutPayload::from_static(b"v"))
        .await
        .unwrap_err();
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
    assert_eq!(Cause::of(&e), Cause::Timeout, "{e}");
    assert!(
        store.inner().head(&path).await.is_err(),
        "reached the store"
    );
    assert_eq!(store.counters().snapshot().timeouts, 1);
}

#[tokio::test(start_paused = true)]
async fn spikes_delay_about_the_configured_fraction() {
    let store = FaultStore::with_seed(mem(), spec("spike=0.1:1s"), 11);
    let t0 = tokio::time::Instant::now();
    let failed = put_n(&store, 1000).await;
    assert!(failed.is_empty());
    let spikes = store.counters().snapshot().spikes;
    assert!((50..=150).contains(&spikes), "{spikes}");
    assert_eq!(t0.elapsed(), Duration::from_secs(spikes));
}
