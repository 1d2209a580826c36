//! The storage contract every backend implements, and the values that cross it.

mod batch;
mod claim;
mod record;
mod rows;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use async_trait::async_trait;

use crate::error::Result;
use crate::task::TaskId;

pub use batch::{write_separately, WriteBatch, WriteOutcome};
pub use claim::{ClaimRequest, Fence, RescueReport, REQUEUE_LIMIT, UNCLAIMABLE_SCAN};
pub use record::{StateCounts, TaskRecord};
pub use rows::{ClaimedTask, LocalClaim, NewTask};

/// Persistence for tasks. Implemented by `durable-sqlx` for SQLite and PostgreSQL; the
/// conformance suite in that crate pins the behaviour every implementation must have.
///
/// All worker writes take a [`Fence`] and report whether they applied; a write about an
/// attempt that no longer holds the row changes nothing. Times are taken from the store's own
/// clock (the database's, for a server) so instances with skewed clocks agree.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Short backend name for logs ("sqlite", "postgres").
    fn backend(&self) -> &'static str;

    /// Starts delivering cross-process wakeups: the store calls `wake.notify_one()` whenever
    /// tasks may have become due that this process did not enqueue (PostgreSQL `NOTIFY`),
    /// until `stop` is cancelled. A hint only: the runtime keeps polling. The default does
    /// nothing (one process per database, as with SQLite).
    fn listen(&self, wake: Arc<Notify>, stop: CancellationToken) {
        let _ = (wake, stop);
    }

    /// Applies the embedded migrations (idempotent; safe when several instances start).
    async fn migrate(&self) -> Result<()>;

    /// Inserts all `tasks` in one transaction: all are stored, or none.
    async fn insert(&self, tasks: &[NewTask]) -> Result<()>;

    /// Claims due `pending` tasks per `request`: state `processing`, `attempts + 1`, lease
    /// taken. Never returns more rows than the request allows, and only rows whose name is
    /// one of `request.names` (none when it is empty): a row of another name stays `pending`,
    /// untouched, for an instance that knows its task type.
    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<ClaimedTask>>;

    /// Extends the lease of the held attempts; returns those still held (the rest were lost).
    async fn heartbeat(&self, held: &[Fence], lease: Duration) -> Result<Vec<Fence>>;

    /// Marks attempts `completed`; returns the ids whose write applied.
    async fn complete(&self, fences: &[Fence]) -> Result<Vec<TaskId>>;

    /// Puts a failed attempt back to `pending`, due after `delay`, recording `error`.
    async fn retry(&self, fence: &Fence, delay: Duration, error: &str) -> Result<bool>;

    /// Marks an attempt `failed` ("dead"), recording `error`.
    async fn fail(&self, fence: &Fence, error: &str) -> Result<bool>;

    /// Hands attempts back after a shutdown, in one statement: each row's `requeues` goes up
    /// by one, and the row is `pending`, due now, lease released, with the attempt not
    /// counted — for the task's first [`REQUEUE_LIMIT`] requeues. Past that, the attempt
    /// counts (`attempts` stays) and `last_error` says the task was stopped by shutdown N
    /// times; if that was its last attempt the row is `failed` instead of `pending`.
    /// Returns the rows changed (handed back or failed).
    async fn requeue(&self, fences: &[Fence]) -> Result<u64>;

    /// Records that an attempt is starting its task's code (the row's `attempt_started_at`).
    /// Claims and rows inserted already claimed leave it unset, so a lease that expires on a
    /// task's **last** attempt tells [`rescue_expired`](Self::rescue_expired) whether that
    /// attempt may have run: a worker that died between the claim and the start must not use
    /// up the task's last attempt. The runtime calls it before running an attempt that is its
    /// task's last (`attempt >= max_attempts`); earlier attempts need no mark, as an expired
    /// one is counted either way.
    ///
    /// Fenced: `Ok(false)` when the attempt no longer holds the row (its lease was lost) —
    /// the caller must not run it then.
    async fn mark_started(&self, fence: &Fence) -> Result<bool>;

    /// Sweeps rows whose lease expired (their worker died): back to `pending` (the attempt
    /// counted), or, on their last attempt, `failed` if that attempt was marked started
    /// ([`mark_started`](Self::mark_started)) and back to `pending` with the attempt *not*
    /// counted if it never started.
    async fn rescue_expired(&self) -> Result<RescueReport>;

    /// Cancels a `pending` task. Returns whether it was pending.
    async fn cancel(&self, id: TaskId) -> Result<bool>;

    /// Deletes up to `limit` `completed`/`cancelled` rows finished more than `older_than` ago.
    async fn prune(&self, older_than: Duration, limit: u32) -> Result<u64>;

    /// Reads one row.
    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>>;

    /// Counts rows per state.
    async fn counts(&self) -> Result<StateCounts>;

    /// Whether every write goes through one connection (SQLite). A [`Client`](crate::Client)
    /// then sends completions through the same writer cycles as inserts and claims — one
    /// transaction, one fsync for all; otherwise (the default) completions get a writer of
    /// their own and commit in parallel with the inserts.
    ///
    /// A single-writer store's client writer runs on a thread with a runtime of its own, so
    /// the store's connections must not be tied to the runtime that opened them (SQLite's
    /// run on threads of their own; sockets registered with one runtime's I/O driver are).
    fn single_writer(&self) -> bool {
        false
    }

    /// Performs one writer cycle: `batch.complete`, `batch.insert`, and `batch.claim` after
    /// the insert (so it sees the new rows). Each part's outcome must be the one it would
    /// have had alone: a part failing on its own data must not fail the others. The default
    /// is [`write_separately`]; stores override it to make a cycle cheaper (SQLite: one
    /// transaction, redone part by part when a part fails; PostgreSQL: the parts at once).
    async fn write(&self, batch: WriteBatch<'_>) -> WriteOutcome {
        write_separately(self, batch).await
    }

    /// Called by the [`Client`](crate::Client), in the caller's task, before it hands an
    /// insert to its writer: fails when that insert could never be written from here. SQLite
    /// answers [`Error::InsideWriterTransaction`](crate::Error::InsideWriterTransaction) when
    /// the calling task holds a transaction on its only writer connection (the client's
    /// writer would wait for that connection, and the transaction for the enqueue: until the
    /// writer's acquire timeout, with every other write of the process waiting too). The
    /// default has nothing to check. A wrapper store must delegate it.
    async fn check_enqueue(&self) -> Result<()> {
        Ok(())
    }

    /// Number of due `pending` rows (`run_at` reached): the backlog a load shedder looks at.
    /// Rows scheduled for later and retries waiting out their backoff are not counted: they
    /// are not work waiting for a worker.
    async fn backlog(&self) -> Result<u64>;

    /// Due `pending` rows whose task name is not in `known`, counted per name (most first):
    /// tasks that the instance asking, whose registry `known` is, will never claim
    /// ([`claim`](Self::claim) takes only known names). Only rows due for at least `waiting`
    /// are counted (a task type other instances run is normally claimed well within it), and
    /// only among the first [`UNCLAIMABLE_SCAN`] due rows in claim order, so the query stays
    /// cheap on a large backlog. For a periodic warning, not per claim.
    async fn unclaimable(&self, known: &[String], waiting: Duration) -> Result<Vec<(String, u64)>>;
}
