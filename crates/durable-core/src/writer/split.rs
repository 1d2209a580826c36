//! Answering inserts, and writing a refused batch apart.
//!
//! A batch whose insert the database refuses because of a row ([`Error::Rejected`]: a
//! constraint, a trigger, a value it cannot hold) is written again in halves, recursively,
//! so that every request is answered as if it had been written alone: the requests whose
//! rows are fine are stored, only the one with the bad row fails. Whole-database failures
//! (connection lost, timeout) fail the batch at once; splitting would only repeat them.

use std::fmt;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::local::LocalRuntime;
use super::queue::Ticket;
use crate::error::{Error, Result};
use crate::ids::TaskId;
use crate::store::{NewTask, ResponseRecord, Store, WriteBatch};

/// One error reported to every caller of a failed write.
#[derive(Debug, Clone)]
pub(super) struct SharedError(Arc<Error>);

impl SharedError {
    pub(super) fn new(error: Error) -> Self {
        Self(Arc::new(error))
    }

    /// The error one caller of the failed write gets: the original's kind and operation
    /// with its source, so the message names the operation once ("during insert: disk I/O
    /// error", not "during enqueue: task store error during insert: .."). Errors without a
    /// source are wrapped as a store error of `operation`.
    pub(super) fn for_caller(&self, operation: &'static str) -> Error {
        match &*self.0 {
            Error::Store { operation, .. } => Error::Store {
                operation,
                source: Box::new(SourceOf(Arc::clone(&self.0))),
            },
            Error::Rejected { operation, .. } => Error::Rejected {
                operation,
                source: Box::new(SourceOf(Arc::clone(&self.0))),
            },
            _ => Error::store(operation, self.clone()),
        }
    }
}

/// The source of a shared [`Error::Store`] or [`Error::Rejected`], shown as itself.
#[derive(Debug)]
struct SourceOf(Arc<Error>);

impl SourceOf {
    fn inner(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

impl fmt::Display for SourceOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner() {
            Some(source) => fmt::Display::fmt(source, f),
            None => fmt::Display::fmt(&self.0, f),
        }
    }
}

impl std::error::Error for SourceOf {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner().and_then(std::error::Error::source)
    }
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

/// Inserts rows on their own (a batch over the cycle's bounds, or a refused batch written
/// apart).
pub(super) async fn insert_on(
    store: &dyn Store,
    rows: &[NewTask],
    records: &[ResponseRecord],
) -> Result<Vec<TaskId>> {
    let survivors = store
        .write(WriteBatch::new().insert(rows).responses(records))
        .await
        .inserted?;
    check_survivors(rows, &survivors)?;
    Ok(survivors)
}

/// A store must answer an insert with one id per row: anything else is a bug of the store,
/// reported rather than handed to callers as the wrong ids.
pub(super) fn check_survivors(rows: &[NewTask], survivors: &[TaskId]) -> Result<()> {
    if survivors.len() == rows.len() {
        return Ok(());
    }
    Err(Error::store(
        "enqueue",
        format!(
            "the store answered an insert of {} rows with {} ids",
            rows.len(),
            survivors.len()
        ),
    ))
}

/// Answers each request with its own rows' surviving ids (`survivors` holds one per row of
/// the requests, in order).
pub(super) fn answer_stored(inserters: impl IntoIterator<Item = Inserter>, survivors: &[TaskId]) {
    let mut at = 0;
    for inserter in inserters {
        let end = (at + inserter.rows).min(survivors.len());
        let mine = survivors[at..end].to_vec();
        at = end;
        inserter.answer(Ok(mine));
    }
}

/// One request of a cycle: how many of the cycle's rows and response records are its own
/// (they are contiguous, in request order) and where its answer goes.
pub(super) struct Inserter {
    rows: usize,
    records: usize,
    done: oneshot::Sender<Result<Vec<TaskId>>>,
    ticket: Ticket,
}

impl Inserter {
    pub(super) fn new(
        rows: usize,
        records: usize,
        done: oneshot::Sender<Result<Vec<TaskId>>>,
        ticket: Ticket,
    ) -> Self {
        Self {
            rows,
            records,
            done,
            ticket,
        }
    }

    pub(super) fn answer(self, result: Result<Vec<TaskId>>) {
        // Room first: whoever reads the answer finds the queue without these rows.
        drop(self.ticket);
        // A dropped waiter only means nobody awaits the answer any more.
        let _ = self.done.send(result);
    }
}

/// Writes the requests of a refused batch again in halves, recursively: halves that commit
/// are answered, halves refused again are halved until the refused request stands alone and
/// gets its own error. With one bad request among `n`, that is about `2 log2 n` statements
/// instead of `n`. A request's response record stays with its rows.
pub(super) async fn write_apart(
    store: &dyn Store,
    local: Option<&dyn LocalRuntime>,
    rows: &[NewTask],
    records: &[ResponseRecord],
    inserters: Vec<Inserter>,
) {
    let mut starts = Vec::with_capacity(inserters.len() + 1);
    let mut record_starts = Vec::with_capacity(inserters.len() + 1);
    starts.push(0);
    record_starts.push(0);
    for inserter in &inserters {
        starts.push(starts[starts.len() - 1] + inserter.rows);
        record_starts.push(record_starts[record_starts.len() - 1] + inserter.records);
    }
    let mut waiting: Vec<Option<Inserter>> = inserters.into_iter().map(Some).collect();
    let n = waiting.len();
    // The whole batch already failed: start from its halves.
    let mut groups = vec![(n / 2, n), (0, n / 2)];
    while let Some((a, b)) = groups.pop() {
        let group_rows = &rows[starts[a]..starts[b]];
        let group_records = &records[record_starts[a]..record_starts[b]];
        match insert_on(store, group_rows, group_records).await {
            Err(error) if b - a > 1 && matches!(error, Error::Rejected { .. }) => {
                let mid = a + (b - a) / 2;
                groups.push((mid, b));
                groups.push((a, mid));
            }
            Ok(survivors) => {
                if let Some(runtime) = local {
                    runtime.inserted(None, group_rows, true);
                }
                answer_stored(
                    waiting[a..b].iter_mut().filter_map(Option::take),
                    &survivors,
                );
            }
            Err(error) => {
                if matches!(error, Error::Rejected { .. }) {
                    tracing::warn!(rows = group_rows.len(), %error,
                        "the database refused a request's tasks; the rest of its batch is stored");
                } else {
                    tracing::error!(rows = group_rows.len(), requests = b - a, %error,
                        "enqueue failed while writing a refused batch apart");
                }
                let group = waiting[a..b].iter_mut().filter_map(Option::take).collect();
                answer_failed(group, error);
            }
        }
    }
}

/// Answers the requests of a failed write: a lone request gets the error itself, several
/// share it.
pub(super) fn answer_failed(mut inserters: Vec<Inserter>, error: Error) {
    if inserters.len() == 1 {
        if let Some(inserter) = inserters.pop() {
            inserter.answer(Err(error));
        }
        return;
    }
    let shared = SharedError::new(error);
    for inserter in inserters {
        inserter.answer(Err(shared.for_caller("enqueue")));
    }
}

#[cfg(test)]
mod tests {
    use super::SharedError;
    use crate::error::Error;

    /// A write failure shared by a batch's callers reads as the original failure to each
    /// of them: same kind, one operation, not "during enqueue: during insert: ...".
    #[test]
    fn a_shared_failure_keeps_its_kind_and_reads_once() {
        let shared = SharedError::new(Error::store("insert", "disk I/O error"));
        let answer = shared.for_caller("enqueue");
        assert_eq!(
            answer.to_string(),
            "task store error during insert: disk I/O error"
        );
        assert!(answer.is_transient());

        let shared = SharedError::new(Error::rejected("insert", "CHECK constraint failed"));
        let answer = shared.for_caller("enqueue");
        assert!(
            matches!(
                answer,
                Error::Rejected {
                    operation: "insert",
                    ..
                }
            ),
            "{answer}"
        );
        assert_eq!(
            answer.to_string(),
            "the database refused the task during insert: CHECK constraint failed"
        );

        let shared = SharedError::new(Error::ShuttingDown);
        let answer = shared.for_caller("enqueue");
        assert_eq!(
            answer.to_string(),
            "task store error during enqueue: the durable runtime is shutting down"
        );
    }
}
