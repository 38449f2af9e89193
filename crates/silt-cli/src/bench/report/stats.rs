//! The statistics of the report: ratios, latency quantiles, least-squares slopes and the
//! throughput tail ratio.

use hdrhistogram::Histogram;

use super::schema::Quantiles;

/// `a / b`, 0 when `b` is 0.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

/// A count as a float.
#[allow(clippy::cast_precision_loss)]
pub fn f(n: u64) -> f64 {
    n as f64
}

/// The report's latency figures of a histogram.
pub fn quantiles(h: &Histogram<u64>) -> Quantiles {
    Quantiles {
        count: h.len(),
        mean: if h.is_empty() { 0.0 } else { h.mean() },
        p50: h.value_at_quantile(0.50),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
    }
}

/// Slope (y per x) of the least-squares line through `points`; 0 with fewer than 2.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    if points.len() < 2 {
        return 0.0;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    ratio(sxy, sxx)
}

/// Mean of the last window over the mean of the first (10 s, or a third of shorter runs).
pub fn tail_ratio(by_second: &[u64]) -> Option<f64> {
    let w = (by_second.len() / 3).min(10);
    if w == 0 {
        return None;
    }
    let first: u64 = by_second[..w].iter().sum();
    let last: u64 = by_second[by_second.len() - w..].iter().sum();
    Some(ratio(f(last), f(first)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_slope() {
        assert!((slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]) - 2.0).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 1.0)]), 0.0);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), 0.0);
    }

    #[test]
    fn tail_ratio_windows() {
        assert_eq!(tail_ratio(&[1, 2]), None);
        assert_eq!(tail_ratio(&[10, 0, 5]), Some(0.5));
        let v: Vec<u64> = (0..30).map(|i| if i < 10 { 100 } else { 80 }).collect();
        assert_eq!(tail_ratio(&v), Some(0.8));
    }
}
