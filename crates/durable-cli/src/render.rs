//! How records, counts and steps appear: as JSON for scripts, as text for people.

use chrono::{DateTime, SecondsFormat, Utc};
use durable_core::store::{Count, StepRecord, TaskRecord};
use serde_json::{json, Value};

/// An instant as RFC 3339 in UTC, to the millisecond.
pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An optional instant, `-` when absent (for tables).
pub(crate) fn time_or_dash(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "-".to_owned(), time)
}

/// A payload as JSON: stored payloads are JSON text; one that is not (written by hand) is
/// shown as the string it is rather than failing the whole listing.
pub(crate) fn payload(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// A payload pretty-printed for `show`.
pub(crate) fn payload_pretty(text: &str) -> String {
    serde_json::to_string_pretty(&payload(text)).unwrap_or_else(|_| text.to_owned())
}

/// A count with its label: `{"count": 12, "kind": "exact"}`.
pub(crate) fn count(count: Count) -> Value {
    json!({ "count": count.value(), "kind": count.kind() })
}

/// Every field of a task row.
pub(crate) fn record(task: &TaskRecord) -> Value {
    json!({
        "id": task.id.to_string(),
        "type": task.name,
        "queue": task.queue,
        "state": task.state.as_str(),
        "priority": task.priority,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "requeues": task.requeues,
        "payload": payload(&task.payload),
        "unique_key": task.unique_key,
        "run_at": time(task.run_at),
        "lease_owner": task.lease_owner.map(|w| w.to_string()),
        "lease_expires_at": task.lease_expires_at.map(time),
        "last_error": task.last_error,
        "errors": task.errors.iter().map(|e| json!({
            "attempt": e.attempt,
            "at": time(e.at),
            "worker": e.worker.map(|w| w.to_string()),
            "message": e.message,
        })).collect::<Vec<_>>(),
        "started_at": task.started_at.map(time),
        "cancel_requested_at": task.cancel_requested_at.map(time),
        "created_at": time(task.created_at),
        "updated_at": time(task.updated_at),
        "finished_at": task.finished_at.map(time),
    })
}

/// A finished step: its name, the attempt that ran it and its output.
pub(crate) fn step(step: &StepRecord) -> Value {
    json!({
        "name": step.name,
        "attempt": step.attempt,
        "output": payload(&step.output),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_core::{TaskId, TaskState};

    #[test]
    fn a_record_keeps_its_payload_as_json() {
        let task = TaskRecord::new(
            TaskId::new(),
            "email",
            "default",
            r#"{"to":"a"}"#,
            TaskState::Failed,
        );
        let value = record(&task);
        assert_eq!(value["payload"]["to"], "a");
        assert_eq!(value["state"], "failed");
        assert_eq!(payload("not json"), Value::String("not json".into()));
        assert_eq!(count(Count::AtLeast(5))["kind"], "at_least");
    }
}
