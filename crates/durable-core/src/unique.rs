//! Unique tasks: at most one task per key among the rows in a chosen set of states,
//! enforced by the database.
//!
//! A [`UniqueKey`] set on an enqueue ([`EnqueueOptions::unique`](crate::EnqueueOptions::unique))
//! makes the store insert the row only when no row with the same key is in one of the key's
//! states; otherwise nothing is inserted and the enqueue returns the id of the task that holds
//! the key. A partial unique index decides (never a read before the insert), so concurrent
//! enqueues — from any number of processes and transactions — leave exactly one task.
//!
//! Each row stores its key and its own set of states ([`UniqueRow`]); the index holds the rows
//! whose current state is in their set. A row leaves the index when it moves to a state
//! outside its set (by default: when it completes, fails or is cancelled), and from then on
//! the key is free again.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::state::TaskState;

/// A task's unique key, and when it holds: see [the module](crate::unique).
///
/// By default the key is scoped to the task type (two types never collide on a key), holds
/// while the task is `pending` or `processing`, and has no period.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use durable_core::{EnqueueOptions, TaskState, UniqueKey};
///
/// // One welcome email per user while one is waiting or running.
/// let opts = EnqueueOptions::new().unique(UniqueKey::new("user:42"));
/// // One report per day: a completed report also holds the key until the day is over.
/// let daily = UniqueKey::new("report").period(Duration::from_secs(86_400));
/// // Also keep a failed task's key: no new one until an operator deals with it.
/// let strict = UniqueKey::new("user:42").states(&[
///     TaskState::Pending,
///     TaskState::Processing,
///     TaskState::Failed,
/// ]);
/// # let _ = (opts, daily, strict);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueKey {
    key: String,
    global: bool,
    states: Option<u8>,
    period: Option<Duration>,
}

impl UniqueKey {
    /// A key, scoped to the task type it is enqueued with.
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            global: false,
            states: None,
            period: None,
        }
    }

    /// Shares the key across task types: a task of another type enqueued with the same
    /// global key is deduplicated against this one.
    #[must_use]
    pub fn global(mut self) -> Self {
        self.global = true;
        self
    }

    /// The states in which a task holds its key (default: `pending` and `processing`).
    ///
    /// The set must include `pending` and `processing`: a key that a running task does not
    /// hold lets a second task start while the first one still runs, which is never what a
    /// unique task is for. An enqueue with a set that leaves one of them out is refused with
    /// [`Error::InvalidTask`].
    #[must_use]
    pub fn states(mut self, states: &[TaskState]) -> Self {
        self.states = Some(states.iter().fold(0, |bits, s| bits | bit(*s)));
        self
    }

    /// Makes the key hold for one period at a time, **completed tasks included**: the
    /// stored key is suffixed with the number of the period (`floor(now / period)`, on the
    /// store's clock, counted from the Unix epoch) at the insert, and `completed` joins the
    /// states. So at most one task with this key is enqueued per period — a task that
    /// completed earlier in the same period still blocks a new one — and a new period starts
    /// a new key, whatever older tasks are doing. Periods are aligned to the epoch (a day
    /// is a UTC day), not to the first enqueue. A zero period counts as one millisecond.
    #[must_use]
    pub fn period(mut self, period: Duration) -> Self {
        self.period = Some(period);
        self
    }

    /// The key as given.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The row's unique part for a task of `name`, or why it cannot be stored.
    pub(crate) fn row(&self, name: &str) -> Result<UniqueRow> {
        let invalid = |reason: String| Error::InvalidTask {
            name: name.to_owned(),
            reason,
        };
        if self.key.is_empty() {
            return Err(invalid("the unique key is empty".to_owned()));
        }
        if self.key.len() > MAX_UNIQUE_KEY_BYTES {
            return Err(invalid(format!(
                "the unique key is {} bytes long, over the limit of {MAX_UNIQUE_KEY_BYTES} bytes",
                self.key.len()
            )));
        }
        if self.key.contains('\0') {
            return Err(invalid(
                "the unique key contains a NUL character".to_owned(),
            ));
        }
        let live = bit(TaskState::Pending) | bit(TaskState::Processing);
        let mut states = self.states.unwrap_or(live);
        if states & live != live {
            return Err(invalid(
                "the unique states must include `pending` and `processing`: without them a \
                 second task could start while the first is waiting or running"
                    .to_owned(),
            ));
        }
        let period_ms = self.period.map(|p| {
            states |= bit(TaskState::Completed);
            i64::try_from(p.as_millis()).unwrap_or(i64::MAX).max(1)
        });
        let key = if self.global {
            format!("*|{}", self.key)
        } else {
            format!("t{}:{name}|{}", name.len(), self.key)
        };
        Ok(UniqueRow {
            key,
            states: i32::from(states),
            period_ms,
        })
    }
}

/// Longest unique key, in bytes (UTF-8): the key is an entry of a btree index, whose entries
/// must stay well under PostgreSQL's limit of about 2,700 bytes.
pub const MAX_UNIQUE_KEY_BYTES: usize = 1024;

/// A state's bit in a row's `unique_states` mask; the stores' index computes the same bits
/// from the `state` column.
pub const fn bit(state: TaskState) -> u8 {
    match state {
        TaskState::Pending => 1,
        TaskState::Processing => 2,
        TaskState::Completed => 4,
        TaskState::Failed => 8,
        TaskState::Cancelled => 16,
    }
}

/// The unique part of a row about to be inserted, as the store writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UniqueRow {
    /// The key, namespaced: `t<len>:<task name>|<key>`, or `*|<key>` for a global key.
    pub key: String,
    /// The states in which the row holds its key, as [`bit`]s.
    pub states: i32,
    /// The period in milliseconds, if any: the store prefixes the key with its bucket.
    pub period_ms: Option<i64>,
}

impl UniqueRow {
    /// The key as stored at `now_ms` (Unix milliseconds, the store's clock): with a period,
    /// `p<period ms>.<floor(now / period)>/` before the namespaced key. PostgreSQL computes
    /// the same text in SQL from `now()`.
    pub fn stored_key(&self, now_ms: i64) -> String {
        match self.period_ms {
            Some(period) => format!("p{period}.{}/{}", now_ms.div_euclid(period), self.key),
            None => self.key.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scoped_by_task_name_unless_global() {
        let a = UniqueKey::new("x").row("a").expect("row");
        let b = UniqueKey::new("x").row("b").expect("row");
        assert_ne!(a.key, b.key);
        assert_eq!(
            UniqueKey::new("x").global().row("a").expect("row").key,
            UniqueKey::new("x").global().row("b").expect("row").key
        );
        // A name that ends like another name's key does not collide.
        let c = UniqueKey::new("b|x").row("a").expect("row");
        let d = UniqueKey::new("x").row("a|b").expect("row");
        assert_ne!(c.key, d.key);
    }

    #[test]
    fn states_must_keep_pending_and_processing() {
        assert!(UniqueKey::new("k")
            .states(&[TaskState::Pending])
            .row("t")
            .is_err());
        let row = UniqueKey::new("k")
            .states(&[TaskState::Pending, TaskState::Processing, TaskState::Failed])
            .row("t")
            .expect("row");
        assert_eq!(row.states, 1 | 2 | 8);
        assert_eq!(UniqueKey::new("k").row("t").expect("row").states, 3);
        assert!(UniqueKey::new("").row("t").is_err());
        assert!(UniqueKey::new("a\0").row("t").is_err());
    }

    #[test]
    fn a_period_buckets_the_key_and_keeps_completed() {
        let row = UniqueKey::new("k")
            .period(Duration::from_secs(60))
            .row("t")
            .expect("row");
        assert_eq!(row.states, 1 | 2 | 4);
        assert_eq!(row.stored_key(119_999), "p60000.1/t1:t|k");
        assert_eq!(row.stored_key(120_000), "p60000.2/t1:t|k");
        let plain = UniqueKey::new("k").row("t").expect("row");
        assert_eq!(plain.stored_key(5), "t1:t|k");
    }
}
