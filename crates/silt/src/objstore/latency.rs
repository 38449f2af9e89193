//! [`LatencyStore`]: a [`Layered`] store whose [`Delay`] layer waits a configurable time
//! before each request, to run the engine against a local store as if it were remote.
//!
//! It belongs below the instrumented layer (see the [`objstore`](super) module docs and
//! [`wrap`](super::instrumented::wrap)), so the recorded latencies include the delay.
//!
//! The delay is a [`tokio::time::sleep`] in [`Layer::before`], so tests with paused time see
//! it exactly and without waiting. Every request is delayed once: GET, HEAD, PUT, COPY,
//! RENAME, `list_with_delimiter`, each `get_ranges` call, the start of a multipart upload
//! and each of its parts, completion and abort; `list`, `list_with_offset` and
//! `delete_stream` wait once before their stream starts. Each delay is drawn when its
//! request is issued.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::layer::{Layer, Layered, Request};

/// Seed of [`LatencyStore::new`], so runs are reproducible.
pub const DEFAULT_SEED: u64 = 0x5117_1a7e;

/// How long a [`LatencyStore`] waits before each request.
///
/// Written `0`, a duration such as `50ms` (units `ns`, `us`/`µs`, `ms`, `s`; decimals
/// allowed, as in `1.5ms`), or a range `20ms..80ms` for a delay drawn uniformly from the
/// inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencySpec {
    /// Always this long.
    Fixed(Duration),
    /// Uniformly distributed in `min..=max`.
    Uniform {
        /// Shortest delay.
        min: Duration,
        /// Longest delay.
        max: Duration,
    },
}

impl Default for LatencySpec {
    fn default() -> Self {
        LatencySpec::ZERO
    }
}

impl LatencySpec {
    /// No delay.
    pub const ZERO: LatencySpec = LatencySpec::Fixed(Duration::ZERO);

    /// Whether this never delays.
    pub fn is_zero(&self) -> bool {
        self.max() == Duration::ZERO
    }

    /// Shortest possible delay.
    pub fn min(&self) -> Duration {
        match *self {
            LatencySpec::Fixed(d) => d,
            LatencySpec::Uniform { min, .. } => min,
        }
    }

    /// Longest possible delay.
    pub fn max(&self) -> Duration {
        match *self {
            LatencySpec::Fixed(d) => d,
            LatencySpec::Uniform { max, .. } => max,
        }
    }

    /// Draw one delay.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        match *self {
            LatencySpec::Fixed(d) => d,
            LatencySpec::Uniform { min, max } => {
                let lo = nanos(min);
                let hi = nanos(max).max(lo);
                Duration::from_nanos(rng.random_range(lo..=hi))
            }
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Why a [`LatencySpec`] did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid latency {input:?}: {reason} (expected e.g. `0`, `50ms` or `20ms..80ms`)")]
pub struct ParseLatencyError {
    input: String,
    reason: String,
}

impl ParseLatencyError {
    /// What was wrong with the input.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl FromStr for LatencySpec {
    type Err = ParseLatencyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ParseLatencyError {
            input: s.to_string(),
            reason,
        };
        match s.split_once("..") {
            None => parse_duration(s).map(LatencySpec::Fixed).map_err(err),
            Some((lo, hi)) => {
                if hi.starts_with('=') {
                    return Err(err(
                        "write the range as `MIN..MAX` (both ends are included)".into(),
                    ));
                }
                let min = parse_duration(lo).map_err(|e| err(format!("range start: {e}")))?;
                let max = parse_duration(hi).map_err(|e| err(format!("range end: {e}")))?;
                if min > max {
                    return Err(err(format!(
                        "range start {} is above its end {}",
                        FmtDuration(min),
                        FmtDuration(max)
                    )));
                }
                Ok(LatencySpec::Uniform { min, max })
            }
        }
    }
}

/// Parse `0` or `<number><unit>`.
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let unit = unit.trim_start();
    if num.is_empty() {
        return Err(format!("{s:?} does not start with a number"));
    }
    let unit_ns: u128 = match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "" if num.contains('0') && num.chars().all(|c| c == '0' || c == '.') => 1,
        "" => return Err(format!("{s:?} has no unit (use ns, us, ms or s)")),
        other => return Err(format!("unknown unit {other:?} (use ns, us, ms or s)")),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(format!("{num:?} is not a number"));
    }
    let digits = format!("{int}{frac}");
    let mantissa: u128 = digits
        .parse()
        .map_err(|_| format!("{num:?} is too large"))?;
    let scale = 10u128
        .checked_pow(u32::try_from(frac.len()).unwrap_or(u32::MAX))
        .ok_or_else(|| format!("{num:?} has too many decimals"))?;
    let total = mantissa
        .checked_mul(unit_ns)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    if total % scale != 0 {
        return Err(format!("{s:?} is finer than a nanosecond"));
    }
    let ns = u64::try_from(total / scale).map_err(|_| format!("{s:?} is too large"))?;
    Ok(Duration::from_nanos(ns))
}

/// Formats a duration in the largest unit that keeps it exact (`0`, `1s`, `50ms`, `1500us`).
pub(super) struct FmtDuration(pub(super) Duration);

impl fmt::Display for FmtDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        if ns == 0 {
            f.write_str("0")
        } else if ns % 1_000_000_000 == 0 {
            write!(f, "{}s", ns / 1_000_000_000)
        } else if ns % 1_000_000 == 0 {
            write!(f, "{}ms", ns / 1_000_000)
        } else if ns % 1_000 == 0 {
            write!(f, "{}us", ns / 1_000)
        } else {
            write!(f, "{ns}ns")
        }
    }
}

impl fmt::Display for LatencySpec {
    /// The form [`FromStr`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LatencySpec::Fixed(d) => write!(f, "{}", FmtDuration(d)),
            LatencySpec::Uniform { min, max } => {
                write!(f, "{}..{}", FmtDuration(min), FmtDuration(max))
            }
        }
    }
}

/// The [`Layer`] of a [`LatencyStore`]: the spec plus the jitter rng.
pub struct Delay {
    spec: LatencySpec,
    rng: Mutex<StdRng>,
}

impl fmt::Debug for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delay")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl Delay {
    fn next(&self) -> Duration {
        match self.spec {
            LatencySpec::Fixed(d) => d,
            spec @ LatencySpec::Uniform { .. } => spec.sample(&mut *self.rng.lock()),
        }
    }
}

impl Layer for Delay {
    const NAME: &'static str = "LatencyStore";
    type Ticket = ();

    fn fmt_store(&self, inner: &dyn ObjectStore, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Latency({}, {inner})", self.spec)
    }

    /// Sleeps one delay, drawn now, when the request is issued.
    fn before(
        &self,
        _req: &Request,
    ) -> (
        (),
        impl Future<Output = object_store::Result<()>> + Send + 'static,
    ) {
        let d = self.next();
        ((), async move {
            if !d.is_zero() {
                tokio::time::sleep(d).await;
            }
            Ok(())
        })
    }
}

/// Waits a [`LatencySpec`] delay before delegating each request to the inner store.
pub type LatencyStore = Layered<Delay>;

impl LatencyStore {
    /// Delay every request to `inner` by `spec`, with jitter drawn from [`DEFAULT_SEED`].
    pub fn new(inner: Arc<dyn ObjectStore>, spec: LatencySpec) -> Self {
        Self::with_seed(inner, spec, DEFAULT_SEED)
    }

    /// As [`LatencyStore::new`], with the jitter rng seeded by `seed`.
    pub fn with_seed(inner: Arc<dyn ObjectStore>, spec: LatencySpec, seed: u64) -> Self {
        Layered::with_layer(
            inner,
            Delay {
                spec,
                rng: Mutex::new(StdRng::seed_from_u64(seed)),
            },
        )
    }

    /// The delay applied.
    pub fn spec(&self) -> LatencySpec {
        self.layer().spec
    }
}
