//! [`FaultStore`]: a [`Layered`] store whose [`Faults`] layer injects object-store faults,
//! seeded and per request kind, to test that the engine rides them out.
//!
//! It sits between the instrumented layer and the latency layer (see the
//! [`objstore`](super) module docs), so the metrics count injected failures as the engine
//! sees them.
//!
//! Every injected error is a transient [`object_store::Error::Generic`] whose text names the
//! fault (`injected 503 SlowDown`, `injected connection refused`, ...), so the engine's
//! retry classification reads a throttling, connection, timeout or server cause from it
//! (the text names the request kind, not the path, whose digits could read as a status).
//! What a [`FaultSpec`] can inject, decided when the request is issued:
//!
//! * an error rate per request group (`get`: whole and ranged GETs and HEADs; `put`: every
//!   PUT, conditional or not, and every multipart request; `list`; `delete`; `all` for
//!   every request, COPY and RENAME included, unless its group has its own rate): the
//!   request fails without reaching the store;
//! * `lost`: a PUT (plain, conditional, or a multipart completion) reaches the store, which
//!   applies it, and its success is then reported as a failure (the response was lost);
//! * `timeout`: the request waits (30 s, or the duration given) and then fails with an
//!   injected timeout, without reaching the store;
//! * `spike`: extra latency before a fraction of the requests;
//! * `outage`: every request issued while `START <= t < START + DUR` fails, `t` measured on
//!   tokio's clock from when the store was created.
//!
//! Waits are [`tokio::time::sleep`]s, so paused-time tests see them exactly.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::latency::{parse_duration, FmtDuration};
use super::layer::{Layer, Layered, Reply, Request, RequestKind};

/// Seed of [`FaultStore::new`], so runs are reproducible.
pub const DEFAULT_SEED: u64 = 0xfa17_5eed;

/// How long an injected timeout waits when the spec gives no duration.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Texts of injected errors, one drawn at random per fault.
const ERRORS: [&str; 4] = [
    "injected 503 SlowDown",
    "injected 500 Internal Server Error",
    "injected connection refused",
    "injected connection reset by peer",
];

/// Request groups with an error rate of their own.
const GROUPS: [&str; 4] = ["get", "put", "list", "delete"];

fn group(kind: RequestKind) -> Option<usize> {
    use RequestKind as K;
    match kind {
        K::Get | K::GetRange | K::Head => Some(0),
        K::Put
        | K::PutConditional
        | K::MultipartInit
        | K::MultipartPart
        | K::MultipartComplete
        | K::MultipartAbort => Some(1),
        K::List => Some(2),
        K::Delete => Some(3),
        K::Copy | K::Rename => None,
    }
}

/// Whether a `lost` fault can hit this request: it writes an object when it succeeds.
fn can_lose(kind: RequestKind) -> bool {
    matches!(
        kind,
        RequestKind::Put | RequestKind::PutConditional | RequestKind::MultipartComplete
    )
}

/// Which faults a [`FaultStore`] injects, and how often.
///
/// Written as comma-separated `KEY=VALUE` items, each key at most once, e.g.
/// `put=0.05,get=0.02,lost=0.01,outage=10s@30s`:
///
/// | key | value | fault |
/// |---|---|---|
/// | `all`, `get`, `put`, `list`, `delete` | probability `P` in `0..=1` | the request fails (a group's own rate overrides `all`) |
/// | `lost` | `P` | a PUT is applied, then reported failed |
/// | `timeout` | `P` or `P:DUR` | the request waits `DUR` (default 30 s), then fails |
/// | `spike` | `P:DUR` | `DUR` of extra latency before the request |
/// | `outage` | `DUR@START` | every request fails while `START <= t < START+DUR` |
/// | `seed` | an integer | seeds the fault rng (default [`DEFAULT_SEED`]), so each run of a chaos test draws its own faults, reproducibly |
///
/// Durations are written as for [`LatencySpec`](super::LatencySpec) (`500ms`, `10s`).
/// `Display` prints the form `FromStr` reads back.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultSpec {
    all: Option<f64>,
    groups: [Option<f64>; GROUPS.len()],
    lost: f64,
    timeout: Option<(f64, Duration)>,
    spike: Option<(f64, Duration)>,
    outage: Option<(Duration, Duration)>,
    seed: Option<u64>,
}

impl FaultSpec {
    /// The rng seed: the `seed` item, or [`DEFAULT_SEED`].
    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(DEFAULT_SEED)
    }

    /// Probability that a request of `kind` fails outright.
    pub fn error_rate(&self, kind: RequestKind) -> f64 {
        group(kind)
            .and_then(|g| self.groups[g])
            .or(self.all)
            .unwrap_or(0.0)
    }

    /// Probability that a PUT's success is reported as a failure.
    pub fn lost_rate(&self) -> f64 {
        self.lost
    }

    /// The outage window `(start, end)`, from when the store is created.
    pub fn outage(&self) -> Option<(Duration, Duration)> {
        self.outage.map(|(dur, start)| (start, start + dur))
    }

    /// Whether this never injects anything.
    pub fn is_empty(&self) -> bool {
        FaultSpec {
            seed: None,
            ..*self
        } == FaultSpec::default()
    }
}

/// Why a [`FaultSpec`] did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid store faults {input:?}: {reason} (expected e.g. `put=0.05,get=0.02,lost=0.01,outage=10s@30s`)"
)]
pub struct ParseFaultError {
    input: String,
    reason: String,
}

impl ParseFaultError {
    /// What was wrong with the input.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

fn parse_rate(key: &str, s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{key}: {s:?} is not a probability"))?;
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("{key}: {s:?} is not a probability in 0..=1"));
    }
    Ok(p)
}

fn parse_dur(key: &str, s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| format!("{key}: {e}"))
}

/// `P:DUR`, or `P` alone when `default` is given.
fn parse_rate_dur(
    key: &str,
    s: &str,
    default: Option<Duration>,
) -> Result<(f64, Duration), String> {
    match (s.split_once(':'), default) {
        (Some((p, d)), _) => Ok((parse_rate(key, p)?, parse_dur(key, d)?)),
        (None, Some(d)) => Ok((parse_rate(key, s)?, d)),
        (None, None) => Err(format!("{key}: write `P:DUR`, e.g. `{key}=0.01:2s`")),
    }
}

impl FromStr for FaultSpec {
    type Err = ParseFaultError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ParseFaultError {
            input: s.to_string(),
            reason,
        };
        if s.trim().is_empty() {
            return Err(err("no faults given".into()));
        }
        let mut spec = FaultSpec::default();
        let mut seen: Vec<&str> = Vec::new();
        for item in s.split(',') {
            let item = item.trim();
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| err(format!("{item:?} is not KEY=VALUE")))?;
            let key = key.trim();
            if seen.contains(&key) {
                return Err(err(format!("{key} given twice")));
            }
            seen.push(key);
            match key {
                "all" => spec.all = Some(parse_rate(key, value).map_err(err)?),
                "lost" => spec.lost = parse_rate(key, value).map_err(err)?,
                "timeout" => {
                    spec.timeout =
                        Some(parse_rate_dur(key, value, Some(DEFAULT_TIMEOUT)).map_err(err)?);
                }
                "spike" => spec.spike = Some(parse_rate_dur(key, value, None).map_err(err)?),
                "outage" => {
                    let (dur, start) = value.split_once('@').ok_or_else(|| {
                        err("outage: write `DUR@START`, e.g. `outage=10s@30s`".into())
                    })?;
                    let dur = parse_dur(key, dur).map_err(err)?;
                    let start = parse_dur(key, start).map_err(err)?;
                    spec.outage = Some((dur, start));
                }
                "seed" => {
                    spec.seed =
                        Some(value.trim().parse().map_err(|_| {
                            err(format!("seed: {value:?} is not an unsigned integer"))
                        })?);
                }
                _ => match GROUPS.iter().position(|g| *g == key) {
                    Some(g) => spec.groups[g] = Some(parse_rate(key, value).map_err(err)?),
                    None => {
                        return Err(err(format!(
                            "unknown key {key:?} (use all, get, put, list, delete, lost, \
                             timeout, spike, outage or seed)"
                        )))
                    }
                },
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for FaultSpec {
    /// The form [`FromStr`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items: Vec<String> = Vec::new();
        if let Some(p) = self.all {
            items.push(format!("all={p}"));
        }
        for (name, p) in GROUPS.iter().zip(self.groups) {
            if let Some(p) = p {
                items.push(format!("{name}={p}"));
            }
        }
        if self.lost > 0.0 {
            items.push(format!("lost={}", self.lost));
        }
        if let Some((p, d)) = self.timeout {
            items.push(format!("timeout={p}:{}", FmtDuration(d)));
        }
        if let Some((p, d)) = self.spike {
            items.push(format!("spike={p}:{}", FmtDuration(d)));
        }
        if let Some((dur, start)) = self.outage {
            items.push(format!(
                "outage={}@{}",
                FmtDuration(dur),
                FmtDuration(start)
            ));
        }
        if let Some(seed) = self.seed {
            items.push(format!("seed={seed}"));
        }
        if items.is_empty() {
            // What `FromStr` reads as "nothing injected".
            return f.write_str("all=0");
        }
        f.write_str(&items.join(","))
    }
}

crate::metric::snapshot! {
    /// [`FaultCounters`] at one moment (see
    /// [`Metrics::store_faults`](crate::Metrics::store_faults)).
    pub struct FaultSnapshot;
    /// Faults a [`FaultStore`] injected so far, by kind.
    cells pub struct FaultCounters;
    {
        /// Requests failed by an error rate.
        errors: Counter "silt_store_faults_errors",
        /// PUTs applied and then reported failed.
        lost: Counter "silt_store_faults_lost",
        /// Requests that waited and then failed with a timeout.
        timeouts: Counter "silt_store_faults_timeouts",
        /// Requests delayed by a latency spike.
        spikes: Counter "silt_store_faults_spikes",
        /// Requests failed by the outage window.
        outage: Counter "silt_store_faults_outage",
    }
}

fn injected(text: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "FaultStore",
        source: text.into(),
    }
}

/// The [`Layer`] of a [`FaultStore`]: the spec, the rng its draws come from, when it was
/// created and what it injected.
pub struct Faults {
    spec: FaultSpec,
    rng: Mutex<StdRng>,
    created: Instant,
    counters: Arc<FaultCounters>,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faults")
            .field("spec", &self.spec)
            .field("injected", &self.counters.snapshot())
            .finish_non_exhaustive()
    }
}

/// What [`Faults::before`] decided for a request.
enum Fate {
    /// Fail now with this error.
    Fail(object_store::Error),
    /// Wait, then fail with a timeout.
    TimeOut(Duration),
    /// Wait this long (maybe zero), then go on; `lost` says whether the reply is lost.
    Go { delay: Duration, lost: bool },
}

impl Faults {
    fn decide(&self, req: &Request) -> Fate {
        let spec = &self.spec;
        let mut rng = self.rng.lock();
        let error = |rng: &mut StdRng, what: &str| {
            let text = ERRORS[rng.random_range(0..ERRORS.len())];
            injected(format!("{text} ({what}, {})", req.kind))
        };
        if let Some((start, end)) = spec.outage() {
            let t = self.created.elapsed();
            if start <= t && t < end {
                self.counters.outage.incr();
                return Fate::Fail(error(&mut rng, "outage"));
            }
        }
        let p = spec.error_rate(req.kind);
        if p > 0.0 && rng.random::<f64>() < p {
            self.counters.errors.incr();
            return Fate::Fail(error(&mut rng, "error rate"));
        }
        if let Some((p, d)) = spec.timeout {
            if p > 0.0 && rng.random::<f64>() < p {
                self.counters.timeouts.incr();
                return Fate::TimeOut(d);
            }
        }
        let mut delay = Duration::ZERO;
        if let Some((p, d)) = spec.spike {
            if p > 0.0 && rng.random::<f64>() < p {
                self.counters.spikes.incr();
                delay = d;
            }
        }
        let lost = can_lose(req.kind) && spec.lost > 0.0 && rng.random::<f64>() < spec.lost;
        Fate::Go { delay, lost }
    }
}

impl Layer for Faults {
    const NAME: &'static str = "FaultStore";
    /// Whether the reply is to be lost.
    type Ticket = bool;

    fn fmt_store(&self, inner: &dyn ObjectStore, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faults({}, {inner})", self.spec)
    }

    /// Decides the request's fate when it is issued, then waits or fails as decided.
    fn before(
        &self,
        req: &Request,
    ) -> (
        bool,
        impl Future<Output = object_store::Result<()>> + Send + 'static,
    ) {
        let fate = self.decide(req);
        let lost = matches!(fate, Fate::Go { lost: true, .. });
        let what = req.kind;
        (lost, async move {
            match fate {
                Fate::Fail(e) => Err(e),
                Fate::TimeOut(d) => {
                    tokio::time::sleep(d).await;
                    Err(injected(format!(
                        "injected timeout: no answer in {} ({what})",
                        FmtDuration(d)
                    )))
                }
                Fate::Go { delay, .. } => {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    Ok(())
                }
            }
        })
    }

    /// Replaces a lost request's success with an error (the store applied it).
    fn after<T: Reply>(
        &self,
        req: &Request,
        lost: bool,
        result: object_store::Result<T>,
    ) -> object_store::Result<T> {
        match result {
            Ok(_) if lost => {
                self.counters.lost.incr();
                let i = self.rng.lock().random_range(0..ERRORS.len());
                Err(injected(format!(
                    "{} (response lost, {})",
                    ERRORS[i], req.kind
                )))
            }
            r => r,
        }
    }
}

/// Injects the faults of a [`FaultSpec`] into the requests to the inner store.
pub type FaultStore = Layered<Faults>;

impl FaultStore {
    /// Inject `spec` into every request to `inner`, drawing from the spec's seed
    /// ([`DEFAULT_SEED`] unless it has a `seed` item).
    pub fn new(inner: Arc<dyn ObjectStore>, spec: FaultSpec) -> Self {
        Self::with_seed(inner, spec, spec.seed())
    }

    /// As [`FaultStore::new`], with the rng seeded by `seed`. The outage window is timed
    /// from now, on tokio's clock.
    #[expect(
        clippy::disallowed_methods,
        reason = "outage windows are on tokio's clock, which paused-time tests control; the \
                  store has no `Clock` (it sits below the engine)"
    )]
    pub fn with_seed(inner: Arc<dyn ObjectStore>, spec: FaultSpec, seed: u64) -> Self {
        Layered::with_layer(
            inner,
            Faults {
                spec,
                rng: Mutex::new(StdRng::seed_from_u64(seed)),
                created: Instant::now(),
                counters: Arc::default(),
            },
        )
    }

    /// The faults injected.
    pub fn spec(&self) -> FaultSpec {
        self.layer().spec
    }

    /// What was injected so far.
    pub fn counters(&self) -> Arc<FaultCounters> {
        Arc::clone(&self.layer().counters)
    }
}

#[cfg(test)]
#[path = "faults_tests.rs"]
mod tests;
