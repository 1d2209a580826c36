//! A log-bucketed latency histogram (about 3% resolution) that worker processes fill and
//! send to the parent as one text field, so percentiles can be taken over all processes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Values below this are counted exactly (one bucket per microsecond).
const LINEAR: u64 = 64;
/// Sub-buckets per power of two above [`LINEAR`]: 32 gives a resolution of 1/32.
const SUB_BITS: u32 = 5;

/// Counts of microsecond values in log-linear buckets, and the largest value seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Histogram {
    buckets: BTreeMap<u32, u64>,
    max: u64,
}

/// The bucket holding `value`.
fn bucket(value: u64) -> u32 {
    if value < LINEAR {
        return value as u32;
    }
    let exponent = value.ilog2(); // at least 6
    let sub = (value >> (exponent - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    LINEAR as u32 + (exponent - 6) * (1 << SUB_BITS) + sub as u32
}

/// The middle of bucket `index`.
fn middle(index: u32) -> u64 {
    if u64::from(index) < LINEAR {
        return u64::from(index);
    }
    let above = index - LINEAR as u32;
    let exponent = above / (1 << SUB_BITS) + 6;
    let sub = u64::from(above % (1 << SUB_BITS));
    let width = 1u64 << (exponent - SUB_BITS);
    ((1 << SUB_BITS) + sub) * width + width / 2
}

impl Histogram {
    /// Counts one value in microseconds (negative values, from clock skew, count as 0).
    pub(crate) fn record(&mut self, micros: i64) {
        let value = u64::try_from(micros).unwrap_or(0);
        *self.buckets.entry(bucket(value)).or_default() += 1;
        self.max = self.max.max(value);
    }

    /// Values counted.
    pub(crate) fn count(&self) -> u64 {
        self.buckets.values().sum()
    }

    /// Adds `other`'s counts to these.
    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (index, n) in &other.buckets {
            *self.buckets.entry(*index).or_default() += n;
        }
        self.max = self.max.max(other.max);
    }

    /// The `p`-th percentile (nearest rank) in milliseconds, at bucket resolution (the
    /// largest value exactly); `NaN` when empty.
    pub(crate) fn percentile_ms(&self, p: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                // A bucket's middle may lie above the largest value it holds.
                return middle(*index).min(self.max) as f64 / 1000.0;
            }
        }
        self.max as f64 / 1000.0
    }

    /// The largest value in milliseconds; `NaN` when empty.
    pub(crate) fn max_ms(&self) -> f64 {
        if self.count() == 0 {
            f64::NAN
        } else {
            self.max as f64 / 1000.0
        }
    }

    /// One whitespace-free field: `max;index:count,index:count` (`-` when empty).
    pub(crate) fn encode(&self) -> String {
        if self.buckets.is_empty() {
            return "-".to_owned();
        }
        let mut out = format!("{};", self.max);
        for (i, (index, n)) in self.buckets.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{index}:{n}");
        }
        out
    }

    /// Reads what [`encode`](Self::encode) wrote.
    pub(crate) fn decode(field: &str) -> Result<Self, String> {
        let mut histogram = Histogram::default();
        if field == "-" {
            return Ok(histogram);
        }
        let bad = || format!("malformed histogram field {field:?}");
        let (max, buckets) = field.split_once(';').ok_or_else(bad)?;
        histogram.max = max.parse().map_err(|_| bad())?;
        for pair in buckets.split(',') {
            let (index, n) = pair.split_once(':').ok_or_else(bad)?;
            let index: u32 = index.parse().map_err(|_| bad())?;
            let n: u64 = n.parse().map_err(|_| bad())?;
            *histogram.buckets.entry(index).or_default() += n;
        }
        Ok(histogram)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_keep_three_percent() {
        for value in [
            0u64, 1, 63, 64, 65, 100, 1_000, 12_345, 1_000_000, 43_000_000,
        ] {
            let mid = middle(bucket(value));
            let error = (mid as f64 - value as f64).abs() / (value.max(1) as f64);
            assert!(error <= 1.0 / 32.0, "{value} -> {mid}");
        }
        // Buckets are ordered like their values.
        assert!(bucket(999) <= bucket(1_000) && bucket(1_000) < bucket(2_000));
    }

    #[test]
    fn percentiles_over_merged_processes() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        for ms in 1..=50 {
            a.record(ms * 1000);
        }
        for ms in 51..=100 {
            b.record(ms * 1000);
        }
        a.merge(&b);
        assert_eq!(a.count(), 100);
        let p50 = a.percentile_ms(50.0);
        let p99 = a.percentile_ms(99.0);
        assert!((p50 - 50.0).abs() <= 50.0 / 32.0, "p50 {p50}");
        assert!((p99 - 99.0).abs() <= 99.0 / 32.0, "p99 {p99}");
        assert!((a.max_ms() - 100.0).abs() < 1e-9);
        assert!(Histogram::default().percentile_ms(50.0).is_nan());
    }

    #[test]
    fn encoding_round_trips() {
        let mut h = Histogram::default();
        for v in [-5, 0, 7, 70, 700, 7_000_000] {
            h.record(v);
        }
        let text = h.encode();
        assert!(!text.contains(char::is_whitespace));
        assert_eq!(Histogram::decode(&text), Ok(h));
        assert_eq!(Histogram::decode("-"), Ok(Histogram::default()));
        assert!(Histogram::decode("12;x:1").is_err());
    }
}
