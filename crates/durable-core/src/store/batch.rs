//! One writer cycle: inserts, completions and a claim handed to the store together.

use super::{ClaimRequest, ClaimedTask, Fence, NewTask, Store};
use crate::error::Result;
use crate::task::TaskId;

/// One write cycle of a [`Client`](crate::Client)'s writer: new rows, finished attempts and a claim
/// for the capacity left. A store performs them as cheaply as it can
/// ([`Store::write`](super::Store::write)): SQLite in **one transaction**, so a busy runtime pays
/// one commit — one fsync — per cycle instead of one per kind of write; PostgreSQL as concurrent
/// statements.
///
/// # Examples
///
/// ```
/// use durable_core::{NewTask, WriteBatch};
/// let rows = [NewTask::new("send_email", "{}")];
/// let batch = WriteBatch::new().insert(&rows);
/// assert_eq!(batch.insert.len(), 1);
/// assert!(batch.complete.is_empty() && batch.claim.is_none());
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct WriteBatch<'a> {
    /// Rows to insert, all or none (see [`Store::insert`](super::Store::insert)).
    pub insert: &'a [NewTask],
    /// Attempts to mark `completed` (see [`Store::complete`](super::Store::complete)).
    pub complete: &'a [Fence],
    /// A claim made after the inserts, so it sees them (see [`Store::claim`](super::Store::claim)).
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

    /// Sets the attempts to complete.
    #[must_use]
    pub fn complete(mut self, fences: &'a [Fence]) -> Self {
        self.complete = fences;
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
            && self.complete.is_empty()
            && self.claim.is_none_or(ClaimRequest::is_empty)
    }
}

/// What a [`WriteBatch`] did, part by part: each part succeeds or fails as if it had been
/// written on its own (a bad insert must not fail the completions riding with it).
#[derive(Debug)]
#[non_exhaustive]
pub struct WriteOutcome {
    /// The insert: every row stored, or none.
    pub inserted: Result<()>,
    /// The ids whose completion applied.
    pub completed: Result<Vec<TaskId>>,
    /// The claimed rows.
    pub claimed: Result<Vec<ClaimedTask>>,
}

impl WriteOutcome {
    /// Builds an outcome from its three parts.
    pub fn new(
        inserted: Result<()>,
        completed: Result<Vec<TaskId>>,
        claimed: Result<Vec<ClaimedTask>>,
    ) -> Self {
        Self {
            inserted,
            completed,
            claimed,
        }
    }
}

/// Performs a [`WriteBatch`] as separate calls — completions, insert, claim — each its own
/// transaction. The default [`Store::write`](super::Store::write), and the fallback of a store
/// whose combined transaction failed on one of its parts (so the others still get their own
/// answer).
pub async fn write_separately<S: Store + ?Sized>(store: &S, batch: WriteBatch<'_>) -> WriteOutcome {
    let completed = if batch.complete.is_empty() {
        Ok(Vec::new())
    } else {
        store.complete(batch.complete).await
    };
    let inserted = if batch.insert.is_empty() {
        Ok(())
    } else {
        store.insert(batch.insert).await
    };
    let claimed = match batch.claim {
        Some(request) if !request.is_empty() => store.claim(request).await,
        _ => Ok(Vec::new()),
    };
    WriteOutcome::new(inserted, completed, claimed)
}
