//! Recording how an attempt ended: the fenced write, and what follows it (counters,
//! metrics, throughput, alerts, the waiters).

use super::alert::{AlertKind, TaskEvent};
use super::execute::{write, Ended};
use super::observe::End;
use super::shared::Shared;
use super::slots::Recording;
use crate::store::{ClaimedTask, Fence, Outcome, Settle};

/// Records an outcome. Store errors are retried (a database blip must not turn a finished
/// attempt into a re-run) until the lease would expire anyway. The outcome is noted on the
/// attempt's slot first: a shutdown that finds the write still pending writes it in its
/// hand-back rather than handing the attempt back uncounted.
pub(super) async fn settle(shared: &Shared, task: &ClaimedTask, outcome: Ended) {
    tracing::Span::current().record("outcome", outcome.label(task));
    let fence = task.fence();
    let (id, name, attempt, max) = (task.id, task.name.as_str(), task.attempt, task.max_attempts);
    match outcome {
        Ended::Completed => {
            let writer = shared.client.writer();
            shared.slots().recording(&fence, Recording::Complete);
            let applied = write(shared, &fence, "complete", || writer.complete(fence)).await;
            if applied == Some(true) {
                shared.stats.completed();
                ended(shared, task, End::Completed);
                shared.client.finished(id);
                tracing::debug!(task_id = %id, task_name = name, attempt, "task completed");
            }
        }
        Ended::Failed { message, permanent } if !permanent && attempt < max => {
            let backoff = shared
                .registry
                .options(name)
                .map(|o| o.backoff.clone())
                .unwrap_or_default();
            let delay = backoff.delay(attempt);
            let outcome = Outcome::Retry {
                delay,
                error: message.clone(),
            };
            let applied = settle_as(shared, fence, "retry", outcome).await;
            if applied == Some(true) {
                shared.stats.retried();
                ended(shared, task, End::Retried);
                if let Some(alerts) = shared.alerts.as_ref().filter(|a| a.on_retry(attempt)) {
                    alerts.raise(event(task, AlertKind::Retrying, message.clone(), false));
                }
                shared.wake_at(delay);
                tracing::warn!(task_id = %id, task_name = name, attempt, max_attempts = max,
                    retry_in_ms = delay.as_millis() as u64, error = %message, "task attempt failed; will retry");
            }
        }
        Ended::Failed { message, permanent } => {
            let outcome = Outcome::Failed {
                error: message.clone(),
            };
            let applied = settle_as(shared, fence, "fail", outcome).await;
            if applied == Some(true) {
                shared.stats.failed();
                ended(shared, task, End::Failed);
                if let Some(alerts) = &shared.alerts {
                    alerts.raise(event(task, AlertKind::Dead, message.clone(), permanent));
                }
                shared.client.finished(id);
                tracing::error!(task_id = %id, task_name = name, attempt, max_attempts = max, permanent,
                    error = %message, "task failed permanently");
            }
        }
        Ended::BadRow(message) => {
            let outcome = Outcome::Failed {
                error: message.clone(),
            };
            let applied = settle_as(shared, fence, "fail", outcome).await;
            if applied == Some(true) {
                shared.stats.failed();
                ended(shared, task, End::Failed);
                if let Some(alerts) = &shared.alerts {
                    alerts.raise(event(task, AlertKind::Dead, message.clone(), true));
                }
                shared.client.finished(id);
                tracing::error!(task_id = %id, task_name = name, attempt, error = %message,
                    "task cannot run; marked failed");
            }
        }
        Ended::Cancelled => {
            tracing::info!(task_id = %id, task_name = name, attempt, "task stopped by shutdown; will be requeued");
        }
        Ended::CancelRequested(message) => {
            let error = format!("cancelled: {message}");
            let applied = settle_as(shared, fence, "cancel", Outcome::Cancelled { error }).await;
            if applied == Some(true) {
                shared.client.finished(id);
                tracing::info!(task_id = %id, task_name = name, attempt, how = %message, "task cancelled");
            }
        }
        Ended::Snoozed(delay) => {
            let applied = settle_as(shared, fence, "snooze", Outcome::Snoozed { delay }).await;
            if applied == Some(true) {
                shared.wake_at(delay);
                tracing::debug!(task_id = %id, task_name = name, attempt,
                    snooze_ms = delay.as_millis() as u64, "task snoozed");
            }
        }
        Ended::LeaseLost => {
            tracing::warn!(task_id = %id, task_name = name, attempt, "task stopped: its lease was lost to another worker");
        }
        Ended::NotStarted => {
            tracing::warn!(task_id = %id, task_name = name, attempt,
                "last attempt not started: its start could not be recorded; it is handed back uncounted when its lease expires");
        }
    }
}

/// Counts an attempt's recorded end: the metrics and the throughput flushed to the store.
fn ended(shared: &Shared, task: &ClaimedTask, end: End) {
    super::observe::ended(&task.name, &task.queue, end);
    shared.throughput.record(end, chrono::Utc::now());
}

/// The alert about `task`'s failed attempt.
fn event(task: &ClaimedTask, kind: AlertKind, error: String, permanent: bool) -> TaskEvent {
    TaskEvent {
        kind,
        id: task.id,
        name: task.name.clone(),
        queue: task.queue.clone(),
        attempt: task.attempt,
        max_attempts: task.max_attempts,
        error,
        permanent,
    }
}

impl Ended {
    /// The `outcome` field of the attempt's span.
    fn label(&self, task: &ClaimedTask) -> &'static str {
        match self {
            Ended::Completed => "completed",
            Ended::Failed { permanent, .. } if !permanent && task.attempt < task.max_attempts => {
                "retried"
            }
            Ended::Failed { .. } | Ended::BadRow(_) => "failed",
            Ended::Cancelled => "handed_back",
            Ended::CancelRequested(_) => "cancelled",
            Ended::Snoozed(_) => "snoozed",
            Ended::LeaseLost => "lease_lost",
            Ended::NotStarted => "not_started",
        }
    }
}

/// Writes an attempt's outcome other than completion through the writer (fenced).
async fn settle_as(
    shared: &Shared,
    fence: Fence,
    what: &'static str,
    outcome: Outcome,
) -> Option<bool> {
    let writer = shared.client.writer();
    shared
        .slots()
        .recording(&fence, Recording::Settle(outcome.clone()));
    let settle = Settle::new(fence, outcome);
    write(shared, &fence, what, || async {
        Ok(!writer.settle(vec![settle.clone()]).await?.is_empty())
    })
    .await
}
