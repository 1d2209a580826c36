//! One writer cycle: what it gathers from the queue, the one store write, and the answers.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::latency::WriteLatency;
use super::local::{Attached, ClaimReport, LocalRuntime, Reservation};
use super::queue::Ticket;
use super::split::{answer_failed, answer_stored, check_survivors, Inserter, SharedError};
use crate::error::{Error, Result};
use crate::ids::TaskId;
use crate::store::{
    ClaimRequest, ClaimedTask, Fence, NewTask, ResponseRecord, Settle, Store, WriteBatch,
    WriteOutcome,
};

/// Most rows the writer puts in one transaction.
pub(super) const MAX_BATCH_ROWS: usize = 4096;

/// Most bytes of rows (as counted by the write queue) the writer gathers into one
/// transaction: a cycle of large payloads stays far below the statement size limits of the
/// stores (SQLite's string limit, PostgreSQL's 1 GB message).
pub(super) const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Most outcomes the writer puts in one transaction.
const MAX_BATCH_OUTCOMES: usize = 1024;

/// How long a cycle holding only outcomes waits for an insert or a claim to share its
/// transaction. Outcomes are off the request path; a row stays `processing` (leased) this
/// much longer.
const OUTCOME_LINGER: Duration = Duration::from_millis(2);

/// Work for the writer task.
pub(super) enum Job {
    /// One request's rows, stored all or none, with its response record if it has one.
    Insert {
        rows: Vec<NewTask>,
        records: Vec<ResponseRecord>,
        done: oneshot::Sender<Result<Vec<TaskId>>>,
        /// Its room in the write queue, given back with the answer.
        ticket: Ticket,
    },
    Complete(Fence, oneshot::Sender<Result<bool>>),
    Settle(Vec<Settle>, oneshot::Sender<Result<Vec<TaskId>>>),
    Claim(Arc<dyn LocalRuntime>, oneshot::Sender<Result<ClaimReport>>),
    /// Outcomes that go into one cycle together (a shutdown's hand-back).
    Together(Vec<Job>),
}

/// How long a cycle may run before the writer hands it to a task of its own and goes on with
/// the next: a write stuck on a lock, or on a statement that hangs, must not hold up every
/// other write of the process (a shutdown's hand-back among them) for as long as it lasts.
/// Healthy cycles take milliseconds, so cycles normally run one after the other, each
/// gathering everything that arrived while the previous one committed.
const STALLED: Duration = Duration::from_millis(100);

/// Most stalled cycles left running beside the writer; past it the writer waits.
const MAX_STALLED: usize = 3;

/// The writer task: cycles of whatever is queued, until every handle is gone and the stalled
/// cycles are done.
pub(super) async fn write_loop(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    local: Attached,
    latency: Arc<WriteLatency>,
) {
    let mut stalled = tokio::task::JoinSet::new();
    while let Some(first) = rx.recv().await {
        let mut cycle = Gathered::default();
        cycle.push(first);
        cycle.drain(&mut rx);
        // Nobody's response waits on an outcome: outcomes wait (a moment at most) for an
        // insert or a claim to share their transaction instead of paying a commit — on
        // SQLite an fsync — of their own. At one request at a time this halves the
        // transactions; in a burn-down, a batch's completions ride with the next claim. On a
        // lane of outcomes alone, a few milliseconds of them go into one statement.
        let linger_until = tokio::time::Instant::now() + OUTCOME_LINGER;
        while cycle.only_outcomes() {
            match tokio::time::timeout_at(linger_until, rx.recv()).await {
                Ok(Some(job)) => {
                    cycle.push(job);
                    cycle.drain(&mut rx);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let local = local.get().and_then(Weak::upgrade);
        let store = Arc::clone(&store);
        let latency = Arc::clone(&latency);
        let mut run = Box::pin(async move { cycle.run(&*store, local, &latency).await });
        tokio::select! {
            () = &mut run => {}
            () = tokio::time::sleep(STALLED), if stalled.len() < MAX_STALLED => {
                tracing::debug!(after_ms = STALLED.as_millis() as u64,
                    "write cycle stalled; writing the next cycles beside it");
                stalled.spawn(run);
            }
        }
        while stalled.try_join_next().is_some() {}
    }
    while stalled.join_next().await.is_some() {}
}

/// Runs one store write, recording how long it took.
async fn timed<T>(latency: &WriteLatency, write: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = write.await;
    let now = Instant::now();
    latency.record(now - started, now);
    out
}

/// What one cycle gathered.
#[derive(Default)]
struct Gathered {
    rows: Vec<NewTask>,
    records: Vec<ResponseRecord>,
    bytes: usize,
    inserters: Vec<Inserter>,
    fences: Vec<Fence>,
    completers: Vec<oneshot::Sender<Result<bool>>>,
    settle: Vec<Settle>,
    settlers: Vec<(usize, oneshot::Sender<Result<Vec<TaskId>>>)>,
    claims: Vec<ClaimJob>,
}

/// A runtime asking for a claim, and where its answer goes.
type ClaimJob = (Arc<dyn LocalRuntime>, oneshot::Sender<Result<ClaimReport>>);

impl Gathered {
    /// Takes whatever else is queued, up to the batch bounds.
    fn drain(&mut self, rx: &mut mpsc::UnboundedReceiver<Job>) {
        while !self.full() {
            match rx.try_recv() {
                Ok(job) => self.push(job),
                Err(_) => break,
            }
        }
    }

    /// Whether the cycle holds as much as one transaction takes.
    fn full(&self) -> bool {
        self.rows.len() >= MAX_BATCH_ROWS
            || self.bytes >= MAX_BATCH_BYTES
            || self.outcomes() >= MAX_BATCH_OUTCOMES
    }

    fn outcomes(&self) -> usize {
        self.fences.len() + self.settle.len()
    }

    fn only_outcomes(&self) -> bool {
        self.inserters.is_empty() && self.claims.is_empty() && self.outcomes() < MAX_BATCH_OUTCOMES
    }

    fn push(&mut self, job: Job) {
        match job {
            Job::Insert {
                rows,
                records,
                done,
                ticket,
            } => {
                self.bytes += ticket.bytes();
                self.inserters
                    .push(Inserter::new(rows.len(), records.len(), done, ticket));
                self.rows.extend(rows);
                self.records.extend(records);
            }
            Job::Complete(fence, done) => {
                self.fences.push(fence);
                self.completers.push(done);
            }
            Job::Settle(outcomes, done) => {
                self.settlers.push((outcomes.len(), done));
                self.settle.extend(outcomes);
            }
            Job::Claim(runtime, done) => self.claims.push((runtime, done)),
            Job::Together(jobs) => {
                for job in jobs {
                    self.push(job);
                }
            }
        }
    }

    async fn run(
        mut self,
        store: &dyn Store,
        local: Option<Arc<dyn LocalRuntime>>,
        latency: &WriteLatency,
    ) {
        let reservation = match &local {
            Some(runtime) if !self.rows.is_empty() => runtime.reserve(&mut self.rows),
            _ => None,
        };
        // One claim rides on the transaction: the first runtime's (normally the only one).
        let mut claims = std::mem::take(&mut self.claims).into_iter();
        let first_claim = claims.next();
        let request = first_claim.as_ref().and_then(|(rt, _)| rt.begin_claim());
        let mut batch = WriteBatch::new()
            .insert(&self.rows)
            .responses(&self.records)
            .complete(&self.fences)
            .settle(&self.settle);
        if let Some(request) = &request {
            batch = batch.claim(request);
        }
        let outcome = if batch.is_empty() {
            WriteOutcome::empty()
        } else {
            timed(latency, store.write(batch)).await
        };
        self.answer_outcomes(outcome.completed, outcome.settled);
        if let Some((runtime, done)) = first_claim {
            let _ = done.send(finish_claim(&*runtime, request, outcome.claimed));
        }
        self.finish_insert(outcome.inserted, store, local.as_deref(), reservation)
            .await;
        // Another runtime sharing this writer: its claim goes on its own.
        for (runtime, done) in claims {
            let request = runtime.begin_claim();
            let claimed = match &request {
                Some(r) => {
                    timed(latency, store.write(WriteBatch::new().claim(r)))
                        .await
                        .claimed
                }
                None => Ok(Vec::new()),
            };
            let _ = done.send(finish_claim(&*runtime, request, claimed));
        }
    }

    /// Tells each completer whether its fence still held the row, and each settler which of
    /// its outcomes applied.
    fn answer_outcomes(&mut self, completed: Result<Vec<TaskId>>, settled: Result<Vec<TaskId>>) {
        let fences = std::mem::take(&mut self.fences);
        let completers = std::mem::take(&mut self.completers);
        match completed {
            Ok(applied) => {
                let applied: HashSet<TaskId> = applied.into_iter().collect();
                for (fence, done) in fences.into_iter().zip(completers) {
                    let _ = done.send(Ok(applied.contains(&fence.id)));
                }
            }
            Err(error) => {
                let shared = SharedError::new(error);
                for done in completers {
                    let _ = done.send(Err(shared.for_caller("complete")));
                }
            }
        }
        let settle = std::mem::take(&mut self.settle);
        let settlers = std::mem::take(&mut self.settlers);
        match settled {
            Ok(applied) => {
                let applied: HashSet<TaskId> = applied.into_iter().collect();
                let mut outcomes = settle.into_iter();
                for (n, done) in settlers {
                    let mine = outcomes
                        .by_ref()
                        .take(n)
                        .map(|s| s.fence.id)
                        .filter(|id| applied.contains(id))
                        .collect();
                    let _ = done.send(Ok(mine));
                }
            }
            Err(error) => {
                let shared = SharedError::new(error);
                for (_, done) in settlers {
                    let _ = done.send(Err(shared.for_caller("settle")));
                }
            }
        }
    }

    async fn finish_insert(
        &mut self,
        result: Result<Vec<TaskId>>,
        store: &dyn Store,
        local: Option<&dyn LocalRuntime>,
        reservation: Option<Reservation>,
    ) {
        if self.inserters.is_empty() {
            return;
        }
        let result = result.and_then(|survivors| {
            check_survivors(&self.rows, &survivors)?;
            Ok(survivors)
        });
        let error = match result {
            Ok(survivors) => {
                tracing::trace!(
                    rows = self.rows.len(),
                    requests = self.inserters.len(),
                    "batch committed"
                );
                if let Some(runtime) = local {
                    // A row another task's unique key kept out was not stored: it must not
                    // start, and the capacity reserved for it goes back.
                    for (row, survivor) in self.rows.iter_mut().zip(&survivors) {
                        if row.id != *survivor {
                            row.claimed_by = None;
                        }
                    }
                    runtime.inserted(reservation, &self.rows, true);
                }
                answer_stored(self.inserters.drain(..), &survivors);
                return;
            }
            Err(error) => error,
        };
        if let Some(runtime) = local {
            // Rows written again below go in as `pending`, found by the runtime's claim.
            if let Some(reservation) = &reservation {
                for (i, _) in &reservation.slots {
                    self.rows[*i].claimed_by = None;
                }
            }
            runtime.inserted(reservation, &[], false);
        }
        let requests = self.inserters.len();
        if requests > 1 && matches!(error, Error::Rejected { .. }) {
            tracing::debug!(rows = self.rows.len(), requests, %error,
                "the database refused a row of the batch; writing its requests apart");
            let inserters = std::mem::take(&mut self.inserters);
            super::split::write_apart(store, local, &self.rows, &self.records, inserters).await;
            return;
        }
        tracing::error!(rows = self.rows.len(), requests, %error,
            "enqueue batch failed; nothing in it was stored");
        answer_failed(std::mem::take(&mut self.inserters), error);
    }
}

/// Hands a claim's rows to its runtime and reports what it got.
fn finish_claim(
    runtime: &dyn LocalRuntime,
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
            runtime.claimed(&request, Some(rows));
            Ok(ClaimReport {
                claimed: n,
                limit: request.limit,
            })
        }
        Err(error) => {
            runtime.claimed(&request, None);
            Err(error)
        }
    }
}
