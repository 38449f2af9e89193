//! Jittered exponential backoff (`store.retry`).

use std::time::Duration;

use crate::config::RetrySettings;

/// Successive pauses between attempts: each draws uniformly from the upper half of a
/// window that doubles from `initial` up to `max` ("equal jitter"), so retrying clients
/// spread out and no pause is shorter than half the window.
#[derive(Debug)]
pub(crate) struct Backoff {
    window: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(r: &RetrySettings) -> Self {
        Backoff {
            window: r.initial,
            max: r.max,
        }
    }

    /// The next pause.
    pub fn next_pause(&mut self) -> Duration {
        let w = self.window;
        self.window = (w * 2).min(self.max);
        let half = w / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_the_cap_and_stay_in_their_window() {
        let r = RetrySettings {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(800),
            deadline: Duration::from_secs(1),
        };
        let mut b = Backoff::new(&r);
        let windows = [100, 200, 400, 800, 800, 800];
        for w in windows {
            let p = b.next_pause();
            let w = Duration::from_millis(w);
            assert!(p >= w / 2 && p <= w, "{p:?} outside [{:?}, {w:?}]", w / 2);
        }
    }
}
