//! [`ClaimAhead`]: how many tasks a runtime claims beyond its free slots, and the estimate
//! behind [`ClaimAhead::Auto`].

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
    /// them later costs. The averages describe the tasks that ended, so slots held by
    /// attempts running eight times the average run time (and at least a round trip) are
    /// left out of `concurrency`: when long tasks hold most slots, the count is what the
    /// others finish in a round trip. While every slot is taken, the count is also at most
    /// the round trip over the time since an attempt last started or ended: slots silent for
    /// longer than a round trip are held by tasks longer than the averages say, and nothing
    /// more is claimed ahead of them (new tasks are left to instances with room).
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

/// How the slots are held when a claim is sized, for [`ClaimAhead::Auto`].
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Holding {
    /// Every slot is taken by a running attempt.
    pub(super) all: bool,
    /// Slots held by attempts that started before [`Estimate::long_since`]: running far
    /// longer than the tasks the averages describe.
    pub(super) long: usize,
}

/// An attempt running this many times the average run time (and at least a claim round
/// trip) is not one of the tasks the average describes: its slot is left out of the slots
/// that finish tasks. Tasks whose lengths merely vary stay well inside it.
const LONG_RUNS: u64 = 8;

/// Moving averages of the claim round trip and of the tasks' run time, in microseconds (0:
/// nothing measured yet), and when an attempt last started or ended, for
/// [`ClaimAhead::Auto`].
#[derive(Debug)]
pub(super) struct Estimate {
    claim_us: AtomicU64,
    run_us: AtomicU64,
    /// What `moved_us` counts from.
    epoch: Instant,
    /// µs since `epoch` when an attempt last started or ended.
    moved_us: AtomicU64,
}

impl Default for Estimate {
    fn default() -> Self {
        Self {
            claim_us: AtomicU64::new(0),
            run_us: AtomicU64::new(0),
            epoch: Instant::now(),
            moved_us: AtomicU64::new(0),
        }
    }
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

    /// An attempt took its slot and is about to run; `since` keeps when, for
    /// [`long_since`](Self::long_since) and for shutdown (non-zero: the attempt started, see
    /// `Running::started`), hence sequentially consistent.
    pub(super) fn started(&self, since: &AtomicU64) {
        let now = self.now_us();
        since.store(now.max(1), Ordering::SeqCst);
        self.moved_us.fetch_max(now, Ordering::Relaxed);
    }

    /// An attempt's code ran for `ran`, and ended.
    pub(super) fn ran_for(&self, ran: Duration) {
        record(&self.run_us, ran);
        self.moved_us.fetch_max(self.now_us(), Ordering::Relaxed);
    }

    /// µs since the estimate's epoch.
    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Attempts that started before this (on the clock [`started`](Self::started) records)
    /// have run [`LONG_RUNS`] times the average run time, and at least a claim round trip;
    /// `None` until a run time is measured, or while no attempt can have run that long.
    pub(super) fn long_since(&self) -> Option<u64> {
        let run = self.run_us.load(Ordering::Relaxed);
        if run == 0 {
            return None;
        }
        let span = run
            .saturating_mul(LONG_RUNS)
            .max(self.claim_us.load(Ordering::Relaxed));
        self.now_us().checked_sub(span)
    }

    /// Tasks to claim beyond `concurrency` free slots under `mode`, the slots held as
    /// `holding` says.
    pub(super) fn ahead(&self, mode: ClaimAhead, concurrency: usize, holding: Holding) -> usize {
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
                // longer than `concurrency` round trips. Slots held by attempts far longer
                // than the average finish nothing the average predicts: with most slots
                // held by long tasks, the few that turn over short ones set the count.
                let turning = concurrency.saturating_sub(holding.long);
                let mut finished = turning as u128 * claim / run;
                if holding.all {
                    // The averages speak of the tasks that ended; slots that have neither
                    // started nor ended anything for `still` are held by longer ones, which
                    // free at most one per `still`: what fits in one round trip. Only while
                    // every slot is held: idle slots (the queue ran dry, or a slow claim is
                    // on its way) say nothing about how long the tasks run.
                    let now = self.epoch.elapsed().as_micros();
                    let still =
                        now.saturating_sub(u128::from(self.moved_us.load(Ordering::Relaxed)));
                    if let Some(fits) = claim.checked_div(still) {
                        finished = finished.min(fits);
                    }
                }
                usize::try_from(finished).map_or(cap, |n| n.min(cap))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slots free, or taken by attempts the averages describe.
    const FREE: Holding = Holding {
        all: false,
        long: 0,
    };
    /// Every slot taken.
    const ALL: Holding = Holding { all: true, long: 0 };

    #[test]
    fn slots_held_by_long_attempts_finish_nothing_the_average_predicts() {
        let estimate = Estimate::default();
        estimate.claimed_in(Duration::from_millis(4));
        estimate.ran_for(Duration::from_millis(1));
        // 16 slots of 1 ms tasks finish 64 in a 4 ms round trip: the cap, 32.
        assert_eq!(estimate.ahead(ClaimAhead::Auto, 16, FREE), 32);
        // 15 held by long tasks: the one slot left finishes 4 in a round trip.
        let long = Holding {
            all: false,
            long: 15,
        };
        assert_eq!(estimate.ahead(ClaimAhead::Auto, 16, long), 4);
        let all_long = Holding {
            all: true,
            long: 16,
        };
        assert_eq!(estimate.ahead(ClaimAhead::Auto, 16, all_long), 0);
        assert_eq!(estimate.ahead(ClaimAhead::Fixed(7), 16, all_long), 7);
    }

    #[test]
    fn an_attempt_is_long_after_eight_average_runs_and_a_round_trip() {
        let estimate = Estimate::default();
        assert_eq!(estimate.long_since(), None, "no run time measured");
        estimate.claimed_in(Duration::from_millis(1));
        estimate.ran_for(Duration::from_millis(20));
        let since = AtomicU64::new(0);
        estimate.started(&since);
        let at = since.load(Ordering::Relaxed);
        assert!(at > 0);
        // Just started: not long yet, however early the epoch.
        assert!(estimate.long_since().is_none_or(|cutoff| cutoff <= at));
        std::thread::sleep(Duration::from_millis(200));
        let cutoff = estimate
            .long_since()
            .expect("160 ms have passed since the epoch");
        assert!(cutoff > at, "running 200 ms, eight runs of 20 ms: long");
    }

    #[test]
    fn auto_claims_what_the_slots_finish_in_a_round_trip() {
        let estimate = Estimate::default();
        assert_eq!(
            estimate.ahead(ClaimAhead::Auto, 16, FREE),
            0,
            "nothing measured yet"
        );
        estimate.claimed_in(Duration::from_millis(2));
        assert_eq!(
            estimate.ahead(ClaimAhead::Auto, 16, FREE),
            0,
            "no task ran yet"
        );
        estimate.ran_for(Duration::from_millis(8));
        // 16 slots of 8 ms tasks finish 4 in a 2 ms round trip.
        assert_eq!(estimate.ahead(ClaimAhead::Auto, 16, FREE), 4);
        assert_eq!(estimate.ahead(ClaimAhead::Fixed(3), 16, FREE), 3);
    }

    #[test]
    fn auto_is_capped_at_twice_the_slots_and_zero_for_long_tasks() {
        let fast = Estimate::default();
        fast.claimed_in(Duration::from_millis(50));
        fast.ran_for(Duration::from_micros(100));
        assert_eq!(fast.ahead(ClaimAhead::Auto, 16, FREE), 32);

        let slow = Estimate::default();
        slow.claimed_in(Duration::from_millis(2));
        slow.ran_for(Duration::from_secs(60));
        assert_eq!(slow.ahead(ClaimAhead::Auto, 16, FREE), 0);
        // 16 slots of 40 ms tasks finish 0.8 in a 2 ms round trip: none ahead either.
        let edge = Estimate::default();
        edge.claimed_in(Duration::from_millis(2));
        edge.ran_for(Duration::from_millis(40));
        assert_eq!(edge.ahead(ClaimAhead::Auto, 16, FREE), 0);
    }

    #[test]
    fn averages_follow_a_change_within_a_few_dozen_samples() {
        let estimate = Estimate::default();
        for _ in 0..50 {
            estimate.claimed_in(Duration::from_millis(1));
            estimate.ran_for(Duration::from_millis(1));
        }
        assert_eq!(estimate.ahead(ClaimAhead::Auto, 8, FREE), 8);
        for _ in 0..40 {
            estimate.claimed_in(Duration::from_millis(40));
        }
        assert_eq!(estimate.ahead(ClaimAhead::Auto, 8, FREE), 16);
    }

    #[test]
    fn auto_claims_nothing_ahead_of_slots_held_longer_than_a_round_trip() {
        let estimate = Estimate::default();
        estimate.claimed_in(Duration::from_millis(200));
        estimate.ran_for(Duration::from_millis(1));
        assert!(
            estimate.ahead(ClaimAhead::Auto, 16, ALL) > 0,
            "just ended one"
        );
        // Every slot held, nothing started or ended for over a round trip.
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(estimate.ahead(ClaimAhead::Auto, 16, ALL), 0);
        // Idle slots say nothing about the tasks' length; a fixed count ignores it all.
        assert_eq!(estimate.ahead(ClaimAhead::Auto, 16, FREE), 32);
        assert_eq!(estimate.ahead(ClaimAhead::Fixed(5), 16, ALL), 5);
        estimate.started(&AtomicU64::new(0));
        assert!(estimate.ahead(ClaimAhead::Auto, 16, ALL) > 0, "one started");
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
