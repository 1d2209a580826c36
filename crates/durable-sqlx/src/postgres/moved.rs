//! Statements refused for a row another transaction moved to the other partition.
//!
//! A statement that finishes a task moves its row from `durable_tasks_live` to
//! `durable_tasks_history` (migration 11). At `READ COMMITTED`, a statement that then tries
//! to lock or update that row — found in its snapshot, moved by a transaction that committed
//! since — is refused with SQLSTATE `40001` ("tuple to be locked was already moved to another
//! partition due to concurrent update"), where an update within one table would have been
//! followed to the row's new version. The refused statement changed nothing, and its next run
//! takes a new snapshot in which the row has moved: every statement here is fenced (by the
//! attempt, by what the operator saw, by its state), so running it again gives the answer it
//! would have given had it come a moment later.

use std::future::Future;

/// Times a refused statement is run again before its error is returned.
pub(super) const MOVED_RETRIES: u32 = 3;

/// Whether `error` is PostgreSQL's refusal to lock a row moved to another partition since
/// the statement's snapshot.
pub(super) fn row_moved(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(sqlx::error::DatabaseError::code)
        .is_some_and(|code| code == "40001")
}

/// Runs `statement`, again while it is refused for a moved row (at most [`MOVED_RETRIES`]
/// more times). Only for a statement that is its own transaction: inside a transaction the
/// refusal has aborted it.
pub(super) async fn again_if_moved<T, F, Fut>(mut statement: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut tries = 0;
    loop {
        match statement().await {
            Err(error) if row_moved(&error) && tries < MOVED_RETRIES => tries += 1,
            result => return result,
        }
    }
}
