//! Nearest-rank percentiles.

/// The `p`-th percentile (`p` from 0 to 100) of `sorted` by nearest rank: the smallest
/// sample such that at least `p`% of the samples are at or below it. `None` if there are no
/// samples.
///
/// `sorted` must be in ascending order (for `f64`, sort with `f64::total_cmp`). Works for any
/// copyable sample: `Duration`, `f64`, integers.
///
/// ```
/// use std::time::Duration;
/// let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
/// assert_eq!(durable_testkit::percentile(&samples, 99.0), Some(Duration::from_millis(99)));
/// ```
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    // Rank 1 is the smallest sample; a `p` of 0 (or below, or NaN) picks it.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::percentile;
    use std::time::Duration;

    #[test]
    fn nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&values, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&values, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&values, 0.0), Some(Duration::from_millis(1)));
        assert_eq!(percentile::<Duration>(&[], 99.0), None);
    }

    #[test]
    fn signed_samples() {
        assert_eq!(percentile(&[-1.0, 0.0, 1.0], 50.0), Some(0.0));
        assert_eq!(percentile(&[-1.0, 0.0, 1.0], 100.0), Some(1.0));
        assert_eq!(percentile(&[3_u32], 1.0), Some(3));
    }
}
