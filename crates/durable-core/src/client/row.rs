//! A task's row: built from the task and its options ([`build`]), and checked to be what
//! every store can hold ([`check_row`]).
//!
//! Rows are checked before they reach the
//! group-commit writer: a row the database refuses would fail the statement it shares with
//! other requests' rows, and the writer would have to redo their batch request by request.
//!
//! - **Names** (task and queue): 1 to [`MAX_NAME_BYTES`] bytes, no NUL. PostgreSQL `text`
//!   cannot hold NUL, and the queue is a key of the claim index, whose btree entries must
//!   stay under about 2,700 bytes; a name of hundreds of bytes is a bug anyway.
//! - **Payload**: at most the client's limit, and no NUL character, escaped (`\u0000`) or
//!   raw — PostgreSQL's `jsonb` refuses it. SQLite could hold it, but a task enqueued on
//!   SQLite must not become unstorable when the application moves to PostgreSQL.
//! - **Run time**: within years 1 to 9999 UTC ([`earliest`], [`latest`]).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::EnqueueOptions;
use crate::error::{Error, Result};
use crate::store::NewTask;
use crate::task::Task;

/// Longest task name or queue name, in bytes (UTF-8).
pub const MAX_NAME_BYTES: usize = 255;

/// Serializes `task` into a checked row with `options` over its type's defaults.
pub(crate) fn build<T: Task>(
    task: &T,
    options: &EnqueueOptions,
    max_payload_bytes: usize,
    now: DateTime<Utc>,
) -> Result<NewTask> {
    // Task names are global: a second type under this name would run this one's rows.
    crate::names::claim::<T>(T::NAME)?;
    let payload = serde_json::to_string(task).map_err(|source| Error::Serialize {
        name: T::NAME,
        source,
    })?;
    if payload.len() > max_payload_bytes {
        return Err(Error::PayloadTooLarge {
            name: T::NAME.to_owned(),
            size: payload.len(),
            limit: max_payload_bytes,
        });
    }
    let run_at = match (options.run_at, options.delay) {
        (Some(at), _) => Some(at),
        (None, Some(delay)) => {
            Some(
                after_delay(delay, now).map_err(|reason| Error::InvalidTask {
                    name: T::NAME.to_owned(),
                    reason,
                })?,
            )
        }
        (None, None) => None,
    };
    let defaults = T::options();
    let queue = options
        .queue
        .clone()
        .unwrap_or_else(|| defaults.queue.to_string());
    let mut row = NewTask::new(T::NAME, payload)
        .with_queue(queue)
        .with_priority(options.priority.unwrap_or(defaults.priority))
        .with_max_attempts(options.max_attempts.unwrap_or(defaults.max_attempts));
    row.run_at = run_at;
    row.trace_parent = crate::trace::current_trace_parent();
    row.unique = options
        .unique
        .as_ref()
        .map(|u| u.row(T::NAME))
        .transpose()?;
    check_row(&row, max_payload_bytes)?;
    Ok(row)
}

/// 0001-01-01T00:00:00Z in Unix milliseconds.
const EARLIEST_MS: i64 = -62_135_596_800_000;
/// 9999-12-31T23:59:59.999Z in Unix milliseconds.
const LATEST_MS: i64 = 253_402_300_799_999;

/// The earliest run time a task may have: the start of year 1 (UTC).
pub(crate) fn earliest() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(EARLIEST_MS).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The latest run time a task may have: the end of year 9999 (UTC).
pub(crate) fn latest() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(LATEST_MS).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Checks one row; `max_payload_bytes` is the client's payload limit.
pub(crate) fn check_row(row: &NewTask, max_payload_bytes: usize) -> Result<()> {
    let invalid = |reason: String| Error::InvalidTask {
        name: row.name.clone(),
        reason,
    };
    check_name("task name", &row.name).map_err(invalid)?;
    check_name("queue name", &row.queue).map_err(invalid)?;
    if row.payload.len() > max_payload_bytes {
        return Err(Error::PayloadTooLarge {
            name: row.name.clone(),
            size: row.payload.len(),
            limit: max_payload_bytes,
        });
    }
    if row.payload.contains('\0') || has_escaped_nul(&row.payload) {
        return Err(invalid(
            "the payload contains a NUL character (\\u0000), which PostgreSQL cannot store"
                .to_owned(),
        ));
    }
    if let Some(at) = row.run_at {
        check_run_at(at).map_err(invalid)?;
    }
    Ok(())
}

fn check_name(what: &str, name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "the {what} is {} bytes long, over the limit of {MAX_NAME_BYTES} bytes",
            name.len()
        ));
    }
    if name.contains('\0') {
        return Err(format!("the {what} contains a NUL character"));
    }
    Ok(())
}

fn check_run_at(at: DateTime<Utc>) -> std::result::Result<(), String> {
    if at < earliest() || at > latest() {
        return Err(format!(
            "run time {at} is outside the years 0001 to 9999 (UTC) that every store can hold"
        ));
    }
    Ok(())
}

/// The run time `delay` after `now`, or why there is none: past the end of year 9999.
pub(crate) fn after_delay(
    delay: Duration,
    now: DateTime<Utc>,
) -> std::result::Result<DateTime<Utc>, String> {
    chrono::Duration::from_std(delay)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .filter(|at| *at <= latest())
        .ok_or_else(|| {
            format!("a delay of {delay:?} ends after the year 9999, the latest run time allowed")
        })
}

/// Whether a JSON text holds a `\u0000` escape — one not itself escaped (`\\u0000` is a
/// backslash followed by the text `u0000`).
fn has_escaped_nul(json: &str) -> bool {
    const ESCAPE: &str = "\\u0000";
    let bytes = json.as_bytes();
    let mut from = 0;
    while let Some(found) = json[from..].find(ESCAPE) {
        let at = from + found;
        // Backslashes ending at `at` (its own included): an odd run escapes the `u`.
        let run = bytes[..=at]
            .iter()
            .rev()
            .take_while(|b| **b == b'\\')
            .count();
        if run % 2 == 1 {
            return true;
        }
        from = at + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_nul_is_found_but_not_an_escaped_backslash() {
        assert!(has_escaped_nul(r#"{"a":"x\u0000y"}"#));
        assert!(has_escaped_nul(r#"{"a\u0000":1}"#));
        assert!(has_escaped_nul(r#"{"a":"\\\u0000"}"#));
        assert!(!has_escaped_nul(r#"{"a":"\\u0000"}"#));
        assert!(!has_escaped_nul(r#"{"a":"\\\\u0000"}"#));
        assert!(!has_escaped_nul(r#"{"a":"\u0001"}"#));
        assert!(!has_escaped_nul(""));
    }

    #[test]
    fn serde_escapes_nul_the_way_the_check_expects() {
        let json = serde_json::to_string(&serde_json::json!({ "t": "a\u{0}b" })).expect("json");
        assert!(has_escaped_nul(&json), "{json}");
    }

    #[test]
    fn names_are_bounded() {
        assert!(check_name("queue name", "q").is_ok());
        assert!(check_name("queue name", &"q".repeat(MAX_NAME_BYTES)).is_ok());
        assert!(check_name("queue name", &"q".repeat(MAX_NAME_BYTES + 1)).is_err());
        assert!(check_name("queue name", "").is_err());
        assert!(check_name("queue name", "a\0").is_err());
    }

    #[test]
    fn run_times_are_bounded() {
        assert_eq!(earliest().to_rfc3339(), "0001-01-01T00:00:00+00:00");
        assert_eq!(latest().to_rfc3339(), "9999-12-31T23:59:59.999+00:00");
        assert!(check_run_at(latest()).is_ok());
        assert!(check_run_at(earliest()).is_ok());
        assert!(check_run_at(latest() + chrono::Duration::milliseconds(1)).is_err());
        assert!(check_run_at(earliest() - chrono::Duration::milliseconds(1)).is_err());
        assert!(after_delay(Duration::MAX, Utc::now()).is_err());
        assert!(after_delay(Duration::from_secs(300_000 * 366 * 86_400), Utc::now()).is_err());
        assert!(after_delay(Duration::from_secs(60), Utc::now()).is_ok());
    }
}
