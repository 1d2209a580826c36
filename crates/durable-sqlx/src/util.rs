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
