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

/// Unix milliseconds of a duration, saturating.
pub(crate) fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
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
