//! Enqueueing: validation, group commit through one writer, and local dispatch.
//!
//! Every enqueue of a process goes through one writer task per [`Client`]. Requests hand it
//! their tasks and await the commit of the batch that holds them; while one transaction
//! commits, the next batch forms from whatever arrived meanwhile. Under load that turns many
//! small transactions into a few multi-row ones (group commit); at low load a lone request is
//! written at once, with no timer adding latency.
//!
//! Because the writer is a spawned task, a caller that is dropped mid-write (hyper drops a
//! handler's future when the client disconnects) cannot cancel or corrupt the transaction:
//! the batch is committed or rolled back as a whole, never left half-open on a connection.
//!
//! A single-writer store's writer (SQLite) runs on a thread of its own, so its serial cycle
//! never waits behind the application's tasks; the attempts it starts still run on the
//! application's runtime.
//!
//! Rows are checked before they reach the writer ([`validate`]), what waits for it is
//! bounded ([`queue`]), and a row the database still refuses fails only its own request
//! ([`writer`]).

mod builder;
mod options;
mod queue;
mod validate;
mod writer;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock, Weak};

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::store::{ClaimRequest, ClaimedTask, Fence, NewTask, Store, TaskRecord};
use crate::task::{Task, TaskId};

pub use builder::ClientBuilder;
pub use options::EnqueueOptions;
pub use queue::{DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_QUEUED_ROWS};
pub use validate::MAX_NAME_BYTES;

use queue::{Ticket, WriteQueue};
use writer::{Job, MAX_BATCH_BYTES, MAX_BATCH_ROWS};

/// Default limit on a serialized payload: 256 KiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// Hook through which the client hands freshly persisted tasks to the local runtime, and
/// through which a runtime's claim rides on a writer cycle.
pub(crate) trait LocalDispatch: Send + Sync {
    /// Marks as many of `tasks` as have free local capacity `claimed_by` this runtime.
    fn reserve(&self, tasks: &mut [NewTask]) -> Option<Reservation>;
    /// The insert committed: run the claimed tasks, note the rest.
    fn committed(&self, reservation: Option<Reservation>, tasks: &[NewTask]);
    /// The insert failed: give the reserved capacity back.
    fn aborted(&self, reservation: Option<Reservation>);
    /// Something was stored behind the client's back (a caller's transaction): look now.
    fn wake(&self);
    /// Runs a not-persisted future on the runtime's tracker.
    fn spawn_volatile(&self, name: &'static str, future: VolatileFuture);
    /// The claim to make in this cycle, for the capacity left after the cycle's local
    /// reservations; that capacity is held until [`end_claim`](Self::end_claim). `None`
    /// when there is no room (or the runtime is stopping).
    fn begin_claim(&self) -> Option<ClaimRequest>;
    /// The claim's rows once committed (`None`: it failed): release the held capacity, take
    /// one slot per row and run them.
    fn end_claim(&self, request: &ClaimRequest, claimed: Option<Vec<ClaimedTask>>);
}

pub(crate) type VolatileFuture = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Capacity taken for tasks being inserted already claimed.
pub(crate) struct Reservation {
    pub(crate) slots: Vec<(usize, String)>,
    pub(crate) _guard: tokio_util::task::task_tracker::TaskTrackerToken,
}

/// What a claim made by the writer for a runtime did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClaimReport {
    /// Rows claimed (and started).
    pub(crate) claimed: usize,
    /// Most rows the claim could take (0: there was no room).
    pub(crate) limit: usize,
}

struct ClientInner {
    store: Arc<dyn Store>,
    writer: mpsc::UnboundedSender<Job>,
    /// The completions' own writer, for stores with parallel writers. Unbounded: a runtime
    /// sends at most one completion per running attempt, so its concurrency bounds it.
    completions: Option<mpsc::UnboundedSender<Job>>,
    /// Inserts accepted and not yet answered; the writer's channel carries no more.
    queue: Arc<WriteQueue>,
    max_payload_bytes: usize,
    dispatch: Arc<OnceLock<Weak<dyn LocalDispatch>>>,
}

/// Enqueues tasks. Cheap to clone; all clones share one group-commit writer.
///
/// Create one per store with [`Client::new`] or [`Client::builder`], or take the one of a
/// [`Runtime`](crate::Runtime) (whose tasks it then dispatches locally without a poll).
/// Must be created inside a Tokio runtime.
///
/// Every enqueue is checked before it is queued ([`prepare`](Self::prepare)): what some
/// store cannot hold is refused with [`Error::InvalidTask`] or [`Error::PayloadTooLarge`].
/// A row the database refuses anyway (a constraint or trigger of yours) fails its own
/// request with [`Error::Rejected`]; the other requests of its batch are stored.
///
/// # Examples
///
/// ```no_run
/// # use durable_core::{Client, Task};
/// # async fn demo<T: Task>(client: Client, task: T) -> durable_core::Result<()> {
/// let id = client.enqueue(task).await?; // stored (committed) when this returns
/// println!("enqueued {id}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("store", &self.inner.store)
            .field("max_payload_bytes", &self.inner.max_payload_bytes)
            .field("max_queued_rows", &self.inner.queue.max_rows())
            .field("max_queued_bytes", &self.inner.queue.max_bytes())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client writing to `store`, with the default settings.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (it spawns its writer task).
    pub fn new(store: impl Store) -> Self {
        Self::builder(store).build()
    }

    /// Settings for a client writing to `store`.
    pub fn builder(store: impl Store) -> ClientBuilder {
        ClientBuilder::new(Arc::new(store))
    }

    /// A client over a shared store with a payload limit in bytes (other settings at their
    /// defaults).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn from_arc(store: Arc<dyn Store>, max_payload_bytes: usize) -> Self {
        ClientBuilder::new(store)
            .max_payload_bytes(max_payload_bytes)
            .build()
    }

    /// The store behind this client.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The payload limit in bytes.
    pub fn max_payload_bytes(&self) -> usize {
        self.inner.max_payload_bytes
    }

    /// Rows accepted for writing and not yet answered (committed or failed): what the
    /// writer holds in memory. Bounded by [`ClientBuilder::max_queued_rows`].
    pub fn queued_rows(&self) -> usize {
        self.inner.queue.rows()
    }

    /// Approximate bytes of the [`queued_rows`](Self::queued_rows). Bounded by
    /// [`ClientBuilder::max_queued_bytes`].
    pub fn queued_bytes(&self) -> usize {
        self.inner.queue.bytes()
    }

    pub(crate) fn attach(&self, dispatch: Weak<dyn LocalDispatch>) -> bool {
        self.inner.dispatch.set(dispatch).is_ok()
    }

    fn dispatch(&self) -> Option<Arc<dyn LocalDispatch>> {
        self.inner.dispatch.get().and_then(Weak::upgrade)
    }

    /// Validates and serializes `task` into a row, without writing it. Fails with
    /// [`Error::NameCollision`] when another type already used `T::NAME` in this process,
    /// [`Error::Serialize`] on a payload serde cannot serialize, [`Error::PayloadTooLarge`]
    /// over the limit, and [`Error::InvalidTask`] on what some store cannot hold: a queue
    /// (or task) name that is empty, over [`MAX_NAME_BYTES`] or holds a NUL character; a
    /// NUL character anywhere in the payload; a run time outside years 1–9999 UTC (a
    /// `delay` that ends after year 9999, `Duration::MAX` included). The checks are the same
    /// on every backend, so a task that enqueues on SQLite also enqueues on PostgreSQL.
    pub fn prepare<T: Task>(&self, task: &T, options: &EnqueueOptions) -> Result<NewTask> {
        // Task names are global: a second type under this name would run this one's rows.
        crate::names::claim::<T>()?;
        let payload = serde_json::to_string(task).map_err(|source| Error::Serialize {
            name: T::NAME,
            source,
        })?;
        if payload.len() > self.inner.max_payload_bytes {
            return Err(Error::PayloadTooLarge {
                name: T::NAME.to_owned(),
                size: payload.len(),
                limit: self.inner.max_payload_bytes,
            });
        }
        let run_at = match (options.run_at, options.delay) {
            (Some(at), _) => Some(at),
            (None, Some(delay)) => {
                Some(
                    validate::after_delay(delay).map_err(|reason| Error::InvalidTask {
                        name: T::NAME.to_owned(),
                        reason,
                    })?,
                )
            }
            (None, None) => None,
        };
        let defaults = T::options();
        let mut row = NewTask::new(T::NAME, payload)
            .with_queue(
                options
                    .queue
                    .clone()
                    .unwrap_or_else(|| defaults.queue.to_string()),
            )
            .with_priority(options.priority.unwrap_or(defaults.priority))
            .with_max_attempts(options.max_attempts.unwrap_or(defaults.max_attempts));
        row.run_at = run_at;
        validate::check_row(&row, self.inner.max_payload_bytes)?;
        Ok(row)
    }

    /// Enqueues one task; returns once it is committed.
    pub async fn enqueue<T: Task>(&self, task: T) -> Result<TaskId> {
        self.enqueue_with(task, EnqueueOptions::new()).await
    }

    /// Enqueues one task with overrides; returns once it is committed.
    pub async fn enqueue_with<T: Task>(&self, task: T, options: EnqueueOptions) -> Result<TaskId> {
        let row = self.prepare(&task, &options)?;
        let id = row.id;
        self.insert(vec![row]).await?;
        Ok(id)
    }

    /// Enqueues many tasks of one type in one transaction: all are stored, or none. Returns
    /// their ids in order. No size limit: a large batch is written in several statements of
    /// one transaction (see [`insert`](Self::insert)). Tasks of several types go together
    /// through [`prepare`](Self::prepare) and [`insert`](Self::insert).
    pub async fn enqueue_many<T: Task>(
        &self,
        tasks: impl IntoIterator<Item = T>,
    ) -> Result<Vec<TaskId>> {
        let options = EnqueueOptions::new();
        let rows = tasks
            .into_iter()
            .map(|t| self.prepare(&t, &options))
            .collect::<Result<Vec<_>>>()?;
        self.insert_rows(rows).await
    }

    /// [`enqueue_many`](Self::enqueue_many) with options per task: all are stored, or none.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use durable_core::{Client, EnqueueOptions, Task};
    /// # use std::time::Duration;
    /// # async fn demo<T: Task>(client: Client, reminders: Vec<(T, u64)>) -> durable_core::Result<()> {
    /// let ids = client
    ///     .enqueue_many_with(reminders.into_iter().map(|(task, minutes)| {
    ///         (task, EnqueueOptions::new().delay(Duration::from_secs(60 * minutes)))
    ///     }))
    ///     .await?;
    /// # let _ = ids; Ok(()) }
    /// ```
    pub async fn enqueue_many_with<T: Task>(
        &self,
        tasks: impl IntoIterator<Item = (T, EnqueueOptions)>,
    ) -> Result<Vec<TaskId>> {
        let rows = tasks
            .into_iter()
            .map(|(t, options)| self.prepare(&t, &options))
            .collect::<Result<Vec<_>>>()?;
        self.insert_rows(rows).await
    }

    async fn insert_rows(&self, rows: Vec<NewTask>) -> Result<Vec<TaskId>> {
        let ids = rows.iter().map(|r| r.id).collect();
        self.insert(rows).await?;
        Ok(ids)
    }

    /// Writes rows, all or none: through the group-commit writer, in one transaction with
    /// whatever else is in its batch, or — a batch of more than 4,096 rows or 16 MiB — in a
    /// transaction of its own (the store writes it in several statements), so it does not
    /// hold up other requests' small batches. Returns once committed.
    ///
    /// The rows get the checks of [`prepare`](Self::prepare) (rows built by hand included),
    /// and fail with [`Error::Overloaded`] at once when the client's write queue is full.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future does not cancel the write: the rows are committed (or
    /// the batch fails) regardless; only the answer is lost.
    pub async fn insert(&self, tasks: Vec<NewTask>) -> Result<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        for row in &tasks {
            validate::check_row(row, self.inner.max_payload_bytes)?;
        }
        // Ready at once unless the caller holds what the writer needs (SQLite's writer
        // transaction): then it fails instead of waiting on itself.
        self.inner.store.check_enqueue().await?;
        let ticket = self.inner.queue.admit(&tasks)?;
        if tasks.len() > MAX_BATCH_ROWS || ticket.bytes() > MAX_BATCH_BYTES {
            return self.insert_alone(tasks, ticket).await;
        }
        let (done, answer) = oneshot::channel();
        self.send(Job::Insert {
            rows: tasks,
            done,
            ticket,
        })?;
        answer.await.map_err(|_| Error::ShuttingDown)?
    }

    /// A large batch in a transaction of its own, in a spawned task (not cancelled with the
    /// caller); the local runtime is told once it is committed.
    async fn insert_alone(&self, tasks: Vec<NewTask>, ticket: Ticket) -> Result<()> {
        let store = Arc::clone(&self.inner.store);
        let dispatch = self.dispatch();
        let write = tokio::spawn(async move {
            let result = store.insert(&tasks).await;
            if result.is_ok() {
                if let Some(dispatch) = dispatch {
                    dispatch.committed(None, &tasks);
                }
            }
            drop(ticket);
            result
        });
        write.await.map_err(|e| Error::store("enqueue", e))?
    }

    fn send(&self, job: Job) -> Result<()> {
        self.inner.writer.send(job).map_err(|_| Error::ShuttingDown)
    }

    /// Marks one attempt `completed` in the writer's next cycle; `Ok(false)` when its fence
    /// no longer holds the row.
    pub(crate) async fn complete(&self, fence: Fence) -> Result<bool> {
        let (done, answer) = oneshot::channel();
        match &self.inner.completions {
            Some(completions) => completions
                .send(Job::Complete(fence, done))
                .map_err(|_| Error::ShuttingDown)?,
            None => self.send(Job::Complete(fence, done))?,
        }
        answer.await.map_err(|_| Error::ShuttingDown)?
    }

    /// Claims due tasks for `runtime` in the writer's next cycle (with the capacity it has
    /// then) and starts them there.
    pub(crate) async fn claim(&self, runtime: Arc<dyn LocalDispatch>) -> Result<ClaimReport> {
        let (done, answer) = oneshot::channel();
        self.send(Job::Claim(runtime, done))?;
        answer.await.map_err(|_| Error::ShuttingDown)?
    }

    /// Tells the local runtime that tasks were committed outside this client (for example in
    /// the caller's own transaction), so it claims them now rather than at its next poll.
    pub fn notify_committed(&self) {
        if let Some(dispatch) = self.dispatch() {
            dispatch.wake();
        }
    }

    /// Runs `future` in the background **without persisting it**: for work that may be lost
    /// (metrics, cache warm-ups). Unlike a bare `tokio::spawn`, it is tracked by the local
    /// runtime's `TaskTracker` — shutdown waits for it within the grace period — and an error
    /// or panic is logged with `name`. Without a local runtime it is spawned and still logged.
    pub fn spawn_volatile<F, E>(&self, name: &'static str, future: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let future: VolatileFuture =
            Box::pin(async move { future.await.map_err(|e| e.to_string()) });
        match self.dispatch() {
            Some(dispatch) => dispatch.spawn_volatile(name, future),
            None => {
                tokio::spawn(crate::runtime::run_volatile(name, future, None));
            }
        }
    }

    /// Cancels a `pending` task. Returns whether it was still pending.
    pub async fn cancel(&self, id: TaskId) -> Result<bool> {
        self.inner.store.cancel(id).await
    }

    /// Reads a task's row.
    pub async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        self.inner.store.get(id).await
    }
}
