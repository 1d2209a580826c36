//! What operators and tests read back: one stored row, and counts per state.

use chrono::{DateTime, Utc};

use crate::ids::{TaskId, WorkerId};
use crate::state::TaskState;

/// A stored row, for inspection by operators and tests.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TaskRecord {
    /// Task id.
    pub id: TaskId,
    /// Stable task name.
    pub name: String,
    /// Queue.
    pub queue: String,
    /// JSON payload.
    pub payload: String,
    /// Current state.
    pub state: TaskState,
    /// Priority.
    pub priority: i16,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Times a shutdown stopped an attempt and handed the task back
    /// ([`Outcome::Requeued`](super::Outcome::Requeued)).
    pub requeues: u32,
    /// Earliest next run.
    pub run_at: DateTime<Utc>,
    /// Lease owner while `processing`.
    pub lease_owner: Option<WorkerId>,
    /// Lease expiry while `processing`.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Message of the last failed attempt.
    pub last_error: Option<String>,
    /// The failed attempts, oldest first (the most recent [`MAX_ERRORS`] of them).
    pub errors: Vec<AttemptError>,
    /// The unique key held by this row, if it was enqueued with one.
    pub unique_key: Option<String>,
    /// When the current (or last) attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When a cancellation was requested while it ran.
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// Insert time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it reached a terminal state.
    pub finished_at: Option<DateTime<Utc>>,
}

impl TaskRecord {
    /// A record with the given identity and state; other fields at their empty values
    /// (stores set them from the row).
    pub fn new(
        id: TaskId,
        name: impl Into<String>,
        queue: impl Into<String>,
        payload: impl Into<String>,
        state: TaskState,
    ) -> Self {
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        Self {
            id,
            name: name.into(),
            queue: queue.into(),
            payload: payload.into(),
            state,
            priority: 0,
            attempts: 0,
            max_attempts: 1,
            requeues: 0,
            run_at: epoch,
            lease_owner: None,
            lease_expires_at: None,
            last_error: None,
            errors: Vec::new(),
            unique_key: None,
            started_at: None,
            cancel_requested_at: None,
            created_at: epoch,
            updated_at: epoch,
            finished_at: None,
        }
    }
}

/// Most failed attempts a row keeps in [`TaskRecord::errors`] (the oldest are dropped).
pub const MAX_ERRORS: usize = 20;

/// One failed attempt of a task, as kept in its row.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttemptError {
    /// The attempt's number (1 for the first).
    pub attempt: u32,
    /// When it failed.
    pub at: DateTime<Utc>,
    /// The worker that ran it.
    pub worker: Option<WorkerId>,
    /// The error's message (the `Display` of its chain).
    pub message: String,
}

impl AttemptError {
    /// An entry of the error history.
    pub fn new(
        attempt: u32,
        at: DateTime<Utc>,
        worker: Option<WorkerId>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            attempt,
            at,
            worker,
            message: message.into(),
        }
    }
}

/// Number of rows in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// `pending` rows.
    pub pending: u64,
    /// `processing` rows.
    pub processing: u64,
    /// `completed` rows.
    pub completed: u64,
    /// `failed` rows.
    pub failed: u64,
    /// `cancelled` rows.
    pub cancelled: u64,
}

impl StateCounts {
    /// The count for one state.
    pub fn get(&self, state: TaskState) -> u64 {
        match state {
            TaskState::Pending => self.pending,
            TaskState::Processing => self.processing,
            TaskState::Completed => self.completed,
            TaskState::Failed => self.failed,
            TaskState::Cancelled => self.cancelled,
        }
    }

    /// Adds `n` to one state's count.
    pub fn add(&mut self, state: TaskState, n: u64) {
        match state {
            TaskState::Pending => self.pending += n,
            TaskState::Processing => self.processing += n,
            TaskState::Completed => self.completed += n,
            TaskState::Failed => self.failed += n,
            TaskState::Cancelled => self.cancelled += n,
        }
    }

    /// Rows not yet in a terminal state.
    pub fn unfinished(&self) -> u64 {
        self.pending + self.processing
    }
}
