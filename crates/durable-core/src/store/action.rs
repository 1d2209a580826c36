//! What an operator's action on one task expects and what it found
//! ([`AdminStore::retry`](super::AdminStore::retry), `delete`, `requeue`).

use std::time::Duration;

use crate::ids::TaskId;
use crate::state::TaskState;

/// The version of a row an operator acted on: its state and attempt count as the page or
/// the command showed them. An action given one changes the row only if it is still so —
/// the admin's fence — so a button pressed on a stale page cannot retry a task that was
/// retried meanwhile, or requeue an attempt other than the one shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Seen {
    /// The state shown.
    pub state: TaskState,
    /// The attempt count shown.
    pub attempts: u32,
}

impl Seen {
    /// The row as shown.
    pub fn new(state: TaskState, attempts: u32) -> Self {
        Self { state, attempts }
    }
}

/// What an action on one task found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActionOutcome {
    /// Done.
    Done,
    /// No such task.
    NotFound,
    /// The row is not in a state the action applies to, or no longer as [`Seen`]: nothing
    /// changed. Carries the row's current state and attempts.
    Conflict {
        /// Current state.
        state: TaskState,
        /// Current attempt count.
        attempts: u32,
    },
    /// A retry would make the task live again, but another live task holds its unique key:
    /// nothing changed.
    KeyHeld {
        /// The task holding the key.
        holder: TaskId,
    },
}

impl ActionOutcome {
    /// Whether the action changed the row.
    pub fn is_done(&self) -> bool {
        matches!(self, ActionOutcome::Done)
    }
}

/// Which `failed` tasks [`AdminStore::retry_failed`](super::AdminStore::retry_failed) puts
/// back to `pending`, at most `limit` per call (oldest failure first).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryFailed {
    /// Only tasks of this task type.
    pub name: Option<String>,
    /// Only tasks of this queue.
    pub queue: Option<String>,
    /// Most rows changed by one call (1..=[`MAX_LIST_LIMIT`](super::MAX_LIST_LIMIT)).
    pub limit: u32,
}

impl RetryFailed {
    /// Every `failed` task, `limit` per call.
    pub fn new(limit: u32) -> Self {
        Self {
            name: None,
            queue: None,
            limit: limit.clamp(1, super::MAX_LIST_LIMIT),
        }
    }

    /// Only tasks of the task type `name`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Only tasks of `queue`.
    #[must_use]
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }
}

/// Which `processing` tasks [`AdminStore::requeue_stuck`](super::AdminStore::requeue_stuck)
/// hands back: those whose current attempt started more than `running_for` ago (whatever
/// their lease says: a worker that heartbeats but never finishes is stuck too), or, with
/// `running_for` zero, those whose lease has expired.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StuckQuery {
    /// How long the current attempt has run; zero: only expired leases.
    pub running_for: Duration,
    /// Only tasks of this task type.
    pub name: Option<String>,
    /// Most rows changed by one call (1..=[`MAX_LIST_LIMIT`](super::MAX_LIST_LIMIT)).
    pub limit: u32,
}

impl StuckQuery {
    /// Attempts running for longer than `running_for` (zero: expired leases only).
    pub fn new(running_for: Duration, limit: u32) -> Self {
        Self {
            running_for,
            name: None,
            limit: limit.clamp(1, super::MAX_LIST_LIMIT),
        }
    }

    /// Only tasks of the task type `name`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}
