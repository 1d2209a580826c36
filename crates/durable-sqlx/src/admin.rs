//! What both stores' admin reads and actions share: decoding the error history, labelling
//! bounded counts, and telling an action's outcome from what its statement found.

use chrono::DateTime;
use durable_core::store::{ActionOutcome, AttemptError, Count, QueueCounts, Seen, COUNT_BOUND};
use durable_core::{TaskId, TaskState, WorkerId};

/// The error history column (a JSON array of `{attempt, at, worker, message}`, `at` in Unix
/// milliseconds), oldest first. An entry this version cannot read is left out rather than
/// failing the read of the whole row: the history is for display, `last_error` stays exact.
pub(crate) fn attempt_errors(id: &str, json: &str) -> Vec<AttemptError> {
    let entries: Vec<serde_json::Value> = match serde_json::from_str(json) {
        Ok(entries) => entries,
        Err(error) => {
            tracing::warn!(task = id, %error, "unreadable error history; shown empty");
            return Vec::new();
        }
    };
    entries.iter().filter_map(attempt_error).collect()
}

fn attempt_error(entry: &serde_json::Value) -> Option<AttemptError> {
    let attempt = u32::try_from(entry.get("attempt")?.as_i64()?).ok()?;
    let at = DateTime::from_timestamp_millis(entry.get("at")?.as_i64()?)?;
    let worker = entry
        .get("worker")
        .and_then(serde_json::Value::as_str)
        .and_then(|w| w.parse::<uuid::Uuid>().ok())
        .map(WorkerId::from_uuid);
    let message = entry.get("message")?.as_str()?;
    Some(AttemptError::new(attempt, at, worker, message))
}

/// The bound a statement counts to: one past [`COUNT_BOUND`], so a full count tells "more".
pub(crate) fn count_limit() -> i64 {
    i64::try_from(COUNT_BOUND)
        .unwrap_or(i64::MAX)
        .saturating_add(1)
}

/// A count made with [`count_limit`]: exact up to the bound, `AtLeast` past it.
pub(crate) fn bounded(n: i64) -> Count {
    let n = u64::try_from(n).unwrap_or(0);
    if n > COUNT_BOUND {
        Count::AtLeast(COUNT_BOUND)
    } else {
        Count::Exact(n)
    }
}

/// One row of a store's per-queue counts: `queue`, and `pending` and `processing` counted
/// to [`count_limit`].
pub(crate) fn queue_counts<R>(row: &R) -> Result<QueueCounts, sqlx::Error>
where
    R: sqlx::Row,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    &'static str: sqlx::ColumnIndex<R>,
{
    Ok(QueueCounts::new(
        row.try_get::<String, _>("queue")?,
        bounded(row.try_get("pending")?),
        bounded(row.try_get("processing")?),
    ))
}

#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // PostgreSQL's statements only
/// The `Seen` of an action as statement parameters: the state's name and the attempts
/// (both NULL: any version of the row).
pub(crate) fn seen_params(seen: Option<Seen>) -> (Option<&'static str>, Option<i64>) {
    match seen {
        Some(seen) => (Some(seen.state.as_str()), Some(i64::from(seen.attempts))),
        None => (None, None),
    }
}

/// What an action's statement found: whether it changed the row, the row's state and
/// attempts (before the change; `None`: no such row), and the holder of its unique key.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) done: bool,
    pub(crate) row: Option<(TaskState, u32)>,
    pub(crate) holder: Option<TaskId>,
}

impl Found {
    /// The outcome of an action that applies to rows in `applies` states, fenced by `seen`.
    /// `None` when the statement changed nothing though the row looked right to it: the row
    /// moved between its read and its write, and must be read again to report where it is.
    pub(crate) fn outcome(
        &self,
        applies: impl Fn(TaskState) -> bool,
        seen: Option<Seen>,
    ) -> Option<ActionOutcome> {
        if self.done {
            return Some(ActionOutcome::Done);
        }
        let Some((state, attempts)) = self.row else {
            return Some(ActionOutcome::NotFound);
        };
        let as_seen = seen.is_none_or(|s| s.state == state && s.attempts == attempts);
        if !applies(state) || !as_seen {
            return Some(ActionOutcome::Conflict { state, attempts });
        }
        if let Some(holder) = self.holder {
            return Some(ActionOutcome::KeyHeld { holder });
        }
        None
    }
}

#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // PostgreSQL's statements only
/// The outcome when the row moved under the statement: where it is now.
pub(crate) fn moved(row: Option<(TaskState, u32)>) -> ActionOutcome {
    match row {
        Some((state, attempts)) => ActionOutcome::Conflict { state, attempts },
        None => ActionOutcome::NotFound,
    }
}

#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // PostgreSQL's statements only
/// The ids of `candidates` (id, the unique key it would hold as `pending`), keeping the
/// first of each key: two rows made `pending` together must not claim one key.
pub(crate) fn one_per_key<T>(candidates: Vec<(T, Option<String>)>) -> Vec<T> {
    let mut keys = std::collections::HashSet::new();
    candidates
        .into_iter()
        .filter(|(_, key)| key.as_ref().is_none_or(|k| keys.insert(k.clone())))
        .map(|(id, _)| id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_core::store::MAX_ERRORS;

    #[test]
    fn histories_are_read_leniently() {
        let worker = WorkerId::new();
        let json = format!(
            r#"[{{"attempt":1,"at":1000,"worker":"{worker}","message":"boom"}},
                {{"attempt":"x"}},
                {{"attempt":2,"at":2000,"worker":null,"message":"again"}}]"#
        );
        let errors = attempt_errors("t", &json);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].worker, Some(worker));
        assert_eq!(errors[0].message, "boom");
        assert_eq!(errors[1].attempt, 2);
        assert_eq!(errors[1].worker, None);
        assert!(attempt_errors("t", "not json").is_empty());
    }

    #[test]
    fn counts_past_the_bound_are_labelled() {
        assert_eq!(bounded(3), Count::Exact(3));
        assert_eq!(bounded(count_limit() - 1), Count::Exact(COUNT_BOUND));
        assert_eq!(bounded(count_limit()), Count::AtLeast(COUNT_BOUND));
    }

    #[test]
    fn one_row_per_key() {
        let picked = one_per_key(vec![
            (1, Some("a".to_owned())),
            (2, None),
            (3, Some("a".to_owned())),
            (4, None),
            (5, Some("b".to_owned())),
        ]);
        assert_eq!(picked, vec![1, 2, 4, 5]);
    }

    #[test]
    fn the_statements_keep_max_errors() {
        // The SQL keeps the last 20 entries (a literal in the statements' text).
        assert_eq!(MAX_ERRORS, 20);
    }
}
