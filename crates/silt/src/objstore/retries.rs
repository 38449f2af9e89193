//! Counters of the requests [`super::Storage`] retried, by request and by cause.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::metric::{Kind, PromText};

/// Request classes that are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RetryOp {
    Get,
    GetRange,
    Put,
    Multipart,
    List,
    Delete,
}

const OPS: [(&str, RetryOp); 6] = [
    ("get", RetryOp::Get),
    ("get_range", RetryOp::GetRange),
    ("put", RetryOp::Put),
    ("multipart", RetryOp::Multipart),
    ("list", RetryOp::List),
    ("delete", RetryOp::Delete),
];

/// Why a request was retried, read from the store's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// 503 `SlowDown`, 429: the store asks for less.
    Throttled,
    /// No answer in time.
    Timeout,
    /// Connection refused, reset or dropped.
    Connection,
    /// Another 5xx.
    Server,
    /// A conditional request that kept meeting a conflict (409, 412 with nothing there).
    Conflict,
    /// Anything else transient.
    Other,
}

const CAUSES: [(&str, Cause); 6] = [
    ("throttled", Cause::Throttled),
    ("timeout", Cause::Timeout),
    ("connection", Cause::Connection),
    ("server", Cause::Server),
    ("conflict", Cause::Conflict),
    ("other", Cause::Other),
];

impl Cause {
    pub(crate) fn of(e: &object_store::Error) -> Cause {
        use object_store::Error as E;
        if matches!(
            e,
            E::AlreadyExists { .. } | E::Precondition { .. } | E::NotModified { .. }
        ) {
            return Cause::Conflict;
        }
        // object_store reports HTTP failures as `Generic` with the status in the text.
        let text = format!("{e:?}").to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
        if has(&[
            "slowdown",
            "slow down",
            "503",
            "429",
            "throttl",
            "too many requests",
        ]) {
            Cause::Throttled
        } else if has(&["timed out", "timeout"]) {
            Cause::Timeout
        } else if has(&["connect", "refused", "reset", "broken pipe"]) {
            Cause::Connection
        } else if has(&["500", "502", "504", "internal error", "bad gateway"]) {
            Cause::Server
        } else {
            Cause::Other
        }
    }
}

/// Retried attempts, by request class and cause.
#[derive(Debug, Default)]
pub struct RetryCounters {
    counts: [[AtomicU64; CAUSES.len()]; OPS.len()],
    gave_up: AtomicU64,
}

impl RetryCounters {
    pub(crate) fn record(&self, op: RetryOp, cause: Cause) {
        let o = OPS.iter().position(|(_, x)| *x == op).unwrap_or(0);
        let c = CAUSES.iter().position(|(_, x)| *x == cause).unwrap_or(0);
        self.counts[o][c].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn gave_up(&self) {
        self.gave_up.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> RetrySnapshot {
        let mut by_request = BTreeMap::new();
        let mut total = 0;
        for (o, (op, _)) in OPS.iter().enumerate() {
            let mut causes = BTreeMap::new();
            for (c, (cause, _)) in CAUSES.iter().enumerate() {
                let n = self.counts[o][c].load(Ordering::Relaxed);
                total += n;
                causes.insert(*cause, n);
            }
            by_request.insert(*op, causes);
        }
        RetrySnapshot {
            total,
            gave_up: self.gave_up.load(Ordering::Relaxed),
            by_request,
        }
    }
}

/// Retried store requests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetrySnapshot {
    /// Retried attempts in all.
    pub total: u64,
    /// Requests that still failed at `store.retry.deadline`.
    pub gave_up: u64,
    /// Retried attempts by request class, then by cause.
    pub by_request: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
}

/// Prometheus names: `silt_store_retries_total`, `silt_store_retries_gave_up`, and
/// `silt_store_retries_by_request_<class>_<cause>` for every request class and cause.
const PROM_TOTAL: &str = "silt_store_retries_total";
const PROM_GAVE_UP: &str = "silt_store_retries_gave_up";
const PROM_BY_REQUEST: &str = "silt_store_retries_by_request_";

impl RetrySnapshot {
    /// The counters relative to `earlier` (each the difference, 0 if it went down).
    #[must_use]
    pub fn since(&self, earlier: &Self) -> Self {
        let by_request = self
            .by_request
            .iter()
            .map(|(op, causes)| {
                let before = earlier.by_request.get(op);
                let causes = causes
                    .iter()
                    .map(|(cause, n)| {
                        let was = before.and_then(|b| b.get(cause)).copied().unwrap_or(0);
                        (*cause, n.saturating_sub(was))
                    })
                    .collect();
                (*op, causes)
            })
            .collect();
        RetrySnapshot {
            total: self.total.saturating_sub(earlier.total),
            gave_up: self.gave_up.saturating_sub(earlier.gave_up),
            by_request,
        }
    }

    /// Appends every counter to `out`.
    pub(crate) fn write_prometheus(&self, out: &mut PromText) {
        out.sample(PROM_TOTAL, Kind::Counter, self.total);
        out.sample(PROM_GAVE_UP, Kind::Counter, self.gave_up);
        for (op, causes) in &self.by_request {
            for (cause, n) in causes {
                out.sample(&format!("{PROM_BY_REQUEST}{op}_{cause}"), Kind::Counter, n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(msg: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: msg.to_owned().into(),
        }
    }

    #[test]
    fn causes_are_read_from_the_error() {
        assert_eq!(
            Cause::of(&generic("Server returned 503 SlowDown")),
            Cause::Throttled
        );
        assert_eq!(Cause::of(&generic("operation timed out")), Cause::Timeout);
        assert_eq!(
            Cause::of(&generic("tcp connect error: Connection refused")),
            Cause::Connection
        );
        assert_eq!(
            Cause::of(&generic("status 500 Internal Server Error")),
            Cause::Server
        );
        assert_eq!(Cause::of(&generic("weird")), Cause::Other);
        let c = RetryCounters::default();
        c.record(RetryOp::Get, Cause::Throttled);
        c.record(RetryOp::Get, Cause::Throttled);
        c.record(RetryOp::Delete, Cause::Other);
        let s = c.snapshot();
        assert_eq!(s.total, 3);
        assert_eq!(s.by_request["get"]["throttled"], 2);
        assert_eq!(s.by_request["delete"]["other"], 1);
        c.record(RetryOp::Get, Cause::Throttled);
        c.gave_up();
        let d = c.snapshot().since(&s);
        assert_eq!((d.total, d.gave_up), (1, 1));
        assert_eq!(d.by_request["get"]["throttled"], 1);
        assert_eq!(d.by_request["delete"]["other"], 0);
    }
}
