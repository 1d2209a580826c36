//! The open-loop producer: a batch every `insert_every` holding what the offered rate owes
//! since the start, committed in a task of its own so a slow commit does not delay the next
//! batch. Only when [`IN_FLIGHT`] commits are pending does the producer wait, and then the
//! tasks it owes go into the next batch: the shortfall shows as offered minus inserted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use durable_core::{CancellationToken, Client};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::histogram::Histogram;
use super::worker::{unix_micros, Timed};
use crate::Result;

/// Most batch commits pending at once.
const IN_FLIGHT: usize = 64;

/// What the producer did, read by the sampler.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Tasks the offered rate called for so far.
    pub(crate) offered: AtomicU64,
    /// Tasks committed so far.
    pub(crate) inserted: AtomicU64,
    /// Batches that failed to commit.
    pub(crate) failed_batches: AtomicU64,
    /// Commit latencies of the batches since the sampler last took them.
    pub(crate) commit: Mutex<Histogram>,
    /// Per committed batch, by the stamp its tasks carry: µs from the stamp to the commit's
    /// acknowledgement (the run's batches, a few per 100 ms: kept for the whole run).
    pub(crate) acked: Mutex<HashMap<i64, i64>>,
}

impl Counters {
    /// The commit latencies since the previous call.
    pub(crate) fn take_commit(&self) -> Histogram {
        std::mem::take(&mut *self.commit.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Produces at `rate` tasks/s until `stop` fires, then waits for the pending commits.
pub(crate) async fn run(
    client: Client,
    rate: u64,
    every: Duration,
    counters: Arc<Counters>,
    stop: CancellationToken,
) -> Result<()> {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut commits = JoinSet::new();
    let started = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut issued: u64 = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let owed = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        counters.offered.store(owed, Ordering::Relaxed);
        if owed <= issued {
            continue;
        }
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            continue; // every commit slot busy: owe these to the next batch
        };
        let n = owed - issued;
        issued = owed;
        let mut batch = client.batch();
        let at_us = unix_micros();
        for _ in 0..n {
            batch.push(&Timed { at_us })?;
        }
        let counters = Arc::clone(&counters);
        commits.spawn(async move {
            let begun = unix_micros();
            let outcome = batch.commit().await;
            let acked = unix_micros();
            let took = acked - begun;
            drop(permit);
            match outcome {
                Ok(ids) => {
                    counters
                        .inserted
                        .fetch_add(ids.len() as u64, Ordering::Relaxed);
                    counters
                        .commit
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .record(took);
                    counters
                        .acked
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(at_us, acked - at_us);
                }
                Err(error) => {
                    counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                    eprintln!("  horizon: a batch of {n} failed to commit: {error}");
                }
            }
        });
        // Reap finished commits so the set does not grow for the whole run.
        while commits.try_join_next().is_some() {}
    }
    while commits.join_next().await.is_some() {}
    Ok(())
}
