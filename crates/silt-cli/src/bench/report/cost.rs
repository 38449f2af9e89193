//! What the run's requests cost at S3 prices (`docs/bench.md`, "Request prices"). Which
//! requests are in which price class, and their price, are the engine's
//! `StoreMetricsSnapshot::put_class_requests`, `get_class_requests` and `cost`; the prices
//! are here.

use silt::objstore::{RequestPrices, StoreMetricsSnapshot};

use super::schema::Cost;
use super::stats::{f, ratio};

/// S3 Standard request prices, us-east-1, USD per 1,000 requests: class A (PUT, COPY, POST,
/// LIST) and class B (GET, SELECT and all other requests; DELETE is free and not counted).
pub const S3_STANDARD_US_EAST_1: RequestPrices = RequestPrices {
    usd_per_1000_put_class: 0.005,
    usd_per_1000_get_class: 0.0004,
};

/// The report's cost figures.
#[derive(Debug)]
pub struct Figures {
    /// `cost`.
    pub cost: Cost,
    /// `cost_usd_per_million_writes`: the PUT-class requests per million writes.
    pub usd_per_million_writes: f64,
}

/// The cost of the requests `s` (of a phase with `reads` reads and `writes` writes) at
/// `prices`.
pub fn of(s: &StoreMetricsSnapshot, prices: &RequestPrices, reads: u64, writes: u64) -> Figures {
    let usd = s.cost(prices);
    Figures {
        cost: Cost {
            usd_per_1000_put_class: prices.usd_per_1000_put_class,
            usd_per_1000_get_class: prices.usd_per_1000_get_class,
            put_class_requests: s.put_class_requests(),
            get_class_requests: s.get_class_requests(),
            usd_total: usd.total_usd(),
            usd_per_million_ops: ratio(usd.total_usd() * 1e6, f(reads + writes)),
            usd_per_million_reads: ratio(usd.get_class_usd * 1e6, f(reads)),
        },
        usd_per_million_writes: ratio(usd.put_class_usd * 1e6, f(writes)),
    }
}
