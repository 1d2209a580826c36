//! Running one attempt and recording its outcome, fenced on owner + attempt.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tracing::Instrument;

use super::cancel::stopped;
use super::settle::settle;
use super::shared::Shared;
use super::slots::Running;
use crate::registry::Attempt;
use crate::steps::AttemptScope;
use crate::store::{ClaimedTask, Fence};

impl Shared {
    /// Registers and spawns claimed attempts whose slots are already taken.
    ///
    /// Tasks that arrive after shutdown handed its attempts back — a claim or a local insert
    /// that was in flight and committed after a forced or timed-out wait for it — are not
    /// started: they are handed back at once, so the row neither runs under a stopping
    /// runtime nor waits out its lease.
    pub(super) fn spawn_claimed(self: &Arc<Self>, tasks: Vec<ClaimedTask>) {
        {
            // Under the same lock as shutdown's collection (see `handed_back`).
            let mut slots = self.slots();
            if self.handed_back.load(Ordering::SeqCst) {
                for task in &tasks {
                    slots.give_back(&task.queue, 1);
                }
                drop(slots);
                self.hand_back_late(tasks.iter().map(ClaimedTask::fence).collect());
                return;
            }
            let now = self.store.now();
            for task in &tasks {
                super::observe::claimed(&task.name, &task.queue, task.due_at, now);
                slots.start(Running {
                    fence: task.fence(),
                    queue: task.queue.clone(),
                    soft: self.soft.child_token(),
                    hard: self.hard.child_token(),
                    requested: Arc::default(),
                    settling: false,
                    recording: None,
                    flags: Arc::default(),
                    since_us: Arc::default(),
                });
            }
            super::observe::busy(slots.running_count());
        }
        for task in tasks {
            self.tracker
                .spawn_on(run_claimed(Arc::clone(self), task), &self.handle);
        }
    }

    /// Requeues attempts that were never started because shutdown had already handed the
    /// others back.
    fn hand_back_late(&self, fences: Vec<Fence>) {
        let writer = self.client.writer().clone();
        let outcomes = fences
            .iter()
            .map(|fence| super::shutdown::hand_back(*fence, false))
            .collect();
        self.tracker.spawn_on(
            async move {
                match writer.settle(outcomes).await {
                    Ok(n) => tracing::info!(tasks = fences.len(), requeued = n.len(),
                        "tasks claimed after shutdown's hand-back were handed back unstarted"),
                    Err(error) => tracing::warn!(tasks = fences.len(), %error,
                        "could not hand back tasks claimed after shutdown's hand-back; they are recovered when their lease expires"),
                }
            },
            &self.handle,
        );
    }
}

/// How an attempt ended.
#[derive(Debug)]
pub(crate) enum Ended {
    Completed,
    /// Failed; `permanent` skips the remaining attempts.
    Failed {
        message: String,
        permanent: bool,
    },
    /// The row cannot be run by this code: its task type is not registered.
    BadRow(String),
    /// Stopped by shutdown: handed back by the shutdown requeue.
    Cancelled,
    /// Ended otherwise than completed after its task's cancellation was requested: written
    /// `cancelled`, with how it ended.
    CancelRequested(String),
    /// The task asked to run again after this long, without using up the attempt.
    Snoozed(Duration),
    /// The lease went to another worker: nothing to write.
    LeaseLost,
    /// A last attempt whose start could not be recorded (the store stayed unreachable): it
    /// did not run; its lease expires and the sweep hands it back uncounted.
    NotStarted,
}

/// Runs one claimed attempt to its end and records the outcome. The slot was taken by the
/// caller and is given back here, however the attempt ends.
///
/// One guard covers the attempt's whole life: a panic anywhere — decoding the payload,
/// cloning the state, the synchronous part of `Task::run`, the task's future, the `Display`
/// of its error — is a failed attempt like any other (retried or failed as its attempts
/// say), never a runner that dies holding its slot while heartbeats keep its lease alive.
pub(crate) async fn run_claimed(shared: Arc<Shared>, task: ClaimedTask) {
    let span = crate::trace::attempt_span(&task);
    run_attempt(shared, task).instrument(span).await;
}

/// [`run_claimed`] inside the attempt's span.
async fn run_attempt(shared: Arc<Shared>, task: ClaimedTask) {
    let fence = task.fence();
    let Some(running) = shared.slots().get(&fence).cloned() else {
        return;
    };
    let mut slot = SlotGuard {
        shared: &shared,
        fence,
        keep: false,
    };
    let outcome = match wait_for_slot(&shared, &running).await {
        Ok(permit) => {
            let started = std::time::Instant::now();
            let outcome = AssertUnwindSafe(execute(&shared, &task, &running))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Ended::Failed {
                    message: format!("task panicked: {}", crate::error::panic_message(&*panic)),
                    permanent: false,
                });
            if !matches!(outcome, Ended::NotStarted) {
                let ran = started.elapsed();
                shared.estimate.ran_for(ran);
                super::observe::ran(&task.name, &task.queue, ran);
            }
            drop(permit);
            outcome
        }
        // Stopped before it ran: handed back at shutdown, nothing to write after a lost
        // lease, `cancelled` when that was requested.
        Err(()) => stopped(&shared, &fence).or_cancel(|| "cancelled before it started".to_owned()),
    };
    if matches!(outcome, Ended::Cancelled) {
        // Stays registered: the shutdown requeue hands it back and frees the slot (or did).
        slot.keep = true;
    } else {
        shared.release(&fence);
    }
    let settling = async {
        let outcome = if running.flags.completion_written() {
            // Written in the application's transaction: the row says whether it committed.
            match super::written::check(&shared, &task, outcome).await {
                Some(outcome) => outcome,
                None => return,
            }
        } else {
            outcome
        };
        settle(&shared, &task, outcome).await;
    };
    if let Err(panic) = AssertUnwindSafe(settling).catch_unwind().await {
        // The slot is still freed; the row comes back when its lease expires.
        tracing::error!(task_id = %fence.id, attempt = fence.attempt, panic = %crate::error::panic_message(&*panic),
            "recording a task's outcome panicked");
    }
}

/// The permits attempts run under with [`claim_ahead`](super::RuntimeBuilder::claim_ahead):
/// one per slot, so tasks claimed ahead wait for a running one to end. `None` when nothing
/// is ever claimed ahead.
pub(super) fn run_gate(config: &super::Settings) -> Option<Arc<tokio::sync::Semaphore>> {
    (config.claim_ahead != super::ClaimAhead::Fixed(0))
        .then(|| Arc::new(tokio::sync::Semaphore::new(config.concurrency)))
}

/// A task claimed ahead ([`claim_ahead`](super::RuntimeBuilder::claim_ahead)) waits for a
/// running one to end: the permit it runs under. `Err` when the runtime stopped the attempt
/// first (shutdown, a lost lease, a requested cancellation).
async fn wait_for_slot(
    shared: &Shared,
    running: &Running,
) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ()> {
    let permit = match &shared.running {
        // A stop wins over a slot given back at the same moment (at shutdown the running
        // task returns when told to stop, freeing its slot): a task claimed ahead never
        // starts once the runtime asked its attempts to stop.
        Some(gate) => tokio::select! {
            biased;
            () = running.soft.cancelled() => return Err(()),
            () = running.hard.cancelled() => return Err(()),
            permit = Arc::clone(gate).acquire_owned() => permit.ok(),
        },
        None => None,
    };
    // Before the look at the stop: shutdown fires the stop first and reads this after, so
    // an attempt it reads as not started never runs its task's code.
    shared.estimate.started(&running.since_us);
    if running.soft.is_cancelled() {
        return Err(());
    }
    Ok(permit)
}

/// Frees an attempt's slot when its runner ends — returned, panicked or dropped — unless
/// the attempt is kept for the shutdown requeue.
struct SlotGuard<'a> {
    shared: &'a Shared,
    fence: Fence,
    keep: bool,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        if !self.keep {
            self.shared.finish(&self.fence);
        }
    }
}

async fn execute(shared: &Shared, task: &ClaimedTask, running: &Running) -> Ended {
    let fence = task.fence();
    let attempt = Attempt {
        id: task.id,
        attempt: task.attempt,
        max_attempts: task.max_attempts,
        // A child: a task (or a helper it hands the token to) that cancels it stops only
        // itself; whether the attempt was stopped by the runtime is read from the runtime's
        // own token below.
        cancel: running.soft.child_token(),
        stop: running.soft.clone(),
        requested: Arc::clone(&running.requested),
        client: shared.client.clone(),
        scope: Arc::new(AttemptScope::new(
            fence,
            Arc::clone(&shared.store),
            Arc::clone(&running.flags),
        )),
    };
    if running.hard.is_cancelled() {
        // Started as shutdown forces its way out: run none of the task's code.
        return stopped(shared, &fence).or_cancel(|| "cancelled before it started".to_owned());
    }
    if task.attempt >= task.max_attempts {
        // A last attempt: record that it starts, so a crash before this point does not use
        // it up (the lease sweep hands an unstarted last attempt back uncounted).
        // Retried like an outcome write: the task's code runs only once the mark is known
        // to be stored, so the sweep never takes a run for one that never started.
        match write(shared, &fence, "mark started", || {
            shared.store.mark_started(&fence)
        })
        .await
        {
            Some(true) => {}
            Some(false) => return Ended::LeaseLost,
            None => return Ended::NotStarted,
        }
    }
    let future = match shared.registry.start(&task.name, &task.payload, attempt) {
        None => return Ended::BadRow(format!("unknown task type `{}`", task.name)),
        // A payload this code cannot decode is a failed attempt, retried with the task
        // type's backoff within its attempts: during a rolling deploy or a rollback another
        // version may read it, and a fixed deploy may come before the attempts run out.
        Some(Err(e)) => {
            return Ended::Failed {
                message: format!("cannot decode payload of task type `{}`: {e}", task.name),
                permanent: false,
            }
        }
        Some(Ok(future)) => future,
    };
    let timeout = shared.registry.options(&task.name).and_then(|o| o.timeout);
    let guarded = AssertUnwindSafe(future).catch_unwind();
    let timed = async {
        match timeout {
            Some(limit) => tokio::time::timeout(limit, guarded)
                .await
                .map_err(|_| limit),
            None => Ok(guarded.await),
        }
    };
    let result = tokio::select! {
        biased;
        () = running.hard.cancelled() => return stopped(shared, &fence),
        result = timed => result,
    };
    if running.flags.lease_lost() {
        // A fenced write of its own (a step's checkpoint, a completion in a transaction)
        // found the task taken over: nothing more to write for it.
        return Ended::LeaseLost;
    }
    match result {
        Ok(Ok(Ok(()))) => Ended::Completed,
        // Asked to stop because its task was cancelled: however it ended, it is cancelled
        // (a snooze or an error would run it again).
        Ok(_) | Err(_) if running.requested.load(Ordering::SeqCst) => stopped(shared, &fence)
            .or_cancel(|| match &result {
                Ok(Ok(Err(error))) => error.to_string(),
                Ok(Err(panic)) => {
                    format!("task panicked: {}", crate::error::panic_message(&**panic))
                }
                Err(limit) => format!("timed out after {}", humanize(*limit)),
                Ok(Ok(Ok(()))) => String::new(),
            }),
        // An attempt that gave up because the runtime asked it to stop (shutdown, or its
        // lease was lost) is handed back, not failed.
        Ok(Ok(Err(_)) | Err(_)) if running.soft.is_cancelled() => stopped(shared, &fence),
        Ok(Ok(Err(error))) if error.snoozed().is_some() => {
            Ended::Snoozed(error.snoozed().unwrap_or_default())
        }
        Ok(Ok(Err(error))) => Ended::Failed {
            message: error.to_string(),
            permanent: error.is_permanent(),
        },
        Ok(Err(panic)) => Ended::Failed {
            message: format!("task panicked: {}", crate::error::panic_message(&*panic)),
            permanent: false,
        },
        Err(limit) => Ended::Failed {
            message: format!("timed out after {}", humanize(limit)),
            permanent: false,
        },
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Performs a fenced write, retrying store errors with backoff for up to one lease. Returns
/// `Some(applied)`, or `None` if the store stayed unreachable.
pub(super) async fn write<F, Fut>(
    shared: &Shared,
    fence: &Fence,
    what: &'static str,
    op: F,
) -> Option<bool>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = crate::Result<bool>>,
{
    let give_up = tokio::time::Instant::now() + shared.config.lease;
    let mut pause = Duration::from_millis(50);
    loop {
        match op().await {
            Ok(true) => return Some(true),
            // The shutdown's hand-back wrote this very outcome first.
            Ok(false) if shared.slots().was_written_at_hand_back(fence) => return Some(true),
            Ok(false) => {
                shared.stats.stale();
                tracing::warn!(task_id = %fence.id, attempt = fence.attempt, write = what,
                    "stale write rejected: this worker no longer holds the task (lease expired and it was re-claimed or rescued)");
                return Some(false);
            }
            Err(error) if tokio::time::Instant::now() + pause < give_up => {
                tracing::warn!(task_id = %fence.id, write = what, %error, "store write failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(error) => {
                tracing::error!(task_id = %fence.id, write = what, %error,
                    "store write failed; the task will be re-run after its lease expires");
                return None;
            }
        }
    }
}
