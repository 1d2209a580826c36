//! The runtime's background loops: claiming, heartbeats, pruning.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::shared::Shared;
use super::ticker::{every, paced};
use crate::store::Fence;
use crate::writer::LocalRuntime;

/// Sweeps expired leases every rescue interval (or [`SHARE`](super::ticker::SHARE) times as
/// long as the last sweep took, if longer: a held vacuum horizon leaves the lease index full
/// of finished tasks' entries), beside the claim loop so a slow sweep never holds up claims,
/// until shutdown begins.
pub(crate) async fn rescue_loop(shared: Arc<Shared>) {
    paced(shared.config.rescue_interval, &shared.stopping, || async {
        match shared.store.rescue_expired().await {
            Ok(report) if report.requeued + report.failed > 0 => {
                tracing::warn!(
                    requeued = report.requeued,
                    failed = report.failed,
                    "recovered tasks whose lease expired (their worker stopped heart-beating)"
                );
                shared.backlog.store(true, Ordering::Relaxed);
                shared.wake.notify();
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "lease sweep failed"),
        }
    })
    .await;
}

/// Claims due tasks when woken (local enqueue, freed slot, known due time, a lease sweep that
/// handed tasks back) or at the poll interval. Never claims more than the free slots.
pub(crate) async fn claim_loop(shared: Arc<Shared>) {
    let config = &shared.config;
    let mut failures = 0u32;
    loop {
        if shared.stopping.is_cancelled() {
            return;
        }
        let mut pause = config.poll_interval;
        {
            let mut due = shared
                .next_due
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if due.is_some_and(|d| d <= Instant::now()) {
                *due = None;
            }
        }
        // The wakeups for new work this claim covers: only one after it began is a reason to
        // claim again once it found the queue empty.
        let seen = shared.wake.signals();
        let (room, free) = shared.room();
        if free == 0 {
            if slots_freed_meanwhile(&shared) {
                continue;
            }
        } else {
            // The claim rides on the client's next writer cycle (one transaction with the
            // inserts and completions queued meanwhile); the writer sizes it to the room
            // left then.
            let runtime: Arc<dyn LocalRuntime> = Arc::clone(&shared) as Arc<dyn LocalRuntime>;
            super::observe::claim_ahead(room - config.concurrency);
            let began = Instant::now();
            match shared.client.writer().claim(runtime).await {
                Ok(report) => {
                    failures = 0;
                    if report.limit > 0 {
                        // What a slot given back waits for a claim to refill it.
                        shared.estimate.claimed_in(began.elapsed());
                        let full = report.claimed == report.limit;
                        shared.backlog.store(full, Ordering::Relaxed);
                        if full {
                            pause = Duration::ZERO;
                        }
                    } else {
                        // No room by the time the claim was sized (local dispatch took it,
                        // or the queues with room are capped): wait for a slot given back.
                        shared.backlog.store(true, Ordering::Relaxed);
                    }
                }
                Err(error) => {
                    failures += 1;
                    pause = (config.poll_interval / 4 * 2u32.pow(failures.min(5)))
                        .min(Duration::from_secs(10));
                    tracing::warn!(%error, retry_in_ms = pause.as_millis() as u64, "claim failed; backing off");
                }
            }
        }
        if pause.is_zero() {
            tokio::task::yield_now().await;
            continue;
        }
        wait(&shared, pause, seen).await;
    }
}

/// No slot is free for a claim: whatever woke the loop waits for slots given back, and a
/// slot given back wakes the loop only while the backlog flag is set, so set it. Returns
/// whether enough slots were given back before the flag was set (those woke nobody) to
/// claim now. The slots' lock orders this look after the flag, and the flag before a later
/// release's look at it.
fn slots_freed_meanwhile(shared: &Shared) -> bool {
    shared.backlog.store(true, Ordering::Relaxed);
    batch_free(shared)
}

/// Whether a backlogged claim loop claims now: a batch worth of slots is free (or nothing
/// runs), so a burn-down claims in batches rather than one row per finished task.
fn batch_free(shared: &Shared) -> bool {
    let (room, free) = shared.room();
    free >= (room / 4).max(1) || free == room
}

/// Sleeps until woken, the poll interval, or a known due time, whichever comes first.
/// While backlogged and nearly full, it waits for enough slots to free for a useful batch;
/// otherwise only a wakeup for new work since the last claim began (`seen`: the count of
/// them then) ends the wait early.
async fn wait(shared: &Shared, pause: Duration, seen: u64) {
    // Peek only: the claim that follows the wakeup clears what it covered.
    let due = *shared
        .next_due
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut until = Instant::now() + pause;
    if let Some(due) = due {
        until = until.min(due);
    }
    loop {
        tokio::select! {
            () = shared.wake.notified() => {}
            () = tokio::time::sleep_until(until) => return,
            () = shared.stopping.cancelled() => return,
        }
        if shared.backlog.load(Ordering::Relaxed) {
            if batch_free(shared) {
                return;
            }
        } else if shared.wake.signals() != seen {
            return;
        }
        // Otherwise the wakeup was a slot given back while the last claim was in flight,
        // and that claim then found all there was: claiming again would find nothing.
    }
}

/// Extends the leases of every running attempt in one write; cancels attempts whose lease
/// another worker took.
pub(crate) async fn heartbeat_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(shared.config.heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let held: Vec<Fence> = shared.slots().running().map(|r| r.fence).collect();
        if held.is_empty() {
            continue;
        }
        match shared.store.heartbeat(&held, shared.config.lease).await {
            Ok(still) => {
                // Cancellations requested elsewhere: other processes tell this one nothing
                // (SQLite), or a `NOTIFY` was missed.
                shared.check_cancels(&still).await;
                if still.len() == held.len() {
                    continue;
                }
                let still: std::collections::HashSet<Fence> = still.into_iter().collect();
                for fence in held.iter().filter(|f| !still.contains(f)) {
                    let running = shared.slots().get(fence).cloned();
                    // An attempt that completed the task in its own transaction no longer
                    // holds the row because it finished it, not because it lost it.
                    if let Some(running) = running.filter(|r| !r.flags.completion_written()) {
                        tracing::warn!(task_id = %fence.id, attempt = fence.attempt,
                            "lease lost (expired and taken over); stopping this attempt");
                        shared.lost().insert(*fence);
                        running.soft.cancel();
                        // Same courtesy as at shutdown: a moment to stop cleanly, then drop it.
                        let grace = shared.config.cancel_grace;
                        tokio::spawn(async move {
                            tokio::time::sleep(grace).await;
                            running.hard.cancel();
                        });
                    }
                }
            }
            Err(error) => tracing::warn!(%error, tasks = held.len(), "heartbeat failed"),
        }
    }
}

/// Deletes `completed`/`cancelled` rows older than the retention, in bounded batches.
pub(crate) async fn prune_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let Some(retention) = shared.config.retention else {
        return;
    };
    every(shared.config.prune_interval, &stop, || {
        prune_round(&shared, retention, &stop)
    })
    .await;
}

/// One round of pruning: batches until one deletes less than a full batch.
async fn prune_round(shared: &Shared, retention: Duration, stop: &CancellationToken) {
    let batch = shared.config.prune_batch;
    let mut total = 0;
    loop {
        match shared.store.prune(retention, batch).await {
            Ok(n) => {
                total += n;
                if n < u64::from(batch) || stop.is_cancelled() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            Err(error) => {
                tracing::warn!(%error, "prune failed");
                break;
            }
        }
    }
    if total > 0 {
        tracing::debug!(deleted = total, "pruned finished tasks");
    }
}

/// Runs the store's housekeeping ([`WorkerStore::maintain`](crate::store::WorkerStore::maintain))
/// at the maintenance interval. Failures are logged and retried at the next tick.
pub(crate) async fn maintain_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let Some(period) = shared.config.maintain_interval else {
        return;
    };
    every(period, &stop, || async {
        match shared.store.maintain().await {
            Ok(done) if done.vacuumed => {
                tracing::debug!(dead_rows = done.dead_rows, "vacuumed the live task table");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "store maintenance failed"),
        }
    })
    .await;
}

/// How often a runtime looks for due tasks it cannot run, and how long such a task must have
/// been due to be reported: a type that other instances run is claimed well within a minute.
const UNCLAIMABLE_EVERY: Duration = Duration::from_secs(60);

/// Warns, at most once a minute (paced by the read's duration), about due tasks whose type this runtime does not know: it
/// never claims them, and they wait `pending` for an instance that registers their type. A
/// rolling deploy shows them for a moment (the new version's tasks, seen from an old
/// instance); when the warning stays, no running instance knows the type.
pub(crate) async fn unclaimable_loop(shared: Arc<Shared>, stop: CancellationToken) {
    if shared.names.is_empty() {
        // Claims nothing, by design (an instance that only enqueues): nothing to report.
        return;
    }
    paced(UNCLAIMABLE_EVERY, &stop, || async {
        match shared
            .store
            .unclaimable(&shared.names, UNCLAIMABLE_EVERY)
            .await
        {
            Ok(waiting) if !waiting.is_empty() => {
                let tasks: u64 = waiting.iter().map(|(_, n)| n).sum();
                let types: Vec<String> = waiting
                    .iter()
                    .map(|(name, n)| format!("{name} ({n})"))
                    .collect();
                tracing::warn!(
                    tasks,
                    types = %types.join(", "),
                    known = ?shared.names,
                    "due tasks of types this instance does not register are waiting; it will \
                     not run them (an instance that registers them will, or cancel them)"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not look for tasks of unknown types"),
        }
    })
    .await;
}
