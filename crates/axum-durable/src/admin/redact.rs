//! Payloads as shown: parsed, then passed through the user's redaction hook.

use std::sync::Arc;

use serde_json::Value;

/// The redaction hook: task type name and the payload, changed in place.
pub(crate) type Redactor = Arc<dyn Fn(&str, &mut Value) + Send + Sync>;

/// The payload of a task of type `name` as it may be shown: its JSON with the hook applied.
/// A payload that is not JSON is shown as a string, or hidden when a hook is set (the hook
/// cannot see inside it).
pub(crate) fn payload(redact: Option<&Redactor>, name: &str, stored: &str) -> Value {
    match (serde_json::from_str::<Value>(stored), redact) {
        (Ok(mut value), Some(redact)) => {
            redact(name, &mut value);
            value
        }
        (Ok(value), None) => value,
        (Err(_), Some(_)) => Value::String("[hidden: not JSON]".to_owned()),
        (Err(_), None) => Value::String(stored.to_owned()),
    }
}

/// A step's output as it may be shown: outputs can hold what the payload did, so with a
/// hook set they are passed through it too, under the name `<task type>/<step>`.
pub(crate) fn step_output(
    redact: Option<&Redactor>,
    name: &str,
    step: &str,
    stored: &str,
) -> Value {
    payload(redact, &format!("{name}/{step}"), stored)
}
