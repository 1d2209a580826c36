//! The group-commit writer: every write of a process's tasks goes through it.
//!
//! Requests hand it their rows, runtimes their attempts' outcomes and their claims; each
//! cycle takes whatever is queued and writes it with one [`WorkerStore::write`], and while
//! that commits the next cycle forms from whatever arrived meanwhile. Under load that turns
//! many small transactions into a few multi-row ones (group commit); at low load a lone
//! request is written at once, with no timer adding latency.
//!
//! Because the writer is a spawned task, a caller that is dropped mid-write (hyper drops a
//! handler's future when the client disconnects) cannot cancel or corrupt the transaction:
//! the batch is committed or rolled back as a whole, never left half-open on a connection.
//!
//! The writer plans around how its store commits ([`CommitMode`]): for a serial store
//! (SQLite) every write of the process goes into the same cycles — one transaction, one
//! fsync for inserts, outcomes and a claim together — and the writer runs on a thread of its
//! own ([`thread`]), so its chain of hand-offs never queues behind the application's tasks;
//! for a parallel store (PostgreSQL) attempts' outcomes get cycles of their own beside the
//! requests' inserts and the runtime's claims, so a request never waits for them.
//!
//! What waits for the writer is bounded ([`queue`]); a row the database refuses fails only
//! its own request ([`split`]). A local runtime sees the writer's cycles through one hook,
//! [`LocalRuntime`]: it takes capacity for fresh rows before their insert commits (they are
//! inserted already claimed and start at once), sizes the claim riding on a cycle, and starts
//! what the cycle committed for it.
//!
//! [`WorkerStore::write`]: crate::store::WorkerStore::write

mod cycle;
mod latency;
mod local;
mod queue;
mod split;
mod thread;

use std::fmt;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::ids::TaskId;
use crate::store::{CommitMode, Fence, NewTask, ResponseRecord, Settle, Store};

use cycle::{Job, MAX_BATCH_BYTES, MAX_BATCH_ROWS};
use latency::WriteLatency;
use local::Attached;
pub(crate) use local::{ClaimReport, LocalRuntime, Reservation};
use queue::{Ticket, WriteQueue};

/// A handle on one writer task. Cheap to clone; the writer stops when the last clone is gone.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
    /// Where attempts' outcomes go: a lane of their own on a parallel store, else `jobs`.
    outcomes: mpsc::UnboundedSender<Job>,
    store: Arc<dyn Store>,
    /// Inserts accepted and not yet answered; the job channel carries no more.
    queue: Arc<WriteQueue>,
    local: Attached,
    /// How long the store's recent writes took (every lane's).
    latency: Arc<WriteLatency>,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("queued_rows", &self.queue.rows())
            .field("max_queued_rows", &self.queue.max_rows())
            .field("max_queued_bytes", &self.queue.max_bytes())
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts a writer on `store`, holding at most `max_rows` rows and `max_bytes` bytes of
    /// unanswered inserts.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (it spawns its task).
    pub(crate) fn start(store: Arc<dyn Store>, max_rows: usize, max_bytes: usize) -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        let local: Attached = Arc::new(OnceLock::new());
        let latency = Arc::new(WriteLatency::default());
        let main = cycle::write_loop(
            Arc::clone(&store),
            rx,
            Arc::clone(&local),
            Arc::clone(&latency),
        );
        let outcomes = if store.commit_mode() == CommitMode::Serial {
            thread::spawn(main);
            jobs.clone()
        } else {
            tokio::spawn(main);
            let (outcomes, rx) = mpsc::unbounded_channel();
            let none: Attached = Arc::new(OnceLock::new());
            tokio::spawn(cycle::write_loop(
                Arc::clone(&store),
                rx,
                none,
                Arc::clone(&latency),
            ));
            outcomes
        };
        Self {
            jobs,
            outcomes,
            store,
            queue: WriteQueue::new(max_rows, max_bytes),
            local,
            latency,
        }
    }

    pub(crate) fn queue(&self) -> &WriteQueue {
        &self.queue
    }

    /// The slowest store write of the last 10 to 20 seconds (zero if none): what a write
    /// queued now may take, and as long again if it waits for one in flight.
    pub(crate) fn recent_write(&self) -> Duration {
        self.latency.recent(Instant::now())
    }

    /// Attaches the runtime whose tasks this writer dispatches; `false` if one already is.
    pub(crate) fn attach(&self, runtime: Weak<dyn LocalRuntime>) -> bool {
        self.local.set(runtime).is_ok()
    }

    fn local(&self) -> Option<Arc<dyn LocalRuntime>> {
        self.local.get().and_then(Weak::upgrade)
    }

    /// Writes checked rows, all or none; returns once committed, with one id per row: its
    /// own, or the id of the task holding its unique key. Fails with
    /// [`Error::Overloaded`] at once when the write queue is full.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not cancel the write, only the answer is lost.
    pub(crate) async fn insert(&self, rows: Vec<NewTask>) -> Result<Vec<TaskId>> {
        self.insert_with(rows, Vec::new()).await
    }

    /// [`insert`](Self::insert), with responses of idempotent requests recorded in the same
    /// transaction: the rows and the records commit together or not at all.
    pub(crate) async fn insert_with(
        &self,
        rows: Vec<NewTask>,
        records: Vec<ResponseRecord>,
    ) -> Result<Vec<TaskId>> {
        // Ready at once unless the caller holds what the writer needs (SQLite's writer
        // transaction): then it fails instead of waiting on itself.
        self.store.check_enqueue().await?;
        let ticket = self.queue.admit(&rows)?;
        let counted = crate::runtime::enqueue_labels(&rows);
        let ids = if rows.len() > MAX_BATCH_ROWS || ticket.bytes() > MAX_BATCH_BYTES {
            self.insert_alone(rows, records, ticket).await?
        } else {
            let (done, answer) = oneshot::channel();
            self.send(Job::Insert {
                rows,
                records,
                done,
                ticket,
            })?;
            answer.await.map_err(|_| Error::ShuttingDown)??
        };
        crate::runtime::count_enqueued(&counted, &ids);
        Ok(ids)
    }

    /// A batch over the cycle's bounds, in a transaction of its own so it does not hold up
    /// other requests' small batches; in a spawned task (not cancelled with the caller). The
    /// local runtime is told once it is committed.
    async fn insert_alone(
        &self,
        rows: Vec<NewTask>,
        records: Vec<ResponseRecord>,
        ticket: Ticket,
    ) -> Result<Vec<TaskId>> {
        let store = Arc::clone(&self.store);
        let local = self.local();
        let write = tokio::spawn(async move {
            let result = split::insert_on(&*store, &rows, &records).await;
            if let Some(local) = local {
                local.inserted(None, &rows, result.is_ok());
            }
            drop(ticket);
            result
        });
        write.await.map_err(|e| Error::store("enqueue", e))?
    }

    /// Marks one attempt `completed` in the next cycle; `Ok(false)` when its fence no longer
    /// holds the row.
    pub(crate) async fn complete(&self, fence: Fence) -> Result<bool> {
        let (done, answer) = oneshot::channel();
        self.outcomes
            .send(Job::Complete(fence, done))
            .map_err(|_| Error::ShuttingDown)?;
        answer.await.map_err(|_| Error::ShuttingDown)?
    }

    /// Writes attempts' other outcomes in the next cycle; returns the ids whose write applied.
    pub(crate) async fn settle(&self, outcomes: Vec<Settle>) -> Result<Vec<TaskId>> {
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        let (done, answer) = oneshot::channel();
        self.outcomes
            .send(Job::Settle(outcomes, done))
            .map_err(|_| Error::ShuttingDown)?;
        answer.await.map_err(|_| Error::ShuttingDown)?
    }

    /// Writes completions and other outcomes in one cycle (a shutdown's hand-back: the
    /// attempts it stopped and the outcomes of those still recording theirs, in one
    /// transaction). Returns, for each part, the ids whose write applied.
    pub(crate) async fn write_together(
        &self,
        complete: Vec<Fence>,
        settle: Vec<Settle>,
    ) -> (Result<Vec<TaskId>>, Result<Vec<TaskId>>) {
        let mut jobs = Vec::with_capacity(complete.len() + 1);
        let mut completions = Vec::with_capacity(complete.len());
        for fence in complete {
            let (done, answer) = oneshot::channel();
            jobs.push(Job::Complete(fence, done));
            completions.push((fence.id, answer));
        }
        let (done, settled) = oneshot::channel();
        jobs.push(Job::Settle(settle, done));
        if self.outcomes.send(Job::Together(jobs)).is_err() {
            return (Err(Error::ShuttingDown), Err(Error::ShuttingDown));
        }
        let mut completed = Ok(Vec::new());
        for (id, answer) in completions {
            match answer
                .await
                .map_err(|_| Error::ShuttingDown)
                .and_then(|r| r)
            {
                Ok(applied) => {
                    if let (true, Ok(ids)) = (applied, &mut completed) {
                        ids.push(id);
                    }
                }
                Err(error) => completed = Err(error),
            }
        }
        let settled = settled
            .await
            .map_err(|_| Error::ShuttingDown)
            .and_then(|r| r);
        (completed, settled)
    }

    /// Claims due tasks for `runtime` in the next cycle (with the capacity it has then) and
    /// starts them there.
    pub(crate) async fn claim(&self, runtime: Arc<dyn LocalRuntime>) -> Result<ClaimReport> {
        let (done, answer) = oneshot::channel();
        self.send(Job::Claim(runtime, done))?;
        answer.await.map_err(|_| Error::ShuttingDown)?
    }

    fn send(&self, job: Job) -> Result<()> {
        self.jobs.send(job).map_err(|_| Error::ShuttingDown)
    }
}
