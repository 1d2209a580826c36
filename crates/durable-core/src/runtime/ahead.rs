//! [`ClaimAhead`]: how many tasks a runtime claims beyond its free slots, and the estimate
//! behind [`ClaimAhead::Auto`].

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How many tasks a runtime claims beyond its free slots
/// ([`RuntimeBuilder::claim_ahead`](super::RuntimeBuilder::claim_ahead)).
///
/// A slot is taken when a claim is sized and given back when its task returns, so a runtime
/// whose tasks are short next to a claim's round trip spends its slots waiting for claims.
/// Tasks claimed ahead wait in the runtime (leased, heartbeated) and start as slots are given
/// back, with no round trip in between; never more than `concurrency` run at once.
///
/// # Examples
///
/// ```
/// use durable_core::runtime::ClaimAhead;
///
/// assert_eq!("auto".parse::<ClaimAhead>().unwrap(), ClaimAhead::Auto);
/// assert_eq!("8".parse::<ClaimAhead>().unwrap(), ClaimAhead::Fixed(8));
/// assert_eq!(ClaimAhead::from(0), ClaimAhead::Fixed(0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClaimAhead {
    /// As many as the slots finish in one claim round trip (default): `concurrency` times the
    /// claim round trip over the tasks' run time, both measured by the runtime (moving
    /// averages), at most twice `concurrency`. A task claimed ahead then waits about a round
    /// trip — what claiming it later would have cost — and on average no longer than two of
    /// the tasks' run times. Zero until the runtime has measured both, and zero for tasks
    /// that run longer than `concurrency` round trips: those would wait longer than claiming
    /// them later costs.
    #[default]
    Auto,
    /// Up to `n` beyond the free slots, whatever the timings (`0`: claim only for free slots).
    Fixed(usize),
}

impl From<usize> for ClaimAhead {
    fn from(n: usize) -> Self {
        Self::Fixed(n)
    }
}

impl fmt::Display for ClaimAhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// A [`ClaimAhead`] that is neither `auto` nor a count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("claim ahead must be `auto` or a number of tasks, not {0:?}")]
pub struct ParseClaimAheadError(String);

impl FromStr for ClaimAhead {
    type Err = ParseClaimAheadError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Self::Auto);
        }
        s.parse()
            .map(Self::Fixed)
            .map_err(|_| ParseClaimAheadError(s.to_owned()))
    }
}

/// Moving averages of the claim round trip and of the tasks' run time, in microseconds (0:
/// nothing measured yet), for [`ClaimAhead::Auto`].
#[derive(Debug, Default)]
pub(super) struct Estimate {
    claim_us: AtomicU64,
    run_us: AtomicU64,
}

/// Adds `sample` to the moving average in `average` with weight 1/8, so a change in the
/// database's answer or the tasks' run time shows within a few dozen samples and one slow
/// sample does not swing the count. 0 stands for nothing measured: the first sample is
/// taken as it is.
fn record(average: &AtomicU64, sample: Duration) {
    let sample = u64::try_from(sample.as_micros()).unwrap_or(u64::MAX);
    let _ = average.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
        let next = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        Some(next.max(1))
    });
}

impl Estimate {
    /// A claim (statement and the writer cycle it rode on) answered after `took`.
    pub(super) fn claimed_in(&self, took: Duration) {
        record(&self.claim_us, took);
    }

    /// An attempt's code ran for `ran`.
    pub(super) fn ran_for(&self, ran: Duration) {
        record(&self.run_us, ran);
    }

    /// Tasks to claim beyond `concurrency` free slots under `mode`.
    pub(super) fn ahead(&self, mode: ClaimAhead, concurrency: usize) -> usize {
        match mode {
            ClaimAhead::Fixed(n) => n,
            ClaimAhead::Auto => {
                let claim = u128::from(self.claim_us.load(Ordering::Relaxed));
                let run = u128::from(self.run_us.load(Ordering::Relaxed));
                if claim == 0 || run == 0 {
                    return 0;
                }
                let cap = concurrency.saturating_mul(2);
                // What the slots finish during one round trip, rounded down: none for tasks
                // longer than `concurrency` round trips.
                let finished = concurrency as u128 * claim / run;
                usize::try_from(finished).map_or(cap, |n| n.min(cap))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_claims_what_the_slots_finish_in_a_round_trip() {
        let estimate = Estimate::default();
        assert_eq!(
            estimate.ahead(ClaimAhead::Auto, 16),
            0,
            "nothing measured yet"
        );
        estimate.claimed_in(Duration::from_millis(2));
        assert_eq!(estimate.ahead(ClaimAhead::Auto, 16), 0, "no task ran yet");
        estimate.ran_for(Duration::from_millis(8));
        // 16 slots of 8 ms tasks finish 4 in a 2 ms round trip.
        assert_eq!(estimate.ahead(ClaimAhead::Auto, 16), 4);
        assert_eq!(estimate.ahead(ClaimAhead::Fixed(3), 16), 3);
    }

    #[test]
    fn auto_is_capped_at_twice_the_slots_and_zero_for_long_tasks() {
        let fast = Estimate::default();
        fast.claimed_in(Duration::from_millis(50));
        fast.ran_for(Duration::from_micros(100));
        assert_eq!(fast.ahead(ClaimAhead::Auto, 16), 32);

        let slow = Estimate::default();
        slow.claimed_in(Duration::from_millis(2));
        slow.ran_for(Duration::from_secs(60));
        assert_eq!(slow.ahead(ClaimAhead::Auto, 16), 0);
        // 16 slots of 40 ms tasks finish 0.8 in a 2 ms round trip: none ahead either.
        let edge = Estimate::default();
        edge.claimed_in(Duration::from_millis(2));
        edge.ran_for(Duration::from_millis(40));
        assert_eq!(edge.ahead(ClaimAhead::Auto, 16), 0);
    }

    #[test]
    fn averages_follow_a_change_within_a_few_dozen_samples() {
        let estimate = Estimate::default();
        for _ in 0..50 {
            estimate.claimed_in(Duration::from_millis(1));
            estimate.ran_for(Duration::from_millis(1));
        }
        assert_eq!(estimate.ahead(ClaimAhead::Auto, 8), 8);
        for _ in 0..40 {
            estimate.claimed_in(Duration::from_millis(40));
        }
        assert_eq!(estimate.ahead(ClaimAhead::Auto, 8), 16);
    }

    #[test]
    fn parses_and_prints() {
        for text in ["auto", "AUTO", " 0", "12"] {
            let parsed: ClaimAhead = text.parse().unwrap();
            assert_eq!(parsed.to_string(), text.trim().to_ascii_lowercase());
        }
        assert!("-1".parse::<ClaimAhead>().is_err());
        assert!("some".parse::<ClaimAhead>().is_err());
    }
}
