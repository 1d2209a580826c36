//! [`AdminStore`]: inspection and administration of the task table.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use chrono::{DateTime, Utc};

use super::{
    ActionOutcome, CancelOutcome, Count, ListQuery, Page, RetryFailed, Seen, StateCounts, Stats,
    StuckQuery, TaskRecord, ThroughputBucket,
};
use crate::error::Result;
use crate::ids::{TaskId, WorkerId};
use crate::TaskState;

/// Inspection and administration (get, list, counts, cancel, prune, migrate): what operators, dashboards and maintenance call, as opposed
/// to the worker protocol ([`WorkerStore`](super::WorkerStore)) a runtime drives.
///
/// None of these writes is fenced by an attempt: they act on a row whatever holds it, each in
/// a statement of its own. The operator's actions (`retry`, `delete`, `requeue`) take the
/// row as the operator saw it ([`Seen`]) and change nothing if it has moved on since; a
/// requeue ends the running attempt's fence, so that attempt's late writes are refused.
#[async_trait]
pub trait AdminStore: Send + Sync + fmt::Debug + 'static {
    /// Applies the embedded migrations (idempotent; safe when several instances start at
    /// once).
    async fn migrate(&self) -> Result<()>;

    /// Reads one row.
    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>>;

    /// Rows matching `query`, in id order, at most `query.limit` of them (one keyset page).
    async fn list(&self, query: &ListQuery) -> Result<Page>;

    /// Counts rows per state, exactly (every row is read: for tests and small tables; see
    /// [`stats`](Self::stats) for what stays cheap at millions of rows).
    async fn counts(&self) -> Result<StateCounts>;

    /// Counts per state and live counts per queue, each exact where an index makes it cheap
    /// and otherwise bounded ([`COUNT_BOUND`](super::COUNT_BOUND)) or estimated, and labelled
    /// so ([`Count`](super::Count)).
    async fn stats(&self) -> Result<Stats>;

    /// The counts per state of [`stats`](Self::stats) alone, without the per-queue counts
    /// (the part that walks the live rows of every queue). What the runtime's
    /// `durable_tasks{state}` gauges read every
    /// [`stats_interval`](crate::runtime::RuntimeBuilder::stats_interval): it stays
    /// cheap while a held vacuum horizon fills the live rows' indexes. The default reads
    /// [`stats`](Self::stats).
    async fn state_stats(&self) -> Result<Vec<(TaskState, Count)>> {
        Ok(self.stats().await?.states)
    }

    /// Attempts ended per minute since `since` (at most the last 24 hours), across every
    /// instance, oldest first; minutes without any are left out.
    async fn throughput(&self, since: DateTime<Utc>) -> Result<Vec<ThroughputBucket>>;

    /// Adds one instance's counts of ended attempts per minute (a runtime flushes them every
    /// few seconds, so reading [`throughput`](Self::throughput) costs nothing per task);
    /// counts older than 24 hours are dropped.
    async fn add_throughput(&self, worker: WorkerId, buckets: &[ThroughputBucket]) -> Result<()>;

    /// Puts a `failed` or `cancelled` task back to `pending`, due now, with one more attempt
    /// allowed if it had used them all; its error history stays.
    /// [`ActionOutcome::KeyHeld`] when another live task holds its unique key.
    async fn retry(&self, id: TaskId, seen: Option<Seen>) -> Result<ActionOutcome>;

    /// [`retry`](Self::retry) for up to `which.limit` `failed` tasks (oldest failure first);
    /// returns how many went back to `pending` (tasks whose unique key is held are skipped).
    async fn retry_failed(&self, which: &RetryFailed) -> Result<u64>;

    /// Deletes a task that is not `processing` (its steps go with it).
    async fn delete(&self, id: TaskId, seen: Option<Seen>) -> Result<ActionOutcome>;

    /// Hands a `processing` task back to `pending` now, whatever its lease: for an attempt
    /// that is stuck. Its fence ends (the attempt's late writes are refused), and the attempt
    /// counts as a requeue, not a failure.
    async fn requeue(&self, id: TaskId, seen: Option<Seen>) -> Result<ActionOutcome>;

    /// [`requeue`](Self::requeue) for up to `which.limit` stuck `processing` tasks; returns
    /// how many.
    async fn requeue_stuck(&self, which: &StuckQuery) -> Result<u64>;

    /// Cancels a task: a `pending` one becomes `cancelled` at once and never runs
    /// ([`CancelOutcome::Cancelled`]); for a `processing` one the request is recorded
    /// ([`CancelOutcome::Requested`]) and the runtime running it stops that attempt (told at
    /// once where the store can: PostgreSQL sends a `NOTIFY`; otherwise at the runtime's next
    /// heartbeat, through [`WorkerStore::cancel_requested`](super::WorkerStore::cancel_requested)).
    /// The attempt's end then makes the row `cancelled` — an error, a timeout, its token, a
    /// shutdown's hand-back, an expired lease — except a completion, which stays `completed`.
    async fn cancel(&self, id: TaskId) -> Result<CancelOutcome>;

    /// Deletes up to `limit` `completed`/`cancelled` rows finished more than `older_than` ago;
    /// returns how many. `failed` rows are kept for inspection.
    async fn prune(&self, older_than: Duration, limit: u32) -> Result<u64>;
}
