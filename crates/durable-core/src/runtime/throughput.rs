//! Ended attempts per minute, counted in memory and added to the store's throughput every
//! few seconds ([`AdminStore::add_throughput`](crate::store::AdminStore::add_throughput)),
//! so a dashboard reads throughput without any write per task.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::observe::End;
use super::shared::Shared;
use crate::store::ThroughputBucket;

/// Minutes kept in memory while the store cannot be written: the store keeps 24 hours.
const KEEP_MINUTES: i64 = 24 * 60;

/// Counts per minute not yet added to the store, by the minute's start (Unix seconds).
#[derive(Debug, Default)]
pub(crate) struct Throughput {
    minutes: Mutex<BTreeMap<i64, [u64; 3]>>,
}

impl Throughput {
    fn minutes(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, [u64; 3]>> {
        // Plain counters: a panic elsewhere cannot leave them inconsistent.
        self.minutes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one ended attempt at `at`.
    pub(crate) fn record(&self, end: End, at: DateTime<Utc>) {
        let minute = at.timestamp().div_euclid(60) * 60;
        let slot = match end {
            End::Completed => 0,
            End::Retried => 1,
            End::Failed => 2,
        };
        self.minutes().entry(minute).or_default()[slot] += 1;
    }

    /// Takes every count, as buckets oldest first.
    pub(crate) fn take(&self) -> Vec<ThroughputBucket> {
        std::mem::take(&mut *self.minutes())
            .into_iter()
            .filter_map(|(minute, [c, r, f])| {
                DateTime::from_timestamp(minute, 0)
                    .map(|start| ThroughputBucket::new(start, c, r, f))
            })
            .collect()
    }

    /// Puts back counts whose write failed, for the next flush; counts older than the store
    /// keeps are dropped.
    pub(crate) fn put_back(&self, buckets: &[ThroughputBucket], now: DateTime<Utc>) {
        let oldest = now.timestamp() - KEEP_MINUTES * 60;
        let mut minutes = self.minutes();
        for b in buckets {
            let minute = b.start.timestamp();
            if minute < oldest {
                continue;
            }
            let counts = minutes.entry(minute).or_default();
            counts[0] += b.completed;
            counts[1] += b.retried;
            counts[2] += b.failed;
        }
    }
}

/// Adds the counts to the store every flush interval, and once more when `stop` fires
/// (after the runtime's attempts were drained).
pub(crate) async fn flush_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(shared.config.throughput_flush);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => flush(&shared).await,
        }
    }
    flush(&shared).await;
}

/// One flush: a failure is logged and the counts are kept for the next one.
pub(crate) async fn flush(shared: &Shared) {
    let buckets = shared.throughput.take();
    if buckets.is_empty() {
        return;
    }
    if let Err(error) = shared.store.add_throughput(shared.owner, &buckets).await {
        tracing::warn!(%error, minutes = buckets.len(),
            "could not add this runtime's throughput counts to the store; kept for the next flush");
        shared.throughput.put_back(&buckets, Utc::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_minute_and_survive_a_failed_flush() {
        let t = Throughput::default();
        let at = DateTime::from_timestamp(600, 0).expect("time");
        t.record(End::Completed, at);
        t.record(End::Completed, at + chrono::Duration::seconds(59));
        t.record(End::Retried, at + chrono::Duration::seconds(60));
        t.record(End::Failed, at + chrono::Duration::seconds(61));
        let taken = t.take();
        assert_eq!(
            taken,
            vec![
                ThroughputBucket::new(at, 2, 0, 0),
                ThroughputBucket::new(at + chrono::Duration::seconds(60), 0, 1, 1),
            ]
        );
        assert!(t.take().is_empty());
        t.record(End::Completed, at);
        t.put_back(&taken, at);
        assert_eq!(t.take()[0], ThroughputBucket::new(at, 3, 0, 0));
        // Older than the store keeps: dropped.
        t.put_back(&taken, at + chrono::Duration::days(2));
        assert!(t.take().is_empty());
    }
}
