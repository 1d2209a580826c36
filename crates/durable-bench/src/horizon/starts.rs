//! When each task started, grouped by the batch it came in, so the parent can measure pickup
//! from the batch's commit rather than from the moment the batch was built.
//!
//! A worker process knows when a task started and the instant stamped in its payload (the
//! batch was built), not when that batch's commit was acknowledged: only the producer, in the
//! parent, knows that. So workers send the parent each start as an offset from its batch's
//! stamp, and the parent subtracts the batch's commit time once it has it. Batches are few
//! (one per `--insert-every`), so the groups stay small.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use super::histogram::Histogram;

/// Starts since the last report: per batch stamp (Unix µs), each task's wait from that stamp
/// to its start (µs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Starts {
    batches: BTreeMap<i64, Vec<i64>>,
}

impl Starts {
    /// Counts one task of the batch stamped `at_us` that started `waited_us` after the stamp.
    pub(crate) fn record(&mut self, at_us: i64, waited_us: i64) {
        self.batches.entry(at_us).or_default().push(waited_us);
    }

    /// Adds `other`'s starts to these.
    pub(crate) fn merge(&mut self, other: Starts) {
        for (at, waits) in other.batches {
            self.batches.entry(at).or_default().extend(waits);
        }
    }

    /// Counts the starts of every batch whose commit offset `acked` knows (µs from the stamp
    /// to the commit's acknowledgement) into `pickup`, as start minus acknowledgement, and
    /// drops them; the rest (their commit not acknowledged yet) stay for a later call.
    pub(crate) fn resolve(&mut self, acked: &HashMap<i64, i64>, pickup: &mut Histogram) {
        self.batches.retain(|at, waits| match acked.get(at) {
            Some(offset) => {
                for waited in waits.iter() {
                    pickup.record(waited - offset);
                }
                false
            }
            None => true,
        });
    }

    /// One whitespace-free field: `stamp:wait,wait;stamp:wait` (`-` when empty).
    pub(crate) fn encode(&self) -> String {
        if self.batches.is_empty() {
            return "-".to_owned();
        }
        let mut out = String::new();
        for (i, (at, waits)) in self.batches.iter().enumerate() {
            if i > 0 {
                out.push(';');
            }
            let _ = write!(out, "{at}:");
            for (j, waited) in waits.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{waited}");
            }
        }
        out
    }

    /// Reads what [`encode`](Self::encode) wrote.
    pub(crate) fn decode(field: &str) -> Result<Self, String> {
        let mut starts = Starts::default();
        if field == "-" {
            return Ok(starts);
        }
        let bad = || format!("malformed starts field {field:?}");
        for group in field.split(';') {
            let (at, waits) = group.split_once(':').ok_or_else(bad)?;
            let at: i64 = at.parse().map_err(|_| bad())?;
            for waited in waits.split(',') {
                starts.record(at, waited.parse().map_err(|_| bad())?);
            }
        }
        Ok(starts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips() {
        let mut starts = Starts::default();
        starts.record(1_000, 2_500);
        starts.record(1_000, 3_100);
        starts.record(21_000, -40);
        let text = starts.encode();
        assert!(!text.contains(char::is_whitespace));
        assert_eq!(Starts::decode(&text), Ok(starts));
        assert_eq!(Starts::decode("-"), Ok(Starts::default()));
        assert!(Starts::decode("12:x").is_err());
        assert!(Starts::decode("12").is_err());
    }

    #[test]
    fn pickup_is_counted_from_the_commit_once_it_is_known() {
        let mut starts = Starts::default();
        starts.record(1_000, 2_500); // batch committed 1,500 µs after its stamp
        starts.record(1_000, 4_000);
        starts.record(9_000, 7_000); // its commit not acknowledged yet
        let acked = HashMap::from([(1_000, 1_500)]);
        let mut pickup = Histogram::default();
        starts.resolve(&acked, &mut pickup);
        assert_eq!(pickup.count(), 2);
        assert!((pickup.max_ms() - 2.5).abs() < 1e-9);
        assert!((pickup.percentile_ms(50.0) - 1.0).abs() <= 1.0 / 32.0);

        let mut later = Starts::default();
        later.record(9_000, 7_200);
        starts.merge(later);
        let acked = HashMap::from([(9_000, 6_000)]);
        starts.resolve(&acked, &mut pickup);
        assert_eq!(pickup.count(), 4);
        assert_eq!(starts, Starts::default());
    }
}
