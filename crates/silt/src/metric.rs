//! The building blocks of the metrics: the atomic [`Cell`] a component counts into, the
//! [`snapshot!`] macro that defines a component's plain snapshot struct (and, if asked, its
//! atomic twin), and the Prometheus text writer [`PromText`].
//!
//! A component owns its atomics privately and hands out snapshots: plain `Copy` structs of
//! numbers that serialize, subtract ([`since`](Kind::since): counters give the difference,
//! gauges the later value) and render as Prometheus text under names written once, in the
//! component's `snapshot!` invocation. [`Metrics`](crate::Metrics) gathers them.

use std::fmt::{Display, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};

/// One atomic figure of a component: a monotonic counter ([`Cell::add`], [`Cell::incr`]) or,
/// for the few gauges, a level ([`Cell::set`]). Only its component writes it; everybody
/// else reads snapshots.
#[derive(Debug, Default)]
pub(crate) struct Cell(AtomicU64);

impl Cell {
    /// Adds `n`.
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    pub(crate) fn incr(&self) {
        self.add(1);
    }

    /// Sets a gauge.
    pub(crate) fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The value now.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a figure measures, which decides how it subtracts and its Prometheus `TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Only grows (events, bytes): `since` gives the difference (0 if it went down, e.g.
    /// across a reopen).
    Counter,
    /// A level (bytes held, a size, a sequence number): `since` keeps the later value.
    Gauge,
}

impl Kind {
    /// `later` relative to `earlier`: the difference for a counter, `later` for a gauge.
    pub(crate) fn since<T>(self, later: T, earlier: T) -> T
    where
        T: Copy + PartialOrd + Default + std::ops::Sub<Output = T>,
    {
        match self {
            Kind::Counter if later > earlier => later - earlier,
            Kind::Counter => T::default(),
            Kind::Gauge => later,
        }
    }

    /// The Prometheus `TYPE`.
    pub(crate) fn prometheus_type(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// The Prometheus text exposition format being written: a `# TYPE` line and a sample line
/// per figure.
#[derive(Debug, Default)]
pub(crate) struct PromText(String);

impl PromText {
    /// Appends one figure.
    pub(crate) fn sample(&mut self, name: &str, kind: Kind, value: impl Display) {
        let _ = writeln!(
            self.0,
            "# TYPE {name} {}\n{name} {value}",
            kind.prometheus_type()
        );
    }

    /// The text written.
    pub(crate) fn finish(self) -> String {
        self.0
    }
}

/// `num / den` as a float; 0 when `den` is 0 (a ratio of counters that saw nothing).
#[allow(clippy::cast_precision_loss)]
pub(crate) fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// `later.since(earlier)` for snapshots that exist only sometimes: a snapshot with nothing
/// earlier counts from zero, so it is its own difference.
pub(crate) fn since_opt<T: Clone>(
    later: Option<&T>,
    earlier: Option<&T>,
    since: impl Fn(&T, &T) -> T,
) -> Option<T> {
    match (later, earlier) {
        (Some(l), Some(e)) => Some(since(l, e)),
        (l, _) => l.cloned(),
    }
}

/// Defines a component's snapshot: a `pub` struct of numeric fields, each with its
/// [`Kind`] and its Prometheus name, deriving `Debug, Clone, Copy, Default, PartialEq, Eq,
/// Serialize`, with
///
/// * `PROMETHEUS_NAMES`: the names, in field order;
/// * `since(&earlier)`: counters minus `earlier`'s, gauges as they are;
/// * `write_prometheus(&mut PromText)` (crate-internal).
///
/// With `cells STRUCT;` it also defines the component's atomic twin: a struct of
/// [`Cell`]s with the same fields (all `u64`) and `snapshot()`.
///
/// ```ignore
/// snapshot! {
///     /// Counters of the thing, at one moment.
///     pub struct ThingSnapshot;
///     /// Counters of the thing (atomics).
///     cells pub(crate) struct ThingCounters;
///     {
///         /// Widgets made.
///         widgets: Counter "silt_thing_widgets",
///     }
/// }
/// ```
macro_rules! snapshot {
    (
        $(#[$meta:meta])*
        pub struct $snap:ident;
        $(#[$cmeta:meta])*
        cells $cvis:vis struct $cells:ident;
        {
            $( $(#[$fmeta:meta])* $field:ident: $kind:ident $name:literal, )*
        }
    ) => {
        $crate::metric::snapshot! {
            $(#[$meta])*
            pub struct $snap;
            { $( $(#[$fmeta])* $field: u64, $kind $name, )* }
        }

        $(#[$cmeta])*
        #[derive(Debug, Default)]
        $cvis struct $cells {
            $( $(#[$fmeta])* pub(crate) $field: $crate::metric::Cell, )*
        }

        impl $cells {
            /// The figures now (each read atomically, not all at one instant).
            pub fn snapshot(&self) -> $snap {
                $snap { $( $field: self.$field.get(), )* }
            }
        }
    };
    (
        $(#[$meta:meta])*
        pub struct $snap:ident;
        {
            $( $(#[$fmeta:meta])* $field:ident: $ty:ty, $kind:ident $name:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ::serde::Serialize)]
        pub struct $snap {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $snap {
            /// The Prometheus names of the fields, in field order.
            pub const PROMETHEUS_NAMES: &'static [&'static str] = &[$($name),*];

            /// The figures relative to `earlier`: counters minus `earlier`'s, gauges as
            /// they are now.
            #[must_use]
            pub fn since(&self, earlier: &Self) -> Self {
                let _ = earlier;
                $snap {
                    $( $field: $crate::metric::Kind::$kind.since(self.$field, earlier.$field), )*
                }
            }

            /// Appends every field to `out`.
            pub(crate) fn write_prometheus(&self, out: &mut $crate::metric::PromText) {
                $( out.sample($name, $crate::metric::Kind::$kind, self.$field); )*
            }
        }
    };
}
pub(crate) use snapshot;

#[cfg(test)]
mod tests {
    use super::*;

    snapshot! {
        /// A test snapshot.
        pub struct TestSnapshot;
        /// Its atomics.
        cells pub(crate) struct TestCells;
        {
            /// A counter.
            events: Counter "silt_test_events",
            /// A gauge.
            level: Gauge "silt_test_level",
        }
    }

    #[test]
    fn counters_subtract_and_gauges_keep_the_later_value() {
        let cells = TestCells::default();
        cells.events.add(3);
        cells.level.set(10);
        let a = cells.snapshot();
        cells.events.incr();
        cells.level.set(7);
        let b = cells.snapshot();
        assert_eq!(
            b.since(&a),
            TestSnapshot {
                events: 1,
                level: 7
            }
        );
        // A counter that went down (another process, a reopen) counts as no change.
        assert_eq!(a.since(&b).events, 0);
        assert_eq!(Kind::Counter.since(5i64, 9), 0);
        assert_eq!(
            TestSnapshot::PROMETHEUS_NAMES,
            ["silt_test_events", "silt_test_level"]
        );
        let mut out = PromText::default();
        b.write_prometheus(&mut out);
        assert_eq!(
            out.finish(),
            "# TYPE silt_test_events counter\nsilt_test_events 4\n\
             # TYPE silt_test_level gauge\nsilt_test_level 7\n"
        );
        let none: Option<TestSnapshot> = None;
        assert_eq!(
            since_opt(Some(&b), none.as_ref(), TestSnapshot::since),
            Some(b)
        );
        assert_eq!(
            since_opt(none.as_ref(), Some(&b), TestSnapshot::since),
            None
        );
    }
}
