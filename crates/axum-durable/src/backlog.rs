//! Load shedding on the due backlog, for `DurableLayer::max_backlog`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use durable_core::Client;

/// The shortest and longest `Retry-After` a shed request gets, in seconds.
const RETRY_AFTER_SECS: (u64, u64) = (1, 60);

/// How many times a count's own duration the next one waits, at least: a count that gets
/// slow (under a held vacuum horizon PostgreSQL keeps an index entry for every task claimed
/// since, and the count passes them all) then takes at most a twentieth of the database
/// time, however long the horizon stays held, at the price of a staler count.
const COUNT_SHARE: u32 = 20;

/// A cached count of due pending tasks, refreshed in the background so the request path never
/// waits for a `COUNT`, with the rate at which it drains. A refresh starts `every` after the
/// last one began, or [`COUNT_SHARE`] times as long as it took, if longer.
#[derive(Debug)]
pub(crate) struct Backlog {
    limit: u64,
    every: Duration,
    due: AtomicU64,
    retry_after: AtomicU64,
    /// When the next refresh may start; `None` before the first.
    next: Mutex<Option<Instant>>,
    drain: Mutex<Drain>,
    refreshing: AtomicBool,
}

impl Backlog {
    pub(crate) fn new(limit: u64, every: Duration) -> Arc<Self> {
        Arc::new(Self {
            limit,
            every,
            due: AtomicU64::new(0),
            retry_after: AtomicU64::new(RETRY_AFTER_SECS.0),
            next: Mutex::new(None),
            drain: Mutex::new(Drain::default()),
            refreshing: AtomicBool::new(false),
        })
    }

    /// Whether the last known backlog is over the limit; starts a refresh when stale.
    pub(crate) fn over_limit(self: &Arc<Self>, client: &Client) -> bool {
        let stale = self
            .next
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none_or(|next| Instant::now() >= next);
        if stale && !self.refreshing.swap(true, Ordering::AcqRel) {
            let this = Arc::clone(self);
            let client = client.clone();
            tokio::spawn(async move {
                let began = Instant::now();
                match client.backlog().await {
                    Ok(n) => this.record(n, Instant::now()),
                    Err(error) => tracing::warn!(%error, "could not count the due backlog"),
                }
                *this.next.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(next_refresh(began, Instant::now(), this.every));
                this.refreshing.store(false, Ordering::Release);
            });
        }
        self.due.load(Ordering::Relaxed) > self.limit
    }

    /// A new count: updates the drain rate and the `Retry-After` it implies.
    fn record(&self, due: u64, at: Instant) {
        let rate = self
            .drain
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sample(due, at);
        let excess = due.saturating_sub(self.limit);
        self.retry_after
            .store(retry_after_secs(excess, rate), Ordering::Relaxed);
        self.due.store(due, Ordering::Relaxed);
    }

    /// Seconds a shed client should wait: see [`retry_after_secs`].
    pub(crate) fn retry_after_secs(&self) -> u64 {
        self.retry_after.load(Ordering::Relaxed)
    }
}

/// The due backlog's net decrease per second, averaged over the counts so far: how fast the
/// workers (all instances') take due tasks, less what arrives meanwhile (other instances'
/// requests, scheduled tasks falling due). Measured while this instance sheds, it is the rate
/// at which the backlog returns under the limit.
#[derive(Debug, Default)]
struct Drain {
    last: Option<(u64, Instant)>,
    /// Tasks per second; `None` until two counts were seen.
    rate: Option<f64>,
}

impl Drain {
    /// Weight of the newest count's rate in the average: half, so a change in load shows
    /// within a few refreshes while one noisy count (claims come in batches) does not swing
    /// the answer.
    const WEIGHT: f64 = 0.5;

    fn sample(&mut self, due: u64, at: Instant) -> Option<f64> {
        if let Some((before, then)) = self.last {
            let elapsed = at.duration_since(then).as_secs_f64();
            if elapsed > 0.0 {
                #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
                let now = (before as f64 - due as f64) / elapsed;
                self.rate = Some(match self.rate {
                    Some(rate) => rate + Self::WEIGHT * (now - rate),
                    None => now,
                });
            }
        }
        self.last = Some((due, at));
        self.rate
    }
}

/// When the refresh after one that `began` and ended at `ended` may start: `every` after it
/// began, or [`COUNT_SHARE`] times as long as it took, if longer.
fn next_refresh(began: Instant, ended: Instant, every: Duration) -> Instant {
    began + every.max(ended.duration_since(began).saturating_mul(COUNT_SHARE))
}

/// `Retry-After` for a backlog `excess` tasks over the limit draining at `rate` tasks per
/// second: the time until it is back under the limit, `ceil(excess / rate)`, clamped to
/// 1..=60 s. 60 when it is not draining (`rate <= 0`: growing or stuck); 1 before a rate is
/// known (one count so far).
fn retry_after_secs(excess: u64, rate: Option<f64>) -> u64 {
    let (min, max) = RETRY_AFTER_SECS;
    match rate {
        None => min,
        Some(rate) if rate <= 0.0 => max,
        Some(rate) => {
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a positive number of seconds, clamped right after"
            )]
            let secs = (excess as f64 / rate).ceil().min(max as f64) as u64;
            secs.clamp(min, max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_the_time_to_drain_the_excess_clamped() {
        assert_eq!(retry_after_secs(500, Some(100.0)), 5);
        assert_eq!(retry_after_secs(501, Some(100.0)), 6, "rounded up");
        assert_eq!(retry_after_secs(1, Some(1000.0)), 1, "at least a second");
        assert_eq!(
            retry_after_secs(1_000_000, Some(1.0)),
            60,
            "at most a minute"
        );
        assert_eq!(retry_after_secs(10, Some(0.0)), 60, "not draining");
        assert_eq!(retry_after_secs(10, Some(-5.0)), 60, "growing");
        assert_eq!(retry_after_secs(10, None), 1, "rate not known yet");
    }

    #[test]
    fn a_slow_count_is_refreshed_at_most_a_twentieth_of_the_time() {
        let began = Instant::now();
        let every = Duration::from_secs(1);
        let ms = Duration::from_millis;
        assert_eq!(next_refresh(began, began + ms(20), every), began + every);
        assert_eq!(
            next_refresh(began, began + ms(300), every),
            began + Duration::from_secs(6)
        );
    }

    #[test]
    fn the_drain_rate_follows_the_counts() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut drain = Drain::default();
        assert_eq!(drain.sample(1000, at(0)), None);
        assert_eq!(drain.sample(900, at(1)), Some(100.0));
        // 300 in 2 s: 150/s, averaged with the 100/s before.
        assert_eq!(drain.sample(600, at(3)), Some(125.0));
        // Stuck: the average halves toward zero.
        assert_eq!(drain.sample(600, at(4)), Some(62.5));
    }

    #[test]
    fn a_stuck_backlog_asks_for_a_minute() {
        let backlog = Backlog::new(10, Duration::from_secs(1));
        let start = Instant::now();
        backlog.record(110, start);
        assert_eq!(backlog.retry_after_secs(), 1);
        backlog.record(110, start + Duration::from_secs(1));
        assert_eq!(backlog.retry_after_secs(), 60);
        // Draining again at 50/s, averaged with the stuck second: 25/s; 50 over: 2 s.
        backlog.record(60, start + Duration::from_secs(2));
        assert_eq!(backlog.retry_after_secs(), 2);
    }
}
