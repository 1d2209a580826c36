//! [`WorkerStore`]: the worker protocol — what a runtime and its client's writer need.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::{BoxStream, StreamExt};

use super::{
    Fence, KeyClaim, KeyTake, Maintenance, RescueReport, ScheduleStore, WriteBatch, WriteOutcome,
};
use crate::error::Result;
use crate::ids::TaskId;

/// How a store commits concurrent writes: a fact about the backend that the client's writer
/// plans its cycles around ([`WorkerStore::commit_mode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitMode {
    /// One connection commits every write in turn, its statements running on a thread of
    /// their own rather than on a runtime's I/O driver (SQLite). Writes combined into one
    /// transaction share its commit — one fsync — so everything the writer has queued
    /// goes into one cycle.
    Serial,
    /// A pool commits writes side by side, and concurrent commits share their flushes
    /// (PostgreSQL's group commit): a combined transaction saves nothing, so the writer
    /// writes attempts' outcomes in cycles of their own, and a request's insert never waits
    /// for them.
    Parallel,
}

/// Wakeups from other processes ([`WorkerStore::wakeups`]).
pub type Wakeups = BoxStream<'static, Wakeup>;

/// One wakeup from another process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Wakeup {
    /// Tasks may have become due that this process did not write: claim now.
    Due,
    /// Cancelling this task was requested while an attempt runs it
    /// ([`AdminStore::cancel`](super::AdminStore::cancel)): the runtime running it stops
    /// that attempt.
    Cancel(TaskId),
}

/// The worker protocol: writing tasks and attempts' outcomes, claiming, holding and rescuing
/// leases. Implemented by `durable-sqlx` for SQLite and PostgreSQL; its conformance suite pins
/// the behaviour every implementation must have.
///
/// Each method has one caller in `durable-core`: [`write`](Self::write) the client's writer,
/// [`heartbeat`](Self::heartbeat) a runtime's heartbeat loop, and so on (said per method).
/// Every write about an attempt carries its [`Fence`] and applies only while that attempt
/// still holds the row. Times are taken from the store's own clock (the database's, for a
/// server) so instances with skewed clocks agree.
#[async_trait]
pub trait WorkerStore: ScheduleStore + Send + Sync + fmt::Debug + 'static {
    /// Short backend name for logs ("sqlite", "postgres").
    fn backend(&self) -> &'static str;

    /// How this store commits concurrent writes. The default is [`CommitMode::Parallel`].
    fn commit_mode(&self) -> CommitMode {
        CommitMode::Parallel
    }

    /// The wall-clock time the store's statements take as "now", read on the application's
    /// side: a client turns an enqueue's `delay` into a run time with it. The default is the
    /// system clock; a store whose time a test moved forward (a test clock) answers that
    /// moved time, so a delay counts from the same "now" as the rows it is compared with.
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }

    /// Cross-process wakeups, for as long as the stream is kept: the runtime takes it when it
    /// starts and drops it when it stops. A hint only — the runtime keeps polling, and looks
    /// for cancellations at each heartbeat ([`cancel_requested`](Self::cancel_requested)).
    /// The default never yields (one process per database, as with SQLite); PostgreSQL yields
    /// on `NOTIFY`.
    fn wakeups(&self) -> Wakeups {
        futures_util::stream::pending().boxed()
    }

    /// One cycle of the client's writer, its only caller: `batch.complete` and
    /// `batch.settle` (attempts' outcomes), `batch.insert` (new rows, all or none), and
    /// `batch.claim` after the insert (so it sees the new rows): due `pending` rows of the
    /// request's names become `processing` for its owner, `attempts + 1`, lease taken — never
    /// more than the request allows, and never a row whose name is not in `request.names`.
    ///
    /// Each part's outcome must be the one it would have had alone: a part failing on its own
    /// data must not fail the others. How the parts are written is the store's choice (SQLite:
    /// one transaction, redone part by part when a part fails; PostgreSQL: the parts at once
    /// on several connections). Outcomes are fenced: [`WriteOutcome::completed`] and
    /// [`WriteOutcome::settled`] list the attempts whose write applied.
    async fn write(&self, batch: WriteBatch<'_>) -> WriteOutcome;

    /// Extends the lease of the held attempts; returns those still held (the rest were lost).
    /// Called by a runtime's heartbeat loop.
    async fn heartbeat(&self, held: &[Fence], lease: Duration) -> Result<Vec<Fence>>;

    /// The tasks among `held` whose cancellation was requested
    /// ([`AdminStore::cancel`](super::AdminStore::cancel) on a `processing` row): the runtime
    /// stops their attempts. Called by a runtime's heartbeat loop after each heartbeat, so a
    /// cancellation reaches an attempt of another process within a heartbeat interval even
    /// without wakeups. The default finds none; a wrapper store must delegate it.
    async fn cancel_requested(&self, held: &[Fence]) -> Result<Vec<TaskId>> {
        let _ = held;
        Ok(Vec::new())
    }

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
    /// counted if it never started. A row whose cancellation was requested becomes
    /// `cancelled` instead. Called by a runtime's claim loop.
    async fn rescue_expired(&self) -> Result<RescueReport>;

    /// Housekeeping that keeps the table claims scan small and fast: on PostgreSQL, a
    /// `VACUUM` of the live partition when its dead row versions pile up (each claim and each
    /// finished task leaves one), whatever the server's autovacuum settings. Called by a
    /// runtime every [`Settings::maintain_interval`](crate::runtime::Settings::maintain_interval);
    /// stores whose tables need none (SQLite rewrites rows in place) keep the default, which
    /// does nothing. A wrapper store must delegate it.
    async fn maintain(&self) -> Result<Maintenance> {
        Ok(Maintenance::default())
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

    /// Number of due `pending` rows (`run_at` reached): the backlog a load shedder looks at
    /// ([`Client::backlog`](crate::Client::backlog)). Rows scheduled for later and retries
    /// waiting out their backoff are not counted: they are not work waiting for a worker.
    async fn backlog(&self) -> Result<u64>;

    /// Due `pending` rows whose task name is not in `known`, counted per name (most first):
    /// tasks that the instance asking, whose registry `known` is, will never claim (a claim
    /// takes only known names). Only rows due for at least `waiting` are counted (a task type
    /// other instances run is normally claimed well within it), and only among the first
    /// [`UNCLAIMABLE_SCAN`](super::UNCLAIMABLE_SCAN) due rows in claim order, so the query stays cheap on a large
    /// backlog. Called by a runtime's periodic warning, not per claim.
    async fn unclaimable(&self, known: &[String], waiting: Duration) -> Result<Vec<(String, u64)>>;

    /// Takes an idempotency key for a request, in a transaction committed before it
    /// returns: inserted `running` if absent; taken over if its record expired, or if it is
    /// still `running` past its lock with the same fingerprint (its first run died before
    /// recording a response). Otherwise reports what holds it. A backend without
    /// idempotency support keeps this default, which refuses.
    async fn take_key(&self, take: &KeyTake) -> Result<KeyClaim> {
        let _ = take;
        Err(crate::Error::rejected(
            "take idempotency key",
            format!(
                "the {} store does not support idempotency keys",
                self.backend()
            ),
        ))
    }

    /// Releases a key still `running` under `token` (its request is not recorded: a retry
    /// runs again). `Ok(false)` when nothing was released: the response was recorded, or
    /// another request holds the key now.
    async fn release_key(&self, key_hash: &str, token: &str) -> Result<bool> {
        let _ = (key_hash, token);
        Ok(false)
    }

    /// Deletes at most `limit` expired keys (and their responses); returns how many.
    async fn purge_keys(&self, limit: u32) -> Result<u64> {
        let _ = limit;
        Ok(0)
    }
}
