//! The rows that cross the store seam: a task about to be inserted, and one a worker holds.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Fence, UniqueRow};
use crate::ids::{TaskId, WorkerId};

/// Name of the queue used when a task type does not choose one.
pub const DEFAULT_QUEUE: &str = "default";

/// A task about to be inserted: validated and serialized, not yet stored.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewTask {
    /// Client-side id (UUID v7).
    pub id: TaskId,
    /// Stable task name.
    pub name: String,
    /// Queue name.
    pub queue: String,
    /// JSON payload.
    pub payload: String,
    /// Higher runs first.
    pub priority: i16,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Not before this time; `None` means now (by the store's clock).
    pub run_at: Option<DateTime<Utc>>,
    /// When set, the row is inserted already `processing`, attempt 1, leased to this owner:
    /// local dispatch of freshly persisted tasks without a claim round trip.
    pub claimed_by: Option<LocalClaim>,
    /// When set, the row is inserted only if no row holds its unique key
    /// ([`UniqueKey`](crate::UniqueKey)); the store reports the id of the row that does.
    pub unique: Option<UniqueRow>,
    /// The W3C `traceparent` of the context that enqueued the task ([`crate::trace`]),
    /// stored with it so its attempts can be joined to that trace.
    pub trace_parent: Option<String>,
}

impl NewTask {
    /// A task of `name` with a JSON `payload` and default options (queue `default`, priority 0, 20
    /// attempts, due now). Mostly for stores' tests and tooling; applications go through
    /// [`Client`](crate::Client), which fills these from [`Task::options`](crate::Task::options).
    pub fn new(name: impl Into<String>, payload: impl Into<String>) -> Self {
        Self {
            id: TaskId::new(),
            name: name.into(),
            queue: DEFAULT_QUEUE.to_owned(),
            payload: payload.into(),
            priority: 0,
            max_attempts: 20,
            run_at: None,
            claimed_by: None,
            unique: None,
            trace_parent: None,
        }
    }

    /// Sets the queue.
    #[must_use]
    pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Sets the attempts allowed.
    #[must_use]
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the earliest run time.
    #[must_use]
    pub fn with_run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Sets the priority.
    #[must_use]
    pub fn with_priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the unique part (see [`UniqueKey`](crate::UniqueKey)).
    #[must_use]
    pub fn with_unique(mut self, unique: UniqueRow) -> Self {
        self.unique = Some(unique);
        self
    }

    /// Sets the enqueuing context's `traceparent` ([`crate::trace`]).
    #[must_use]
    pub fn with_trace_parent(mut self, trace_parent: impl Into<String>) -> Self {
        self.trace_parent = Some(trace_parent.into());
        self
    }

    /// Inserts the row already claimed by `owner` for `lease`.
    #[must_use]
    pub fn claimed_by(mut self, owner: WorkerId, lease: Duration) -> Self {
        self.claimed_by = Some(LocalClaim { owner, lease });
        self
    }
}

/// Who holds a task inserted already claimed, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalClaim {
    /// The lease owner.
    pub owner: WorkerId,
    /// Lease length from the insert.
    pub lease: Duration,
}

/// A task a worker now holds: the row after the claim.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimedTask {
    /// Task id.
    pub id: TaskId,
    /// Stable task name.
    pub name: String,
    /// Queue.
    pub queue: String,
    /// JSON payload.
    pub payload: String,
    /// This attempt's number (1-based).
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// The lease owner.
    pub owner: WorkerId,
    /// When the task became due (its run time), if the store said: the runtime measures how
    /// long due tasks wait for a worker from it.
    pub due_at: Option<DateTime<Utc>>,
    /// The `traceparent` stored with the task, if its enqueuing context had one.
    pub trace_parent: Option<String>,
}

impl ClaimedTask {
    /// Builds a claimed task (stores construct these from rows).
    pub fn new(
        id: TaskId,
        name: String,
        queue: String,
        payload: String,
        attempt: u32,
        max_attempts: u32,
        owner: WorkerId,
    ) -> Self {
        Self {
            id,
            name,
            queue,
            payload,
            attempt,
            max_attempts,
            owner,
            due_at: None,
            trace_parent: None,
        }
    }

    /// Sets when the task became due (stores read it from the claimed row).
    #[must_use]
    pub fn with_due_at(mut self, at: DateTime<Utc>) -> Self {
        self.due_at = Some(at);
        self
    }

    /// Sets the `traceparent` stored with the task.
    #[must_use]
    pub fn with_trace_parent(mut self, trace_parent: Option<String>) -> Self {
        self.trace_parent = trace_parent;
        self
    }

    /// The fence for writes about this attempt.
    pub fn fence(&self) -> Fence {
        Fence {
            id: self.id,
            owner: self.owner,
            attempt: self.attempt,
        }
    }
}
