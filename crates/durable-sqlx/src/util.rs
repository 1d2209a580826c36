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
pub(crate) fn chunks(
    tasks: &[durable_core::store::NewTask],
) -> Vec<&[durable_core::store::NewTask]> {
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

/// Folds `(state, count)` rows into [`StateCounts`](durable_core::store::StateCounts).
pub(crate) fn state_counts(
    rows: impl IntoIterator<Item = (String, i64)>,
) -> Result<durable_core::store::StateCounts> {
    let mut counts = durable_core::store::StateCounts::default();
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
    use durable_core::store::NewTask;

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
