//! [`every`]: a round of work on a fixed period until a token is cancelled, for the runtime's
//! periodic loops (pruning, housekeeping); [`paced`]: the same for reads that may grow slow
//! (the state gauges, the report of unknown task types, the lease sweep), never more than a
//! share of the time.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `round` at once and then every `every` until `stop` (a round that overruns delays the
/// next instead of bunching the missed ones). A round in progress is not interrupted.
pub(crate) async fn every<F, Fut>(every: Duration, stop: &CancellationToken, mut round: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        round().await;
    }
}

/// How many times a paced round's own duration the next one waits, at least: a read that gets
/// slow (under a held vacuum horizon, PostgreSQL keeps an index entry for every task finished
/// since, and a count or a sweep passes them all) then takes at most a twentieth of the
/// database time it competes for, however long the horizon stays held.
pub(crate) const SHARE: u32 = 20;

/// The pause between the starts of two paced rounds: `every`, or [`SHARE`] times as long as
/// the first `took`, if longer.
fn pause_after(every: Duration, took: Duration) -> Duration {
    every.max(took.saturating_mul(SHARE))
}

/// Like [`every`], for rounds that read what may grow slow: each round starts `every` after
/// the last one began, or [`SHARE`] times as long as it took, if longer.
pub(crate) async fn paced<F, Fut>(every: Duration, stop: &CancellationToken, mut round: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        if stop.is_cancelled() {
            return;
        }
        let began = tokio::time::Instant::now();
        round().await;
        let next = began + pause_after(every, began.elapsed());
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(next) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Rounds of 10 ms keep the period; rounds of 200 ms wait 20 times that, from their start.
    #[tokio::test(start_paused = true)]
    async fn paced_rounds_keep_their_period_until_twenty_times_their_duration_is_longer() {
        let origin = tokio::time::Instant::now();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (log, halt) = (Arc::clone(&starts), stop.clone());
        let mut round = 0u32;
        paced(Duration::from_secs(1), &stop, move || {
            round += 1;
            let (log, halt) = (Arc::clone(&log), halt.clone());
            let this = round;
            async move {
                log.lock().expect("log").push(origin.elapsed());
                let took = if this <= 2 { 10 } else { 200 };
                tokio::time::sleep(Duration::from_millis(took)).await;
                if this == 5 {
                    halt.cancel();
                }
            }
        })
        .await;
        let starts: Vec<u64> = starts
            .lock()
            .expect("log")
            .iter()
            .map(|d| u64::try_from(d.as_millis()).expect("ms"))
            .collect();
        assert_eq!(starts, [0, 1_000, 2_000, 6_000, 10_000]);
    }

    #[test]
    fn the_pause_is_the_period_or_twenty_times_the_round() {
        let every = Duration::from_secs(15);
        assert_eq!(pause_after(every, Duration::from_millis(75)), every);
        assert_eq!(
            pause_after(every, Duration::from_secs(2)),
            Duration::from_secs(40)
        );
    }
}
