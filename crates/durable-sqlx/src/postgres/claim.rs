//! Claiming and completing on a connection: the one-statement claim, the per-queue capped claim.

use durable_core::store::{ClaimRequest, ClaimedTask};
use durable_core::TaskId;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::rows::claimed_from_row;
use super::{ms, sql};
use crate::error::{Error, Result};

/// Claims per `request` inside the caller's transaction: the capped queues first, then the
/// rest.
pub(super) async fn claim_on(
    conn: &mut PgConnection,
    request: &ClaimRequest,
) -> Result<Vec<ClaimedTask>> {
    if request.capped.is_empty() {
        return claim_some(conn, request, request.limit, None, &[]).await;
    }
    let mut remaining = request.limit;
    let mut claimed = Vec::new();
    for (queue, cap) in &request.capped {
        let n = (*cap).min(remaining);
        if n == 0 {
            continue;
        }
        let rows = claim_some(conn, request, n, Some(queue), &[]).await?;
        remaining -= rows.len().min(remaining);
        claimed.extend(rows);
    }
    if remaining > 0 {
        let excluded: Vec<String> = request.capped.iter().map(|(q, _)| q.clone()).collect();
        let rows = claim_some(conn, request, remaining, None, &excluded).await?;
        claimed.extend(rows);
    }
    Ok(claimed)
}

/// Completes the fenced attempts (as [`fence_columns`]) on `conn`.
pub(super) async fn complete_on(
    conn: &mut PgConnection,
    (ids, owners, attempts): (Vec<Uuid>, Vec<Uuid>, Vec<i32>),
) -> Result<Vec<TaskId>> {
    let done: Vec<Uuid> = sqlx::query_scalar(sql::COMPLETE)
        .bind(ids)
        .bind(owners)
        .bind(attempts)
        .fetch_all(conn)
        .await
        .map_err(Error::db("complete"))?;
    Ok(done.into_iter().map(TaskId::from_uuid).collect())
}

/// One claim statement on a transaction: rows of `queue` (`Some`), of every queue but
/// `excluded` (`None`), at most `n`.
pub(super) async fn claim_some(
    conn: &mut PgConnection,
    request: &ClaimRequest,
    n: usize,
    queue: Option<&str>,
    excluded: &[String],
) -> Result<Vec<ClaimedTask>> {
    if request.names.is_empty() {
        return Ok(Vec::new());
    }
    let owner = *request.owner.as_uuid();
    let lease = ms(request.lease);
    let limit = i64::try_from(n).unwrap_or(i64::MAX);
    let names: &[String] = &request.names;
    let query = match queue {
        Some(queue) => sqlx::query(sql::CLAIM_QUEUE)
            .bind(owner)
            .bind(lease)
            .bind(limit)
            .bind(names)
            .bind(queue.to_owned()),
        None if excluded.is_empty() => sqlx::query(sql::CLAIM_ANY)
            .bind(owner)
            .bind(lease)
            .bind(limit)
            .bind(names),
        None => sqlx::query(sql::CLAIM_OTHERS)
            .bind(owner)
            .bind(lease)
            .bind(limit)
            .bind(names)
            .bind(excluded.to_vec()),
    };
    let rows = query
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::db("claim"))?;
    // The statement has committed (or will with its transaction): a row that cannot be read
    // must not fail the claim of the others. In a UTF8 database (PostgreSQL checks text on
    // input) no single row can be unreadable; what can be is every row, for a binary that
    // does not know the table's column types (a downgrade, a migration it predates). So the
    // row is not failed — another binary can run it — but left to its lease, which expires
    // and hands it back (a last attempt uncounted: it never started).
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        match claimed_from_row(row, request.owner) {
            Ok(task) => claimed.push(task),
            Err(error) => tracing::error!(%error, task_id = ?row.try_get::<Uuid, _>("id").ok(),
                "claimed a task row this version cannot read; leaving it until its lease expires"),
        }
    }
    Ok(claimed)
}
