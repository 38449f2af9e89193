//! Time comes through [`Clock`] so tests can control it.
//!
//! The default [`TokioClock`] reads tokio's clock, which `tokio::time::pause()` freezes and
//! `tokio::time::advance()` moves: the WAL flusher's linger deadlines and token bucket then
//! run on simulated time, with no sleeps in tests.

use std::fmt::Debug;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// A source of time for the engine's timers.
pub trait Clock: Send + Sync + Debug + 'static {
    /// A monotonic instant on the same timeline as [`Clock::sleep_until`].
    fn now(&self) -> Instant;
    /// Wall-clock milliseconds since the Unix epoch (used to name objects).
    fn unix_millis(&self) -> u64;
    /// Sleep until `deadline` on this clock's timeline.
    fn sleep_until(&self, deadline: Instant) -> tokio::time::Sleep;
}

/// The default clock: tokio's timer (pausable in tests) and the system wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioClock;

impl Clock for TokioClock {
    #[expect(clippy::disallowed_methods, reason = "the clock seam itself")]
    fn now(&self) -> Instant {
        Instant::now()
    }

    #[expect(clippy::disallowed_methods, reason = "the clock seam itself")]
    fn unix_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis()
            .try_into()
            .unwrap_or(u64::MAX)
    }

    fn sleep_until(&self, deadline: Instant) -> tokio::time::Sleep {
        tokio::time::sleep_until(deadline)
    }
}

/// A clock whose wall time moves only when told, for tests of expiry
/// ([`crate::Expiry`]): timers are tokio's, as with [`TokioClock`].
#[derive(Debug)]
pub struct ManualWallClock {
    millis: std::sync::atomic::AtomicU64,
}

impl ManualWallClock {
    /// A clock whose wall time starts at `unix_millis`.
    pub fn new(unix_millis: u64) -> Self {
        ManualWallClock {
            millis: std::sync::atomic::AtomicU64::new(unix_millis),
        }
    }

    /// Move the wall time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis
            .fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualWallClock {
    fn now(&self) -> Instant {
        TokioClock.now()
    }

    fn unix_millis(&self) -> u64 {
        self.millis.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn sleep_until(&self, deadline: Instant) -> tokio::time::Sleep {
        TokioClock.sleep_until(deadline)
    }
}
