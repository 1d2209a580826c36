//! A writer cycle in one transaction, and its answer part by part: when one part fails the
//! transaction, the parts are written again one by one so each gets the answer it would have
//! had alone.

use std::future::Future;

use durable_core::store::{WriteBatch, WriteOutcome};

use super::SqliteStore;
use crate::error::Error;

/// How a combined write failed.
#[derive(Debug)]
pub(super) enum WriteFailure {
    /// Around the parts (`BEGIN`, `COMMIT`, the connection): nothing was written and every
    /// part fails with this error.
    Whole(Error),
    /// In one part: the transaction was rolled back; the parts are redone one by one so
    /// each gets the answer it would have had alone.
    Part(Error),
}

/// What a combined write returns when it commits: completed ids (or why they cannot be
/// told: the completions are committed either way) and claimed rows.
pub(super) type Combined = (
    durable_core::Result<Vec<durable_core::TaskId>>,
    Vec<durable_core::store::ClaimedTask>,
);

/// Runs a combined write transaction in its own task (cancel safety, as [`detached`]) and
/// turns its result into the per-part [`WriteOutcome`](durable_core::store::WriteOutcome).
pub(super) async fn combined_write<F>(
    store: &SqliteStore,
    batch: WriteBatch<'_>,
    transaction: F,
) -> WriteOutcome
where
    F: Future<Output = std::result::Result<Combined, WriteFailure>> + Send + 'static,
{
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
        Ok((completed, claimed)) => {
            // Rows without unique keys (the others are written apart): all stored.
            let inserted = batch.insert.iter().map(|t| t.id).collect();
            return WriteOutcome::empty()
                .with_inserted(Ok(inserted))
                .with_completed(completed)
                .with_claimed(Ok(claimed));
        }
        Err(WriteFailure::Part(error)) if parts > 1 => {
            tracing::debug!(%error, "combined write failed in one part; writing the parts one by one");
            return store.write_parts(batch).await;
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
    let inserted = part(has[0], "insert").map(|()| Vec::new());
    let completed = part(has[1], "complete").map(|()| Vec::new());
    let claimed = part(has[2], "claim").map(|()| Vec::new());
    WriteOutcome::empty()
        .with_inserted(inserted)
        .with_completed(completed)
        .with_claimed(claimed)
}
