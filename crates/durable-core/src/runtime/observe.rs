//! Metrics through the `metrics` facade (feature `metrics`): whatever recorder the
//! application installed (a Prometheus exporter, say) receives them; without one they cost
//! a no-op call. Without the feature these functions do nothing.
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | `durable_tasks_enqueued_total` | counter | `task`, `queue` |
//! | `durable_tasks_claimed_total` | counter | `task`, `queue` |
//! | `durable_tasks_completed_total` | counter | `task`, `queue` |
//! | `durable_tasks_retried_total` | counter | `task`, `queue` |
//! | `durable_tasks_failed_total` | counter | `task`, `queue` |
//! | `durable_task_pickup_seconds` | histogram | `task`, `queue` |
//! | `durable_task_run_seconds` | histogram | `task`, `queue` |
//! | `durable_tasks` | gauge | `state` |
//! | `durable_runtime_busy_slots` | gauge | |
//! | `durable_runtime_claim_ahead` | gauge | |

#![cfg_attr(not(feature = "metrics"), allow(unused_variables))]

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How an attempt ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Completed,
    Retried,
    Failed,
}

/// Describes the metrics to the recorder once (help texts and units).
pub(crate) fn describe() {
    #[cfg(feature = "metrics")]
    {
        use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
        describe_counter!(
            "durable_tasks_enqueued_total",
            "Tasks stored through the client's writer"
        );
        describe_counter!(
            "durable_tasks_claimed_total",
            "Attempts started by this runtime (claimed, or dispatched locally at insert)"
        );
        describe_counter!(
            "durable_tasks_completed_total",
            "Tasks completed by this runtime"
        );
        describe_counter!(
            "durable_tasks_retried_total",
            "Failed attempts put back for a retry"
        );
        describe_counter!(
            "durable_tasks_failed_total",
            "Tasks marked failed (dead) by this runtime"
        );
        describe_histogram!(
            "durable_task_pickup_seconds",
            Unit::Seconds,
            "Time from a task's run time to the start of its attempt"
        );
        describe_histogram!(
            "durable_task_run_seconds",
            Unit::Seconds,
            "Duration of one attempt"
        );
        describe_gauge!(
            "durable_tasks",
            "Tasks per state in the store (refreshed by each runtime)"
        );
        describe_gauge!(
            "durable_runtime_busy_slots",
            "Attempts this runtime holds now: running, and claimed ahead waiting for a slot"
        );
        describe_gauge!(
            "durable_runtime_claim_ahead",
            "Tasks this runtime claimed beyond its free slots at its last claim (ClaimAhead)"
        );
    }
}

/// A task was stored.
pub(crate) fn enqueued(name: &str, queue: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("durable_tasks_enqueued_total", "task" => name.to_owned(), "queue" => queue.to_owned())
        .increment(1);
}

/// An attempt was claimed at `now`; it was due at `due_at`.
pub(crate) fn claimed(name: &str, queue: &str, due_at: Option<DateTime<Utc>>, now: DateTime<Utc>) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("durable_tasks_claimed_total", "task" => name.to_owned(), "queue" => queue.to_owned())
            .increment(1);
        if let Some(due) = due_at {
            // A run time a little ahead of this clock (another instance's clock) counts as 0.
            let waited = (now - due).to_std().unwrap_or_default();
            metrics::histogram!("durable_task_pickup_seconds", "task" => name.to_owned(), "queue" => queue.to_owned())
                .record(waited.as_secs_f64());
        }
    }
}

/// An attempt ended as `end` after running `ran`.
pub(crate) fn ended(name: &str, queue: &str, end: End) {
    #[cfg(feature = "metrics")]
    {
        let counter = match end {
            End::Completed => "durable_tasks_completed_total",
            End::Retried => "durable_tasks_retried_total",
            End::Failed => "durable_tasks_failed_total",
        };
        metrics::counter!(counter, "task" => name.to_owned(), "queue" => queue.to_owned())
            .increment(1);
    }
}

/// An attempt's code ran for `ran`.
pub(crate) fn ran(name: &str, queue: &str, ran: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!("durable_task_run_seconds", "task" => name.to_owned(), "queue" => queue.to_owned())
        .record(ran.as_secs_f64());
}

/// Attempts running now.
pub(crate) fn busy(running: usize) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("durable_runtime_busy_slots").set(running as f64);
}

/// A claim is sized for `ahead` tasks beyond the free slots.
pub(crate) fn claim_ahead(ahead: usize) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("durable_runtime_claim_ahead").set(ahead as f64);
}

/// The store's counts per state.
pub(crate) fn states(counts: &[(crate::TaskState, crate::store::Count)]) {
    #[cfg(feature = "metrics")]
    for (state, count) in counts {
        metrics::gauge!("durable_tasks", "state" => state.as_str()).set(count.value() as f64);
    }
}

/// What the enqueue counter needs of rows about to be written: id, task type, queue
/// (empty without the `metrics` feature, so the write path copies nothing).
pub(crate) fn enqueue_labels(
    rows: &[crate::store::NewTask],
) -> Vec<(crate::TaskId, String, String)> {
    #[cfg(feature = "metrics")]
    {
        rows.iter()
            .map(|r| (r.id, r.name.clone(), r.queue.clone()))
            .collect()
    }
    #[cfg(not(feature = "metrics"))]
    Vec::new()
}

/// Counts the rows that were stored: those whose id came back (a unique key held by another
/// task answers that task's id instead).
pub(crate) fn count_enqueued(rows: &[(crate::TaskId, String, String)], ids: &[crate::TaskId]) {
    for ((id, name, queue), stored) in rows.iter().zip(ids) {
        if id == stored {
            enqueued(name, queue);
        }
    }
}

/// Refreshes the `durable_tasks{state}` gauges from the store every `every` (or twenty times
/// as long as the last read took, if longer: see [`paced`](super::ticker::paced)), until
/// `stop`.
pub(crate) async fn stats_loop(
    shared: std::sync::Arc<super::shared::Shared>,
    every: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    super::ticker::paced(every, &stop, || async {
        match shared.store.state_stats().await {
            Ok(counts) => states(&counts),
            Err(error) => tracing::warn!(%error, "could not refresh the task state gauges"),
        }
    })
    .await;
}
