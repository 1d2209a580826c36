//! Helpers shared by the backends.

use std::future::Future;

use crate::error::{Error, Result};

/// Runs a database future in its own task and awaits it, so dropping the caller cannot
/// cancel it half-way (a `begin()` dropped mid-flight can return a connection to the pool
/// still inside a transaction: sqlx issue 4393).
pub(crate) async fn detached<T, F>(operation: &'static str, future: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    tokio::spawn(future).await.map_err(|e| Error::Join {
        operation,
        reason: e.to_string(),
    })?
}

/// Most rows one insert statement carries. Neither store binds a parameter per row (SQLite
/// reads one JSON array, PostgreSQL one array per column), so this is about statement
/// size and latency, not the bound-parameter limits.
const CHUNK_ROWS: usize = 10_000;

/// Most bytes of payloads and names one insert statement carries, far below SQLite's
/// string limit (1,000,000,000 bytes by default) and PostgreSQL's 1 GB message.
const CHUNK_BYTES: usize = 32 * 1024 * 1024;

/// Splits rows into the statements of one insert: at most [`CHUNK_ROWS`] rows and about
/// [`CHUNK_BYTES`] bytes each (a single row larger than that goes alone).
pub(crate) fn chunks(tasks: &[durable_core::NewTask]) -> Vec<&[durable_core::NewTask]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, t) in tasks.iter().enumerate() {
        let size = t.payload.len() + t.name.len() + t.queue.len();
        if i > start && (i - start == CHUNK_ROWS || bytes + size > CHUNK_BYTES) {
            chunks.push(&tasks[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < tasks.len() {
        chunks.push(&tasks[start..]);
    }
    chunks
}

/// Unix milliseconds of a duration, saturating.
pub(crate) fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The longest delay a store schedules: 100 years. Longer ones (a backoff with a huge
/// maximum) are capped, so "later" never overflows into "now" or into an unreadable time.
pub(crate) const MAX_DELAY_MS: i64 = 100 * 365 * 24 * 3600 * 1000;

/// Milliseconds of a delay, capped at [`MAX_DELAY_MS`].
pub(crate) fn delay_ms(d: std::time::Duration) -> i64 {
    millis(d).min(MAX_DELAY_MS)
}

/// Folds `(state, count)` rows into [`StateCounts`](durable_core::StateCounts).
pub(crate) fn state_counts(
    rows: impl IntoIterator<Item = (String, i64)>,
) -> Result<durable_core::StateCounts> {
    let mut counts = durable_core::StateCounts::default();
    for (state, n) in rows {
        let state: durable_core::TaskState =
            state
                .parse()
                .map_err(|e: durable_core::ParseTaskStateError| Error::CorruptRow {
                    id: "*".into(),
                    reason: e.to_string(),
                })?;
        counts.add(state, u64::try_from(n).unwrap_or(0));
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_core::NewTask;

    #[test]
    fn chunks_bound_rows_and_bytes() {
        let rows: Vec<NewTask> = (0..25_000).map(|_| NewTask::new("t", "{}")).collect();
        let sizes: Vec<usize> = chunks(&rows).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [10_000, 10_000, 5_000]);
        let big = "x".repeat(CHUNK_BYTES / 2);
        let rows: Vec<NewTask> = (0..5).map(|_| NewTask::new("t", big.clone())).collect();
        let sizes: Vec<usize> = chunks(&rows).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [1, 1, 1, 1, 1]);
        let huge = NewTask::new("t", "x".repeat(CHUNK_BYTES + 1));
        assert_eq!(chunks(std::slice::from_ref(&huge)).len(), 1);
        assert!(chunks(&[]).is_empty());
    }
}

/// How a combined write ([`Store::write`](durable_core::Store::write)) failed.
#[derive(Debug)]
pub(crate) enum WriteFailure {
    /// Around the parts (`BEGIN`, `COMMIT`, the connection): nothing was written and every
    /// part fails with this error.
    Whole(Error),
    /// In one part: the transaction was rolled back; the parts are redone one by one so
    /// each gets the answer it would have had alone.
    Part(Error),
}

/// What a combined write returns when it commits: completed ids (or why they cannot be
/// told: the completions are committed either way) and claimed rows.
pub(crate) type Combined = (
    durable_core::Result<Vec<durable_core::TaskId>>,
    Vec<durable_core::ClaimedTask>,
);

/// Runs a combined write transaction in its own task (cancel safety, as [`detached`]) and
/// turns its result into the per-part [`WriteOutcome`](durable_core::WriteOutcome).
pub(crate) async fn combined_write<S, F>(
    store: &S,
    batch: durable_core::WriteBatch<'_>,
    transaction: F,
) -> durable_core::WriteOutcome
where
    S: durable_core::Store,
    F: Future<Output = std::result::Result<Combined, WriteFailure>> + Send + 'static,
{
    use durable_core::WriteOutcome;
    let result = match tokio::spawn(transaction).await {
        Ok(result) => result,
        Err(e) => Err(WriteFailure::Whole(Error::Join {
            operation: "write",
            reason: e.to_string(),
        })),
    };
    let has = [
        !batch.insert.is_empty(),
        !batch.complete.is_empty(),
        batch.claim.is_some_and(|c| c.limit > 0),
    ];
    let parts = has.iter().filter(|p| **p).count();
    let error = match result {
        Ok((completed, claimed)) => return WriteOutcome::new(Ok(()), completed, Ok(claimed)),
        Err(WriteFailure::Part(error)) if parts > 1 => {
            tracing::debug!(%error, "combined write failed in one part; writing the parts one by one");
            return durable_core::write_separately(store, batch).await;
        }
        Err(WriteFailure::Part(error) | WriteFailure::Whole(error)) => error,
    };
    // A lone part keeps its error as its own method would report it; several share it.
    let (mut single, shared) = if parts == 1 {
        (Some(durable_core::Error::from(error)), None)
    } else {
        (None, Some(std::sync::Arc::new(error)))
    };
    let mut part = |present: bool, operation: &'static str| -> durable_core::Result<()> {
        if !present {
            return Ok(());
        }
        Err(match (single.take(), &shared) {
            (Some(error), _) => error,
            (None, Some(shared)) => {
                durable_core::Error::store(operation, std::sync::Arc::clone(shared))
            }
            (None, None) => durable_core::Error::store(operation, "write failed"),
        })
    };
    let inserted = part(has[0], "insert");
    let completed = part(has[1], "complete").map(|()| Vec::new());
    let claimed = part(has[2], "claim").map(|()| Vec::new());
    WriteOutcome::new(inserted, completed, claimed)
}
