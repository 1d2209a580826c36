//! One writer cycle: inserts, attempts' outcomes and a claim handed to the store together.

use std::time::Duration;

use super::{ClaimRequest, ClaimedTask, Fence, NewTask, ResponseRecord};
use crate::error::Result;
use crate::ids::TaskId;

/// One cycle of a [`Client`](crate::Client)'s writer: new rows, ended attempts and a claim for
/// the capacity left. A store performs them as cheaply as it can
/// ([`WorkerStore::write`](super::WorkerStore::write)): SQLite in **one transaction**, so a
/// busy runtime pays one commit — one fsync — per cycle instead of one per kind of write;
/// PostgreSQL as concurrent statements.
///
/// # Examples
///
/// ```
/// use durable_core::store::{NewTask, WriteBatch};
/// let rows = [NewTask::new("send_email", "{}")];
/// let batch = WriteBatch::new().insert(&rows);
/// assert_eq!(batch.insert.len(), 1);
/// assert!(batch.complete.is_empty() && batch.settle.is_empty() && batch.claim.is_none());
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct WriteBatch<'a> {
    /// Rows to insert, all or none.
    pub insert: &'a [NewTask],
    /// Responses of idempotent requests, recorded in the same transaction as
    /// [`insert`](Self::insert) and failing with it: a request's tasks and its response
    /// record commit together or not at all.
    pub responses: &'a [ResponseRecord],
    /// Attempts that succeeded: marked `completed` (the common outcome, written in bulk).
    pub complete: &'a [Fence],
    /// Attempts that ended otherwise: retried, failed, cancelled, snoozed, or handed back by a
    /// shutdown. A task whose cancellation was requested ends `cancelled` whichever of these
    /// its attempt writes.
    pub settle: &'a [Settle],
    /// A claim made after the inserts, so it sees them.
    pub claim: Option<&'a ClaimRequest>,
}

impl<'a> WriteBatch<'a> {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the rows to insert.
    #[must_use]
    pub fn insert(mut self, rows: &'a [NewTask]) -> Self {
        self.insert = rows;
        self
    }

    /// Sets the responses recorded with the insert.
    #[must_use]
    pub fn responses(mut self, records: &'a [ResponseRecord]) -> Self {
        self.responses = records;
        self
    }

    /// Sets the attempts to complete.
    #[must_use]
    pub fn complete(mut self, fences: &'a [Fence]) -> Self {
        self.complete = fences;
        self
    }

    /// Sets the other outcomes to write.
    #[must_use]
    pub fn settle(mut self, outcomes: &'a [Settle]) -> Self {
        self.settle = outcomes;
        self
    }

    /// Sets the claim.
    #[must_use]
    pub fn claim(mut self, request: &'a ClaimRequest) -> Self {
        self.claim = Some(request);
        self
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.insert.is_empty()
            && self.responses.is_empty()
            && self.complete.is_empty()
            && self.settle.is_empty()
            && self.claim.is_none_or(ClaimRequest::is_empty)
    }
}

/// How an attempt that did not succeed ended, as written to its row (fenced by
/// [`Settle::fence`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Back to `pending`, due after `delay`, with `error` as the row's `last_error`.
    Retry {
        /// Backoff before the next attempt.
        delay: Duration,
        /// What the attempt failed with.
        error: String,
    },
    /// `failed` ("dead"), with `error` as the row's `last_error`.
    Failed {
        /// What the last attempt failed with.
        error: String,
    },
    /// Handed back by a shutdown: the row's `requeues` goes up by one, and the row is
    /// `pending`, due now, lease released, with the attempt not counted — for the task's first
    /// [`REQUEUE_LIMIT`](super::REQUEUE_LIMIT) requeues. Past that, the attempt counts
    /// (`attempts` stays) and `last_error` says the task was stopped by shutdown N times; if
    /// that was its last attempt the row is `failed` instead of `pending`.
    Requeued,
    /// `cancelled`, with `error` as the row's `last_error`: the attempt ended (an error, a
    /// timeout, its token) after its task's cancellation was requested.
    Cancelled {
        /// How the attempt ended.
        error: String,
    },
    /// Back to `pending`, due after `delay`, with the attempt **not** counted (`attempts`
    /// back to what it was before the claim) and `last_error` kept: the task asked to run
    /// again later ([`TaskError::snooze`](crate::TaskError::snooze)).
    Snoozed {
        /// How long until the task is due again.
        delay: Duration,
    },
}

/// One attempt's [`Outcome`], and the fence it is written under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settle {
    /// The attempt.
    pub fence: Fence,
    /// How it ended.
    pub outcome: Outcome,
}

impl Settle {
    /// `fence` ended with `outcome`.
    pub fn new(fence: Fence, outcome: Outcome) -> Self {
        Self { fence, outcome }
    }
}

/// What a [`WriteBatch`] did, part by part: each part succeeds or fails as if it had been
/// written on its own (a bad insert must not fail the completions riding with it).
#[derive(Debug)]
#[non_exhaustive]
pub struct WriteOutcome {
    /// The insert, with the responses recorded alongside: every row stored, or none. On
    /// success, one id per row in order: the row's own id, or — for a row with a unique key
    /// that another row already held, so it was not inserted — the id of the row holding the
    /// key.
    pub inserted: Result<Vec<TaskId>>,
    /// The ids whose completion applied.
    pub completed: Result<Vec<TaskId>>,
    /// The ids whose other outcome applied (a requeue that changed the row counts).
    pub settled: Result<Vec<TaskId>>,
    /// The claimed rows.
    pub claimed: Result<Vec<ClaimedTask>>,
}

impl WriteOutcome {
    /// An outcome where every part succeeded without writing anything.
    pub fn empty() -> Self {
        Self {
            inserted: Ok(Vec::new()),
            completed: Ok(Vec::new()),
            settled: Ok(Vec::new()),
            claimed: Ok(Vec::new()),
        }
    }

    /// Sets the insert's result.
    #[must_use]
    pub fn with_inserted(mut self, result: Result<Vec<TaskId>>) -> Self {
        self.inserted = result;
        self
    }

    /// Sets the completions' result.
    #[must_use]
    pub fn with_completed(mut self, result: Result<Vec<TaskId>>) -> Self {
        self.completed = result;
        self
    }

    /// Sets the other outcomes' result.
    #[must_use]
    pub fn with_settled(mut self, result: Result<Vec<TaskId>>) -> Self {
        self.settled = result;
        self
    }

    /// Sets the claim's result.
    #[must_use]
    pub fn with_claimed(mut self, result: Result<Vec<ClaimedTask>>) -> Self {
        self.claimed = result;
        self
    }
}
