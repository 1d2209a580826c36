//! The group-commit writer: cycles of whatever is queued — inserts, completions, a claim —
//! each written with one [`Store::write`].
//!
//! A batch whose insert the database refuses because of a row ([`Error::Rejected`]: a
//! constraint, a trigger, a value it cannot hold) is written again in halves, recursively,
//! so that every request is answered as if it had been written alone: the requests whose
//! rows are fine are stored, only the one with the bad row fails. Whole-database failures
//! (connection lost, timeout) fail the batch at once; splitting would only repeat them.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::queue::Ticket;
use super::{ClaimReport, LocalDispatch, Reservation};
use crate::error::{Error, Result};
use crate::store::{ClaimRequest, ClaimedTask, Fence, NewTask, Store, WriteBatch, WriteOutcome};
use crate::task::TaskId;

/// Most rows the writer puts in one transaction.
pub(super) const MAX_BATCH_ROWS: usize = 4096;

/// Most bytes of rows (as counted by the client's write queue) the writer gathers into one transaction: a cycle
/// of large payloads stays far below the statement size limits of the stores (SQLite's
/// string limit, PostgreSQL's 1 GB message).
pub(super) const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Most completions the writer puts in one transaction.
const MAX_BATCH_COMPLETIONS: usize = 1024;

/// How long a cycle holding only completions waits for an insert or a claim to share its
/// transaction. Completions are off the request path; a row stays `processing` (leased)
/// this much longer.
const COMPLETION_LINGER: Duration = Duration::from_millis(2);

/// Work for the writer task. Each cycle takes everything queued (up to a bound) and writes it
/// with one [`Store::write`], so inserts, completions and a claim share one transaction.
pub(super) enum Job {
    /// One request's rows, stored all or none.
    Insert {
        rows: Vec<NewTask>,
        done: oneshot::Sender<Result<()>>,
        /// Its room in the client's write queue, given back with the answer.
        ticket: Ticket,
    },
    Complete(Fence, oneshot::Sender<Result<bool>>),
    Claim(Arc<dyn LocalDispatch>, oneshot::Sender<Result<ClaimReport>>),
}

/// One error reported to every caller of a failed batch.
#[derive(Debug, Clone)]
struct BatchError(Arc<Error>);

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for BatchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

/// Runs a single-writer store's writer on a thread of its own with a current-thread
/// runtime. Its cycle is a chain of hand-offs (the spawned transaction task, the answer
/// from the connection's thread, the connection's return to the pool); on the application's
/// busy runtime each hop queues behind request tasks, here it runs at once. Measured on
/// SQLite at 64 concurrent requests: about a quarter more requests per second.
///
/// Only for single-writer stores: their connections are not bound to a runtime's I/O
/// driver (SQLite's run on threads of their own), so the pool can be shared across
/// runtimes. Falls back to the current runtime if the thread cannot be started.
pub(super) fn spawn_writer_thread(writer: impl Future<Output = ()> + Send + 'static) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::warn!(%error, "cannot build the writer's runtime; writing from the application's");
            tokio::spawn(writer);
            return;
        }
    };
    // Handed over through a slot, so that a thread that never starts leaves it here.
    let slot = Arc::new(std::sync::Mutex::new(Some(writer)));
    let take = |slot: &std::sync::Mutex<Option<_>>| {
        slot.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    };
    let theirs = Arc::clone(&slot);
    let started = std::thread::Builder::new()
        .name("durable-writer".into())
        .spawn(move || {
            if let Some(writer) = take(&theirs) {
                runtime.block_on(writer);
            }
        });
    if let Err(error) = started {
        tracing::warn!(%error, "cannot start the writer thread; writing from the application's runtime");
        if let Some(writer) = take(&slot) {
            tokio::spawn(writer);
        }
    }
}

/// One writer: cycles of whatever is queued. `linger`: completions wait a moment for an
/// insert or a claim to share their cycle (single-writer stores).
pub(super) async fn write_loop(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    dispatch: Arc<OnceLock<Weak<dyn LocalDispatch>>>,
    linger: bool,
) {
    while let Some(first) = rx.recv().await {
        let mut cycle = Cycle::default();
        cycle.push(first);
        cycle.drain(&mut rx);
        // Nobody's response waits on a completion: on a single-writer store, completions
        // wait (a moment at most) for an insert or a claim to share its transaction instead
        // of paying a commit — an fsync — of their own. At one request at a time this halves
        // the transactions; in a burn-down, a batch's completions ride with the next claim.
        let linger_until = tokio::time::Instant::now() + COMPLETION_LINGER;
        while linger && cycle.only_completions() {
            match tokio::time::timeout_at(linger_until, rx.recv()).await {
                Ok(Some(job)) => {
                    cycle.push(job);
                    cycle.drain(&mut rx);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let local = dispatch.get().and_then(Weak::upgrade);
        cycle.run(&*store, local).await;
    }
}

/// One request of a cycle: how many of the cycle's rows are its own (they are contiguous,
/// in request order) and where its answer goes.
struct Inserter {
    rows: usize,
    done: oneshot::Sender<Result<()>>,
    ticket: Ticket,
}

impl Inserter {
    fn answer(self, result: Result<()>) {
        // Room first: whoever reads the answer finds the queue without these rows.
        drop(self.ticket);
        // A dropped waiter only means nobody awaits the answer any more.
        let _ = self.done.send(result);
    }
}

/// What one writer cycle collected.
#[derive(Default)]
struct Cycle {
    rows: Vec<NewTask>,
    bytes: usize,
    inserters: Vec<Inserter>,
    fences: Vec<Fence>,
    completers: Vec<oneshot::Sender<Result<bool>>>,
    claims: Vec<ClaimJob>,
}

/// A runtime asking for a claim, and where its answer goes.
type ClaimJob = (Arc<dyn LocalDispatch>, oneshot::Sender<Result<ClaimReport>>);

impl Cycle {
    /// Takes whatever else is queued, up to the batch bounds.
    fn drain(&mut self, rx: &mut mpsc::UnboundedReceiver<Job>) {
        while self.rows.len() < MAX_BATCH_ROWS
            && self.bytes < MAX_BATCH_BYTES
            && self.fences.len() < MAX_BATCH_COMPLETIONS
        {
            match rx.try_recv() {
                Ok(job) => self.push(job),
                Err(_) => break,
            }
        }
    }

    fn only_completions(&self) -> bool {
        self.inserters.is_empty()
            && self.claims.is_empty()
            && self.fences.len() < MAX_BATCH_COMPLETIONS
    }

    fn push(&mut self, job: Job) {
        match job {
            Job::Insert { rows, done, ticket } => {
                self.bytes += ticket.bytes();
                self.inserters.push(Inserter {
                    rows: rows.len(),
                    done,
                    ticket,
                });
                self.rows.extend(rows);
            }
            Job::Complete(fence, done) => {
                self.fences.push(fence);
                self.completers.push(done);
            }
            Job::Claim(runtime, done) => self.claims.push((runtime, done)),
        }
    }

    async fn run(mut self, store: &dyn Store, local: Option<Arc<dyn LocalDispatch>>) {
        let reservation = match &local {
            Some(d) if !self.rows.is_empty() => d.reserve(&mut self.rows),
            _ => None,
        };
        // One claim rides on the transaction: the first runtime's (normally the only one).
        let mut claims = std::mem::take(&mut self.claims).into_iter();
        let first_claim = claims.next();
        let request = first_claim.as_ref().and_then(|(rt, _)| rt.begin_claim());
        let mut batch = WriteBatch::new().insert(&self.rows).complete(&self.fences);
        if let Some(request) = &request {
            batch = batch.claim(request);
        }
        let outcome = if batch.is_empty() {
            WriteOutcome::new(Ok(()), Ok(Vec::new()), Ok(Vec::new()))
        } else {
            store.write(batch).await
        };
        answer_completions(
            outcome.completed,
            std::mem::take(&mut self.fences),
            std::mem::take(&mut self.completers),
        );
        if let Some((runtime, done)) = first_claim {
            let report = finish_claim(&*runtime, request, outcome.claimed);
            let _ = done.send(report);
        }
        self.finish_insert(outcome.inserted, store, local.as_deref(), reservation)
            .await;
        // Another runtime sharing this client: its claim goes on its own.
        for (runtime, done) in claims {
            let request = runtime.begin_claim();
            let claimed = match &request {
                Some(r) => store.claim(r).await,
                None => Ok(Vec::new()),
            };
            let _ = done.send(finish_claim(&*runtime, request, claimed));
        }
    }

    async fn finish_insert(
        &mut self,
        result: Result<()>,
        store: &dyn Store,
        local: Option<&dyn LocalDispatch>,
        reservation: Option<Reservation>,
    ) {
        if self.inserters.is_empty() {
            return;
        }
        let error = match result {
            Ok(()) => {
                tracing::trace!(
                    rows = self.rows.len(),
                    requests = self.inserters.len(),
                    "batch committed"
                );
                if let Some(d) = local {
                    d.committed(reservation, &self.rows);
                }
                for inserter in self.inserters.drain(..) {
                    inserter.answer(Ok(()));
                }
                return;
            }
            Err(error) => error,
        };
        if let Some(d) = local {
            // Rows written again below go in as `pending`, found by the runtime's claim.
            if let Some(reservation) = &reservation {
                for (i, _) in &reservation.slots {
                    self.rows[*i].claimed_by = None;
                }
            }
            d.aborted(reservation);
        }
        let requests = self.inserters.len();
        if requests > 1 && matches!(error, Error::Rejected { .. }) {
            tracing::debug!(rows = self.rows.len(), requests, %error,
                "the database refused a row of the batch; writing its requests apart");
            self.split(store, local).await;
            return;
        }
        tracing::error!(rows = self.rows.len(), requests, %error,
            "enqueue batch failed; nothing in it was stored");
        answer_failed(std::mem::take(&mut self.inserters), error);
    }

    /// Writes the requests of a refused batch again in halves, recursively: halves that
    /// commit are answered, halves refused again are halved until the refused request
    /// stands alone and gets its own error. With one bad request among `n`, that is about
    /// `2 log2 n` statements instead of `n`.
    async fn split(&mut self, store: &dyn Store, local: Option<&dyn LocalDispatch>) {
        let mut starts = Vec::with_capacity(self.inserters.len() + 1);
        starts.push(0);
        for inserter in &self.inserters {
            starts.push(starts[starts.len() - 1] + inserter.rows);
        }
        let mut waiting: Vec<Option<Inserter>> = self.inserters.drain(..).map(Some).collect();
        let n = waiting.len();
        // The whole batch already failed: start from its halves.
        let mut groups = vec![(n / 2, n), (0, n / 2)];
        while let Some((a, b)) = groups.pop() {
            let rows = &self.rows[starts[a]..starts[b]];
            match store.insert(rows).await {
                Err(error) if b - a > 1 && matches!(error, Error::Rejected { .. }) => {
                    let mid = a + (b - a) / 2;
                    groups.push((mid, b));
                    groups.push((a, mid));
                }
                Ok(()) => {
                    if let Some(d) = local {
                        d.committed(None, rows);
                    }
                    for inserter in waiting[a..b].iter_mut().filter_map(Option::take) {
                        inserter.answer(Ok(()));
                    }
                }
                Err(error) => {
                    if matches!(error, Error::Rejected { .. }) {
                        tracing::warn!(rows = rows.len(), %error,
                            "the database refused a request's tasks; the rest of its batch is stored");
                    } else {
                        tracing::error!(rows = rows.len(), requests = b - a, %error,
                            "enqueue failed while writing a refused batch apart");
                    }
                    let group = waiting[a..b].iter_mut().filter_map(Option::take).collect();
                    answer_failed(group, error);
                }
            }
        }
    }
}

/// Answers the requests of a failed write: a lone request gets the error itself, several
/// share it.
fn answer_failed(mut inserters: Vec<Inserter>, error: Error) {
    if inserters.len() == 1 {
        if let Some(inserter) = inserters.pop() {
            inserter.answer(Err(error));
        }
        return;
    }
    let shared = BatchError(Arc::new(error));
    for inserter in inserters {
        inserter.answer(Err(Error::store("enqueue", shared.clone())));
    }
}

/// Tells each completer whether its fence still held the row.
fn answer_completions(
    result: Result<Vec<TaskId>>,
    fences: Vec<Fence>,
    completers: Vec<oneshot::Sender<Result<bool>>>,
) {
    match result {
        Ok(applied) => {
            let applied: HashSet<TaskId> = applied.into_iter().collect();
            for (fence, done) in fences.into_iter().zip(completers) {
                let _ = done.send(Ok(applied.contains(&fence.id)));
            }
        }
        Err(error) => {
            let shared = BatchError(Arc::new(error));
            for done in completers {
                let _ = done.send(Err(Error::store("complete", shared.clone())));
            }
        }
    }
}

/// Hands a claim's rows to its runtime and reports what it got.
fn finish_claim(
    runtime: &dyn LocalDispatch,
    request: Option<ClaimRequest>,
    claimed: Result<Vec<ClaimedTask>>,
) -> Result<ClaimReport> {
    let Some(request) = request else {
        return Ok(ClaimReport {
            claimed: 0,
            limit: 0,
        });
    };
    match claimed {
        Ok(rows) => {
            let n = rows.len();
            runtime.end_claim(&request, Some(rows));
            Ok(ClaimReport {
                claimed: n,
                limit: request.limit,
            })
        }
        Err(error) => {
            runtime.end_claim(&request, None);
            Err(error)
        }
    }
}
