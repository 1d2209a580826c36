//! [`Client`]: the cloneable handle applications enqueue through.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock, Weak};

use super::link::{Link, Waiters};
use super::options::EnqueueOptions;
use super::row;
use super::volatile::{run as run_volatile, VolatileFuture};

use crate::error::Result;
use crate::ids::TaskId;
use crate::store::{CancelOutcome, NewTask, Store, TaskRecord};
use crate::task::Task;
use crate::writer::{LocalRuntime, Writer};

pub(super) struct ClientInner {
    pub(super) store: Arc<dyn Store>,
    pub(super) writer: Writer,
    pub(super) max_payload_bytes: usize,
    /// The runtime this client belongs to, once attached.
    pub(super) link: OnceLock<Link>,
    /// Who waits for which task ([`Client::wait`]).
    pub(super) waiters: Waiters,
}

/// Enqueues tasks. Cheap to clone; all clones share one group-commit writer.
///
/// Create one per store with [`Client::new`] or [`Client::builder`], or take the one of a
/// [`Runtime`](crate::Runtime) (whose tasks it then dispatches locally without a poll).
/// Must be created inside a Tokio runtime.
///
/// Every enqueue is checked before it is queued: what some store cannot hold is refused with
/// [`Error::InvalidTask`](crate::Error::InvalidTask) or
/// [`Error::PayloadTooLarge`](crate::Error::PayloadTooLarge). A row the database refuses
/// anyway (a constraint or trigger of yours) fails its own request with
/// [`Error::Rejected`](crate::Error::Rejected); the other requests of its batch are stored.
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
    pub(super) inner: Arc<ClientInner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("store", &self.inner.store)
            .field("max_payload_bytes", &self.inner.max_payload_bytes)
            .field("writer", &self.inner.writer)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// The payload limit in bytes.
    pub fn max_payload_bytes(&self) -> usize {
        self.inner.max_payload_bytes
    }

    /// Rows accepted for writing and not yet answered (committed or failed): what the
    /// writer holds in memory. Bounded by [`ClientBuilder::max_queued_rows`](super::ClientBuilder::max_queued_rows).
    pub fn queued_rows(&self) -> usize {
        self.inner.writer.queue().rows()
    }

    /// Approximate bytes of the [`queued_rows`](Self::queued_rows). Bounded by
    /// [`ClientBuilder::max_queued_bytes`](super::ClientBuilder::max_queued_bytes).
    pub fn queued_bytes(&self) -> usize {
        self.inner.writer.queue().bytes()
    }

    /// Enqueues one task; returns once it is committed.
    pub async fn enqueue<T: Task>(&self, task: T) -> Result<TaskId> {
        self.enqueue_with(task, EnqueueOptions::new()).await
    }

    /// Enqueues one task with overrides; returns once it is committed.
    ///
    /// With a [unique key](EnqueueOptions::unique) held by another task, nothing is stored and
    /// the id returned is that task's.
    pub async fn enqueue_with<T: Task>(&self, task: T, options: EnqueueOptions) -> Result<TaskId> {
        let row = self.prepare(&task, &options)?;
        let id = row.id;
        let survivors = self.insert(vec![row]).await?;
        Ok(survivors.first().copied().unwrap_or(id))
    }

    /// Serializes and checks `task` into a row, without writing it: for stores that write
    /// rows in a transaction of the caller's (`durable_sqlx::enqueue_in`). Applications
    /// enqueue through [`enqueue`](Self::enqueue) or a [`Batch`](super::Batch).
    ///
    /// Fails with [`Error::NameCollision`](crate::Error::NameCollision) when another type
    /// already used `T::NAME` in this process, [`Error::Serialize`](crate::Error::Serialize)
    /// on a payload serde cannot serialize, [`Error::PayloadTooLarge`](crate::Error::PayloadTooLarge)
    /// over the limit, and [`Error::InvalidTask`](crate::Error::InvalidTask) on what some
    /// store cannot hold: a queue (or task) name that is empty, over [`MAX_NAME_BYTES`](super::MAX_NAME_BYTES) or
    /// holds a NUL character; a NUL character anywhere in the payload; a run time outside
    /// years 1–9999 UTC (a `delay` that ends after year 9999, `Duration::MAX` included). The
    /// checks are the same on every backend, so a task that enqueues on SQLite also enqueues
    /// on PostgreSQL.
    pub fn prepare<T: Task>(&self, task: &T, options: &EnqueueOptions) -> Result<NewTask> {
        // A delay counts from the store's "now" (moved by a test clock, if any).
        let now = self.inner.store.now();
        row::build(task, options, self.inner.max_payload_bytes, now)
    }

    /// Writes prepared rows through the writer, all or none; returns once committed, with
    /// each row's surviving id (its own, or the task's holding its unique key).
    pub(crate) async fn insert(&self, rows: Vec<NewTask>) -> Result<Vec<TaskId>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        self.inner.writer.insert(rows).await
    }

    /// Tells the local runtime that tasks were committed outside this client (for example in
    /// the caller's own transaction), so it claims them now rather than at its next poll.
    pub fn notify_committed(&self) {
        if let Some(link) = self.inner.link.get() {
            link.wake.committed();
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
        match self.inner.link.get() {
            Some(link) => {
                link.tracker.spawn_on(
                    run_volatile(name, future, Some(link.hard.clone())),
                    &link.handle,
                );
            }
            None => {
                tokio::spawn(run_volatile(name, future, None));
            }
        }
    }

    /// Cancels task `id`, from any process: a `pending` task becomes `cancelled` and never
    /// runs ([`CancelOutcome::Cancelled`]). For a running one the request is recorded
    /// ([`CancelOutcome::Requested`]) and the attempt's token fires
    /// ([`TaskContext::cancelled`](crate::TaskContext::cancelled), with
    /// [`CancelReason::Requested`](crate::CancelReason::Requested)) on whichever instance
    /// runs it: at once on this client's runtime and, on PostgreSQL, on the others (a
    /// `NOTIFY`); within a heartbeat interval otherwise. The task then ends `cancelled` —
    /// however the attempt ends (an error, a timeout, a snooze, its token, a shutdown, its
    /// worker dying), except `Ok`: a completed attempt did the work and stays `completed`.
    /// [`wait`](Self::wait) reports the final state.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use durable_core::{Client, TaskId, TaskState};
    /// # use durable_core::store::CancelOutcome;
    /// # async fn demo(client: Client, id: TaskId) -> durable_core::Result<()> {
    /// match client.cancel(id).await? {
    ///     CancelOutcome::Cancelled => println!("it will never run"),
    ///     CancelOutcome::Requested => {
    ///         let done = client.wait(id).await?; // `cancelled`, or `completed` if it finished
    ///         println!("ended {}", done.state);
    ///     }
    ///     CancelOutcome::AlreadyFinished | CancelOutcome::NotFound | _ => {}
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn cancel(&self, id: TaskId) -> Result<CancelOutcome> {
        let outcome = self.inner.store.cancel(id).await?;
        match outcome {
            CancelOutcome::Cancelled => self.inner.waiters.finished(id),
            CancelOutcome::Requested => {
                if let Some(cancels) = self.inner.link.get().and_then(|l| l.cancels.upgrade()) {
                    cancels.cancel_requested(id);
                }
            }
            _ => {}
        }
        Ok(outcome)
    }

    /// Task `id` reached a final state in this process (its runtime wrote it).
    pub(crate) fn finished(&self, id: TaskId) {
        self.inner.waiters.finished(id);
    }

    /// Reads a task's row.
    pub async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        self.inner.store.get(id).await
    }

    /// Due `pending` tasks waiting for a worker (scheduled ones and retries waiting out
    /// their backoff are not counted): what a load shedder looks at.
    pub async fn backlog(&self) -> Result<u64> {
        self.inner.store.backlog().await
    }

    /// The writer, for the runtime's claims and outcomes.
    pub(crate) fn writer(&self) -> &Writer {
        &self.inner.writer
    }

    /// Attaches the runtime this client dispatches to; `false` if one already is.
    pub(crate) fn attach(&self, runtime: Weak<dyn LocalRuntime>, link: Link) -> bool {
        self.inner.writer.attach(runtime) && self.inner.link.set(link).is_ok()
    }
}
