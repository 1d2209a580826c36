//! [`every`]: a round of work on a fixed period until a token is cancelled, for the runtime's
//! periodic loops (pruning, housekeeping, the state gauges, the report of unknown task types).

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
