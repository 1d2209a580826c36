//! The JSON shapes of the API: counts with their labels, throughput, tasks.

use chrono::{DateTime, Utc};
use durable_core::store::{Count, Stats, StepRecord, TaskRecord, ThroughputBucket};
use serde_json::{json, Value};

use super::redact::{self, Redactor};

/// `{"value": 12, "kind": "exact" | "at_least" | "estimated"}`.
pub(crate) fn count(count: Count) -> Value {
    json!({ "value": count.value(), "kind": count.kind() })
}

pub(crate) fn stats(stats: &Stats) -> Value {
    let by_state: serde_json::Map<String, Value> = stats
        .states
        .iter()
        .map(|(state, n)| (state.as_str().to_owned(), count(*n)))
        .collect();
    let queues: Vec<Value> = stats
        .queues
        .iter()
        .map(|q| json!({ "queue": q.queue, "pending": count(q.pending), "processing": count(q.processing) }))
        .collect();
    json!({ "states": by_state, "queues": queues, "due": count(stats.due) })
}

pub(crate) fn throughput(since: DateTime<Utc>, buckets: &[ThroughputBucket]) -> Value {
    let buckets: Vec<Value> = buckets
        .iter()
        .map(|b| {
            json!({
                "start": b.start,
                "completed": b.completed,
                "retried": b.retried,
                "failed": b.failed,
                "failure_rate": b.failure_rate(),
            })
        })
        .collect();
    json!({ "since": since, "bucket_seconds": 60, "buckets": buckets })
}

/// A task in a list: no payload (lists stay light), its last error.
pub(crate) fn summary(task: &TaskRecord) -> Value {
    json!({
        "id": task.id,
        "name": task.name,
        "queue": task.queue,
        "state": task.state,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "run_at": task.run_at,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "finished_at": task.finished_at,
        "last_error": task.last_error,
    })
}

/// A task in full, its payload and steps redacted.
pub(crate) fn record(task: &TaskRecord, steps: &[StepRecord], redact: Option<&Redactor>) -> Value {
    let errors: Vec<Value> = task
        .errors
        .iter()
        .map(|e| json!({ "attempt": e.attempt, "at": e.at, "worker": e.worker, "message": e.message }))
        .collect();
    let steps: Vec<Value> = sorted_steps(steps)
        .into_iter()
        .map(|s| {
            json!({
                "name": s.name,
                "attempt": s.attempt,
                "output": redact::step_output(redact, &task.name, &s.name, &s.output),
            })
        })
        .collect();
    json!({
        "id": task.id,
        "name": task.name,
        "queue": task.queue,
        "state": task.state,
        "priority": task.priority,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "requeues": task.requeues,
        "payload": redact::payload(redact, &task.name, &task.payload),
        "unique_key": task.unique_key,
        "run_at": task.run_at,
        "lease_owner": task.lease_owner,
        "lease_expires_at": task.lease_expires_at,
        "started_at": task.started_at,
        "cancel_requested_at": task.cancel_requested_at,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "finished_at": task.finished_at,
        "last_error": task.last_error,
        "errors": errors,
        "steps": steps,
    })
}

/// Steps in the order they ran (by attempt, then name: the store keeps no finer order).
pub(crate) fn sorted_steps(steps: &[StepRecord]) -> Vec<&StepRecord> {
    let mut steps: Vec<&StepRecord> = steps.iter().collect();
    steps.sort_by(|a, b| (a.attempt, &a.name).cmp(&(b.attempt, &b.name)));
    steps
}
