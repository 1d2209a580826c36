//! The storage contract every backend implements, and the values that cross it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::task::{TaskId, TaskState, WorkerId};

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
}

impl NewTask {
    /// A task of `name` with a JSON `payload` and default options (queue `default`,
    /// priority 0, 20 attempts, due now). Mostly for stores' tests and tooling; applications
    /// go through [`Client`](crate::Client), which fills these from [`Task::options`](crate::Task::options).
    pub fn new(name: impl Into<String>, payload: impl Into<String>) -> Self {
        Self {
            id: TaskId::new(),
            name: name.into(),
            queue: crate::task::DEFAULT_QUEUE.to_owned(),
            payload: payload.into(),
            priority: 0,
            max_attempts: 20,
            run_at: None,
            claimed_by: None,
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

/// The identity of one attempt held by one worker. Every write a worker makes about a task
/// (complete, retry, fail, heartbeat, requeue) applies only while the row is still
/// `processing` with this owner and attempt; otherwise it is rejected as stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fence {
    /// The task.
    pub id: TaskId,
    /// The lease owner that claimed it.
    pub owner: WorkerId,
    /// The attempt number it was claimed at (the row's `attempts` after the claim).
    pub attempt: u32,
}

/// A claim order: how many due tasks to take, of which task types, per queue, and the lease
/// to take them with.
///
/// Only rows whose name is in [`names`](Self::names) are claimed: a runtime claims the task
/// types it can run and leaves the others `pending` for an instance that knows them (during
/// a rolling deploy, the new version's tasks wait for the new version instead of being
/// failed by the old one). An empty list claims nothing.
///
/// # Examples
///
/// ```
/// use durable_core::{ClaimRequest, WorkerId};
/// use std::time::Duration;
///
/// let request = ClaimRequest::new(WorkerId::new(), Duration::from_secs(30), 16, ["send_email"])
///     .cap("emails", 4);
/// assert_eq!(&*request.names, ["send_email".to_owned()]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimRequest {
    /// The claiming worker.
    pub owner: WorkerId,
    /// Lease length from the claim.
    pub lease: Duration,
    /// At most this many rows in total.
    pub limit: usize,
    /// Queues with their own cap: at most `.1` rows from queue `.0` (still within `limit`).
    /// Queues not listed are bounded by `limit` alone.
    pub capped: Vec<(String, usize)>,
    /// The task names to claim (the claiming runtime's registry); rows of other names are
    /// left alone. Shared, so a runtime builds it once, not per claim.
    pub names: Arc<[String]>,
}

impl ClaimRequest {
    /// A claim of at most `limit` rows of the task types `names`, from any queue.
    pub fn new<N>(owner: WorkerId, lease: Duration, limit: usize, names: N) -> Self
    where
        N: IntoIterator,
        N::Item: Into<String>,
    {
        Self::with_names(
            owner,
            lease,
            limit,
            names.into_iter().map(Into::into).collect(),
        )
    }

    /// Like [`new`](Self::new), with the names already shared (no copy per claim).
    pub fn with_names(
        owner: WorkerId,
        lease: Duration,
        limit: usize,
        names: Arc<[String]>,
    ) -> Self {
        Self {
            owner,
            lease,
            limit,
            capped: Vec::new(),
            names,
        }
    }

    /// Caps one queue within this claim.
    #[must_use]
    pub fn cap(mut self, queue: impl Into<String>, max: usize) -> Self {
        self.capped.push((queue.into(), max));
        self
    }

    /// Whether this claim can take nothing: no room, or no task type.
    pub fn is_empty(&self) -> bool {
        self.limit == 0 || self.names.is_empty()
    }
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
        }
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
    /// Times a shutdown stopped an attempt and handed the task back ([`Store::requeue`]).
    pub requeues: u32,
    /// Earliest next run.
    pub run_at: DateTime<Utc>,
    /// Lease owner while `processing`.
    pub lease_owner: Option<WorkerId>,
    /// Lease expiry while `processing`.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Message of the last failed attempt.
    pub last_error: Option<String>,
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
            created_at: epoch,
            updated_at: epoch,
            finished_at: None,
        }
    }
}

/// Shutdown requeues of one task that do not count its attempt ([`Store::requeue`]). From
/// the next one on, an attempt stopped by shutdown counts like a failed one, and one that was
/// the last leaves the task `failed`: a task that always outlives the shutdown grace period
/// then ends after its attempts instead of being handed back at every deploy forever. Ten
/// spares a task through ten deploys that each stopped it (a deploy that interrupts it
/// twice — SIGTERM, then the new process stopping too — spends two).
pub const REQUEUE_LIMIT: u32 = 10;

/// How many due `pending` rows [`Store::unclaimable`] looks at, at most, in claim order.
pub const UNCLAIMABLE_SCAN: u32 = 10_000;

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

/// What a lease-expiry sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RescueReport {
    /// Rows whose lease expired, put back to `pending` (last attempts that never started
    /// included).
    pub requeued: u64,
    /// Rows whose lease expired on a last attempt that had started, now `failed`.
    pub failed: u64,
}

/// One write cycle of a [`Client`](crate::Client)'s writer: new rows, finished attempts and a
/// claim for the capacity left. A store performs them as cheaply as it can
/// ([`Store::write`]): SQLite in **one transaction**, so a busy runtime pays one commit — one
/// fsync — per cycle instead of one per kind of write; PostgreSQL as concurrent statements.
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
    /// Rows to insert, all or none (see [`Store::insert`]).
    pub insert: &'a [NewTask],
    /// Attempts to mark `completed` (see [`Store::complete`]).
    pub complete: &'a [Fence],
    /// A claim made after the inserts, so it sees them (see [`Store::claim`]).
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
/// transaction. The default [`Store::write`], and the fallback of a store whose combined
/// transaction failed on one of its parts (so the others still get their own answer).
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
