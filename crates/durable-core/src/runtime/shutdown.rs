//! Draining and stopping a runtime within its grace.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::handle::Runtime;
use super::shared::Shared;
use super::slots::Recording;
use crate::ids::TaskId;
use crate::store::{Fence, Outcome, Settle};
use crate::writer::LocalRuntime;

/// What [`Runtime::shutdown`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Attempts that were running when shutdown began and finished on their own, their
    /// outcome written (by themselves, or by the hand-back when their own write had not
    /// landed by then).
    pub finished: usize,
    /// Attempts stopped and handed back as `pending` (rows changed by the requeue).
    pub requeued: u64,
    /// Attempts whose hand-back was not confirmed within the grace (the database failed or
    /// did not answer in time): those stopped, and those that finished but whose outcome
    /// neither their own write nor the hand-back could record. Their rows stay `processing`
    /// until their lease expires, when the lease sweep of any instance requeues them, the
    /// attempt counted. Neither finished nor requeued; a non-zero count is also logged as
    /// an error.
    pub not_handed_back: usize,
    /// Whether everything finished within the grace period.
    pub drained: bool,
}

impl Runtime {
    /// Drains and stops, **within `grace`**: stop claiming (after one last claim if this
    /// process committed due tasks since the latest claim began, so what it acknowledged
    /// just before the signal is drained too); wait for running attempts; then cancel the
    /// rest (they may observe [`TaskContext::cancelled`](crate::TaskContext::cancelled) for
    /// the cancel grace) and mark their rows `pending` again in one statement — lease
    /// released, attempt not counted — so the next process starts them at once.
    ///
    /// The grace is a promise to whoever waits for the process to exit (an orchestrator
    /// that sends SIGKILL after its timeout): every phase fits in it, but for the last
    /// write. The end of the grace is kept for the hand-back — the cancel grace (at most a
    /// quarter of `grace`) and a requeue reserve — and attempts that are still recording
    /// their outcome when the reserve begins (a write stuck on a database that does not
    /// answer) are not waited for: the hand-back writes their outcome in the same
    /// statement, so a completion is not run again and a failure counts its attempt. Only
    /// the attempts the shutdown stopped go back uncounted. The reserve is a tenth of `grace`, or
    /// twice the slowest write of the last 10 to 20 seconds when that is more (a write in
    /// flight to wait out, then its own), at most 1 s and at most half of `grace`. The
    /// requeue itself is given at least 100 ms, or that twice the slowest write (at most
    /// 1 s), even past the grace: a zero grace still hands the rows back, and a database
    /// that commits slowly right now is given the time its writes take rather than leaving
    /// the rows to wait out their leases (each such attempt then counts). After
    /// [`force_shutdown`](Self::force_shutdown) every wait ends at once.
    ///
    /// Call it after the HTTP server stopped accepting, so in-flight requests have written
    /// their tasks first.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let shared = &self.shared;
        let budget = Budget::new(
            grace,
            shared.config.cancel_grace,
            shared.client.writer().recent_write(),
        );
        shared.stopping.cancel();
        shared.wake.notify();
        // A claim in flight finishes and spawns what it took before the drain begins;
        // inserts that reserved local capacity either start their tasks or give it back.
        shared.reservations.close();
        let settled = within(self.claimer.wait(), budget.drain_until, &self.force).await
            && within(shared.reservations.wait(), budget.drain_until, &self.force).await
            && within(claim_uncovered(shared), budget.drain_until, &self.force).await;
        let running_at_start = shared.slots().running_count();
        shared.tracker.close();
        let drained =
            settled && within(shared.tracker.wait(), budget.drain_until, &self.force).await;
        let (mut stopped, mut written) = (0, Written::default());
        if !drained {
            shared.soft.cancel();
            within(shared.tracker.wait(), budget.cancel_until(), &self.force).await;
            shared.hard.cancel();
            // Dropped futures return at once; runners still recording an outcome wait on
            // the database, and only until the reserve begins.
            within(shared.tracker.wait(), budget.requeue_from, &self.force).await;
            let hand_back = collect(shared);
            stopped = hand_back.stopped.len();
            written = write_hand_back(shared, hand_back, budget.requeue_deadline()).await;
        }
        self.maintenance.cancel();
        within(self.loops.wait(), budget.deadline, &self.force).await;
        // Every attempt collected for the hand-back was stopped, whatever its requeue did:
        // only the others finished on their own, their outcome recorded unless the
        // hand-back could not write it either.
        let report = ShutdownReport {
            finished: running_at_start.saturating_sub(stopped + written.unrecorded),
            requeued: written.requeued,
            not_handed_back: written.unconfirmed + written.unrecorded,
            drained,
        };
        tracing::info!(
            finished = report.finished,
            requeued = report.requeued,
            not_handed_back = report.not_handed_back,
            drained,
            took_ms = budget.started.elapsed().as_millis() as u64,
            "durable runtime stopped"
        );
        report
    }
}

/// The least time a shutdown's requeue is given, whatever the grace.
const MIN_REQUEUE: Duration = Duration::from_millis(100);

/// The most a shutdown's requeue is given past the grace, however slow recent writes were.
const MAX_REQUEUE: Duration = Duration::from_secs(1);

/// How a shutdown spends its grace: drain, then cancel, then hand back.
#[derive(Debug)]
struct Budget {
    started: Instant,
    /// Running attempts may finish on their own until here.
    drain_until: Instant,
    /// Cooperative cancellation lasts this long at most.
    cancel: Duration,
    /// From here on only the requeue runs.
    requeue_from: Instant,
    /// The end of the grace.
    deadline: Instant,
    /// What the requeue is given at least, from when it starts.
    requeue_least: Duration,
}

impl Budget {
    /// The budget of `grace`, the hand-back sized for writes as slow as `recent_write`.
    fn new(grace: Duration, cancel_grace: Duration, recent_write: Duration) -> Self {
        let started = Instant::now();
        let deadline = started + grace;
        // A write queued now may wait for one in flight, then make its own. One stalled
        // write (a restart) must not take the drain's time for long: at most 1 s.
        let hand_back = recent_write.saturating_mul(2).min(MAX_REQUEUE);
        let reserve = (grace / 10).max(hand_back).min(MAX_REQUEUE).min(grace / 2);
        let cancel = cancel_grace.min(grace / 4);
        let requeue_from = deadline - reserve;
        Self {
            started,
            drain_until: requeue_from.checked_sub(cancel).unwrap_or(started),
            cancel,
            requeue_from,
            deadline,
            requeue_least: MIN_REQUEUE.max(hand_back),
        }
    }

    fn cancel_until(&self) -> Instant {
        (Instant::now() + self.cancel).min(self.requeue_from)
    }

    /// The requeue gets what is left of the grace, and at least `requeue_least`: a grace
    /// too short to hand anything back (zero, say) still makes one attempt rather than
    /// leaving the rows to wait out their leases.
    fn requeue_deadline(&self) -> Instant {
        self.deadline.max(Instant::now() + self.requeue_least)
    }
}

/// Waits for `wait` until `deadline` or a forced shutdown: false if it did not finish.
async fn within(
    wait: impl std::future::Future<Output = ()>,
    deadline: Instant,
    force: &CancellationToken,
) -> bool {
    tokio::select! {
        biased;
        () = wait => true,
        () = force.cancelled() => false,
        () = tokio::time::sleep_until(deadline) => false,
    }
}

/// One last claim when this process committed tasks after the latest claim began (a
/// request's transaction that committed just before the signal, while a claim was running):
/// they were acknowledged by this instance, so it drains them within the grace rather than
/// leaving them for the next start. Pending rows of other origins are left for other workers.
async fn claim_uncovered(shared: &Arc<Shared>) {
    if shared.wake.commits() == shared.covered.load(Ordering::SeqCst) || shared.room().1 == 0 {
        return;
    }
    let runtime: Arc<dyn LocalRuntime> = Arc::clone(shared) as Arc<dyn LocalRuntime>;
    match shared.client.writer().claim(runtime).await {
        Ok(report) => tracing::debug!(
            claimed = report.claimed,
            "claimed tasks committed here just before shutdown"
        ),
        Err(error) => tracing::warn!(
            %error,
            "claim of tasks committed just before shutdown failed; they stay pending"
        ),
    }
}

/// How shutdown hands an attempt back to `pending`. One that may have run its task's code is
/// a requeue ([`Outcome::Requeued`]: counted, and past the limit its attempt counts). One
/// that never started — claimed ahead and still waiting for a slot, or claimed as shutdown
/// began — goes back as it was, attempt uncounted and no requeue, as a snooze of no delay
/// does: being claimed and handed back unstarted, however often, never uses the task up.
pub(super) fn hand_back(fence: Fence, started: bool) -> Settle {
    let outcome = if started {
        Outcome::Requeued
    } else {
        Outcome::Snoozed {
            delay: Duration::ZERO,
        }
    };
    Settle::new(fence, outcome)
}

/// What a shutdown writes for the attempts it still holds once the drain and the cancel
/// grace are over.
#[derive(Debug, Default)]
struct HandBack {
    /// Attempts it stopped, back to `pending` (see [`hand_back`]).
    stopped: Vec<Settle>,
    /// Attempts that finished with a completion still being written.
    complete: Vec<Fence>,
    /// Attempts that finished with another outcome still being written.
    recorded: Vec<Settle>,
}

/// Takes every attempt this runtime still holds for the hand-back. An attempt whose outcome
/// is known but not yet written (the database failed or did not answer its write) has that
/// outcome written by the hand-back: its task's code ran to its end, so it is not handed
/// back uncounted as an interrupted attempt would be (a failure counts its attempt, a
/// completion is not run again).
fn collect(shared: &Shared) -> HandBack {
    // Under the slots' lock, so an attempt registered from now on knows it was not
    // collected and hands itself back.
    let mut slots = shared.slots();
    shared.handed_back.store(true, Ordering::SeqCst);
    let mut collected = HandBack::default();
    for running in slots.running() {
        match &running.recording {
            Some(Recording::Complete) => collected.complete.push(running.fence),
            Some(Recording::Settle(outcome)) => collected
                .recorded
                .push(Settle::new(running.fence, outcome.clone())),
            None => collected
                .stopped
                .push(hand_back(running.fence, running.started())),
        }
    }
    let fences: Vec<Fence> = collected
        .stopped
        .iter()
        .chain(&collected.recorded)
        .map(|s| s.fence)
        .chain(collected.complete.iter().copied())
        .collect();
    for fence in &fences {
        slots.finish(fence);
    }
    collected
}

/// What the hand-back's write did.
#[derive(Debug, Default)]
struct Written {
    /// Rows of stopped attempts it changed (an attempt whose lease went elsewhere changes
    /// none).
    requeued: u64,
    /// Stopped attempts whose hand-back was not confirmed.
    unconfirmed: usize,
    /// Finished attempts whose outcome it could not confirm either.
    unrecorded: usize,
}

/// Writes the hand-back in one cycle, retrying what failed until `deadline`. The outcomes
/// it wrote for attempts still recording them are noted, so those attempts' own writes,
/// landing after it, count them as written.
async fn write_hand_back(shared: &Shared, mut hand_back: HandBack, deadline: Instant) -> Written {
    let mut written = Written::default();
    if hand_back.stopped.is_empty()
        && hand_back.complete.is_empty()
        && hand_back.recorded.is_empty()
    {
        return written;
    }
    let stopped: HashSet<TaskId> = hand_back.stopped.iter().map(|s| s.fence.id).collect();
    let writer = shared.client.writer();
    let mut pause = Duration::from_millis(50);
    loop {
        let settle: Vec<Settle> = hand_back
            .stopped
            .iter()
            .chain(&hand_back.recorded)
            .cloned()
            .collect();
        let write = writer.write_together(hand_back.complete.clone(), settle);
        let Ok((completed, settled)) = tokio::time::timeout_at(deadline, write).await else {
            tracing::error!("shutdown requeue did not finish within the grace");
            break;
        };
        let mut failed = None;
        match completed {
            Ok(ids) => {
                shared.slots().written_at_hand_back(
                    hand_back.complete.drain(..).filter(|f| ids.contains(&f.id)),
                );
            }
            Err(error) => failed = Some(error),
        }
        match settled {
            Ok(ids) => {
                written.requeued += ids.iter().filter(|id| stopped.contains(id)).count() as u64;
                hand_back.stopped.clear();
                shared.slots().written_at_hand_back(
                    hand_back
                        .recorded
                        .drain(..)
                        .map(|s| s.fence)
                        .filter(|f| ids.contains(&f.id)),
                );
            }
            Err(error) => failed = Some(error),
        }
        let Some(error) = failed else {
            return written;
        };
        if Instant::now() + pause >= deadline {
            tracing::error!(%error, "shutdown requeue failed");
            break;
        }
        tracing::warn!(%error, "shutdown requeue failed; retrying");
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
    written.unconfirmed = hand_back.stopped.len();
    written.unrecorded = hand_back.complete.len() + hand_back.recorded.len();
    tracing::error!(
        stopped = written.unconfirmed,
        finished = written.unrecorded,
        "tasks not handed back: they will be recovered when their lease expires"
    );
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// (drain, reserve, least requeue) of a budget, in milliseconds.
    fn shape(grace: Duration, recent_write: Duration) -> (u128, u128, u128) {
        let b = Budget::new(grace, 50 * MS, recent_write);
        (
            (b.drain_until - b.started).as_millis(),
            (b.deadline - b.requeue_from).as_millis(),
            b.requeue_least.as_millis(),
        )
    }

    #[test]
    fn fast_writes_keep_a_tenth_of_the_grace_for_the_hand_back() {
        assert_eq!(shape(1_000 * MS, 3 * MS), (850, 100, 100));
        assert_eq!(shape(30_000 * MS, 3 * MS), (28_950, 1_000, 100));
    }

    #[test]
    fn slow_writes_move_the_hand_back_earlier_and_give_it_their_time() {
        // 150 ms writes: 300 ms for a write in flight and the requeue's own.
        assert_eq!(shape(1_000 * MS, 150 * MS), (650, 300, 300));
        // A short grace keeps half for the drain and the cancel.
        assert_eq!(shape(300 * MS, 150 * MS), (100, 150, 300));
        // Past the grace by one second at most.
        assert_eq!(shape(1_000 * MS, 5_000 * MS), (450, 500, 1_000));
        // A stalled write takes one second of a long grace's drain, no more.
        assert_eq!(shape(30_000 * MS, 5_000 * MS), (28_950, 1_000, 1_000));
    }

    #[test]
    fn a_zero_grace_still_hands_back() {
        assert_eq!(shape(Duration::ZERO, Duration::ZERO), (0, 0, 100));
    }
}
