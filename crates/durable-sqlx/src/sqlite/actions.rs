//! The operator's actions on SQLite: retry, delete and requeue, one task (fenced by what the
//! operator saw) or in bulk. Each runs in one write transaction: writes are serialized, so
//! what the transaction reads first still holds when it writes.

use durable_core::store::{ActionOutcome, RetryFailed, Seen, StuckQuery};
use durable_core::{TaskId, TaskState};
use sqlx::SqliteConnection;

use crate::admin::Found;
use crate::error::{Error, Result};

/// ?1 id. The row's state, attempts, and the unique key it would hold as `pending`.
const TARGET: &str = "
SELECT state, attempts, CASE WHEN (unique_states & 1) <> 0 THEN unique_key END AS key
FROM durable_tasks WHERE id = ?1";

/// ?1 key, ?2 id. Another task holding the key, through the unique index.
const HOLDER: &str = concat!(
    "SELECT id FROM durable_tasks WHERE unique_key = ?1 AND id <> ?2 AND ",
    unique_live!(),
    " LIMIT 1"
);

/// ?1 id, ?2 now. Back to `pending`, due now, with one more attempt allowed if it used them
/// all; its cancellation request goes (a retried task is wanted again), its errors stay.
const RETRY: &str = "
UPDATE durable_tasks
SET state = 'pending', run_at = ?2, finished_at = NULL, lease_owner = NULL,
    lease_expires_at = NULL, attempt_started_at = NULL, cancel_requested_at = NULL,
    max_attempts = max(max_attempts, attempts + 1), updated_at = ?2
WHERE id = ?1";

/// ?1 name, ?2 queue (NULL: any), ?3 limit. `failed` rows, oldest failure first
/// (migration 9's index), with the key each would hold as `pending`.
const RETRY_CANDIDATES: &str = "
SELECT id, CASE WHEN (unique_states & 1) <> 0 THEN unique_key END AS key
FROM durable_tasks
WHERE state = 'failed' AND (?1 IS NULL OR name = ?1) AND (?2 IS NULL OR queue = ?2)
ORDER BY finished_at, id
LIMIT ?3";

/// ?1 id.
const DELETE: &str = "DELETE FROM durable_tasks WHERE id = ?1";

/// What a requeue sets: `pending` now (`cancelled` if its cancellation was requested). The
/// attempt is not counted: `attempts` keeps its number, so the next claim takes a new one and
/// the interrupted attempt's fence (id, owner, attempt) can never match again — even if the
/// same instance claims the task — and one more attempt is allowed. ?2 now.
macro_rules! requeue_set {
    () => {
        "UPDATE durable_tasks
SET state = CASE WHEN cancel_requested_at IS NULL THEN 'pending' ELSE 'cancelled' END,
    finished_at = CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE ?2 END,
    max_attempts = CASE WHEN cancel_requested_at IS NULL
        THEN min(max_attempts, 2147483646) + 1 ELSE max_attempts END,
    run_at = ?2, lease_owner = NULL, lease_expires_at = NULL, attempt_started_at = NULL,
    requeues = requeues + 1, updated_at = ?2
"
    };
}

/// ?1 id, ?2 now.
const REQUEUE: &str = concat!(requeue_set!(), "WHERE id = ?1 AND state = 'processing'");

/// ?1 running-since cutoff (NULL: lease expired instead), ?2 now, ?3 name (NULL: any),
/// ?4 limit. Stuck `processing` rows, longest running first.
const REQUEUE_STUCK: &str = concat!(
    requeue_set!(),
    "WHERE id IN (
    SELECT id FROM durable_tasks
    WHERE state = 'processing' AND (?3 IS NULL OR name = ?3)
      AND CASE WHEN ?1 IS NULL THEN lease_expires_at < ?2 ELSE started_at < ?1 END
    ORDER BY started_at, id
    LIMIT ?4)
RETURNING state"
);

/// The row as the transaction found it: state, attempts, key it would hold as `pending`.
async fn target(
    conn: &mut SqliteConnection,
    id: &str,
) -> Result<Option<(TaskState, u32, Option<String>)>> {
    let row: Option<(String, i64, Option<String>)> = sqlx::query_as(TARGET)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(Error::db("action"))?;
    row.map(|(state, attempts, key)| {
        let state = state.parse::<TaskState>().map_err(|e| Error::CorruptRow {
            id: id.to_owned(),
            reason: e.to_string(),
        })?;
        Ok((state, u32::try_from(attempts).unwrap_or(0), key))
    })
    .transpose()
}

/// The task holding `key`, other than `id`.
async fn holder(conn: &mut SqliteConnection, key: &str, id: &str) -> Result<Option<TaskId>> {
    let holder: Option<String> = sqlx::query_scalar(HOLDER)
        .bind(key)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(Error::db("retry"))?;
    holder.as_deref().map(super::rows::parse_id).transpose()
}

/// Whether the action may write the row: `None` if it is in a state `applies` accepts, as
/// `seen` (and, for a retry, its key is free); otherwise the outcome to return unchanged.
/// The transaction holds the write lock, so what this reads still holds for the write.
async fn check(
    conn: &mut SqliteConnection,
    id: &str,
    seen: Option<Seen>,
    applies: fn(TaskState) -> bool,
    needs_key: bool,
) -> Result<Option<ActionOutcome>> {
    let Some((state, attempts, key)) = target(conn, id).await? else {
        return Ok(Some(ActionOutcome::NotFound));
    };
    let holder = match key {
        Some(key) if needs_key => holder(conn, &key, id).await?,
        _ => None,
    };
    let found = Found {
        done: false,
        row: Some((state, attempts)),
        holder,
    };
    Ok(found.outcome(applies, seen))
}

/// [`AdminStore::retry`](durable_core::store::AdminStore::retry).
pub(super) async fn retry(
    conn: &mut SqliteConnection,
    id: TaskId,
    seen: Option<Seen>,
    now: i64,
) -> Result<ActionOutcome> {
    let id = id.to_string();
    let applies = |s| matches!(s, TaskState::Failed | TaskState::Cancelled);
    if let Some(outcome) = check(conn, &id, seen, applies, true).await? {
        return Ok(outcome);
    }
    sqlx::query(RETRY)
        .bind(&id)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(Error::db("retry"))?;
    Ok(ActionOutcome::Done)
}

/// [`AdminStore::delete`](durable_core::store::AdminStore::delete): its steps go by the
/// trigger of migration 4.
pub(super) async fn delete(
    conn: &mut SqliteConnection,
    id: TaskId,
    seen: Option<Seen>,
) -> Result<ActionOutcome> {
    let id = id.to_string();
    if let Some(outcome) = check(conn, &id, seen, |s| s != TaskState::Processing, false).await? {
        return Ok(outcome);
    }
    sqlx::query(DELETE)
        .bind(&id)
        .execute(&mut *conn)
        .await
        .map_err(Error::db("delete"))?;
    Ok(ActionOutcome::Done)
}

/// [`AdminStore::requeue`](durable_core::store::AdminStore::requeue).
pub(super) async fn requeue(
    conn: &mut SqliteConnection,
    id: TaskId,
    seen: Option<Seen>,
    now: i64,
) -> Result<ActionOutcome> {
    let id = id.to_string();
    if let Some(outcome) = check(conn, &id, seen, |s| s == TaskState::Processing, false).await? {
        return Ok(outcome);
    }
    sqlx::query(REQUEUE)
        .bind(&id)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(Error::db("requeue"))?;
    Ok(ActionOutcome::Done)
}

/// [`AdminStore::retry_failed`](durable_core::store::AdminStore::retry_failed): the
/// candidates, at most one per unique key, each retried unless its key is held.
pub(super) async fn retry_failed(
    conn: &mut SqliteConnection,
    which: &RetryFailed,
    now: i64,
) -> Result<u64> {
    let candidates: Vec<(String, Option<String>)> = sqlx::query_as(RETRY_CANDIDATES)
        .bind(which.name.as_deref())
        .bind(which.queue.as_deref())
        .bind(i64::from(which.limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::db("retry failed"))?;
    let mut keys = std::collections::HashSet::new();
    let mut retried = 0;
    for (id, key) in candidates {
        if let Some(key) = key {
            // One row per key: a second candidate with it would collide with the first.
            if !keys.insert(key.clone()) || holder(conn, &key, &id).await?.is_some() {
                continue;
            }
        }
        retried += sqlx::query(RETRY)
            .bind(&id)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(Error::db("retry failed"))?
            .rows_affected();
    }
    Ok(retried)
}

/// [`AdminStore::requeue_stuck`](durable_core::store::AdminStore::requeue_stuck); how many
/// rows were handed back, and how many of them went to `pending` (the others: `cancelled`).
pub(super) async fn requeue_stuck(
    conn: &mut SqliteConnection,
    which: &StuckQuery,
    now: i64,
) -> Result<(u64, u64)> {
    let cutoff = (!which.running_for.is_zero())
        .then(|| now.saturating_sub(crate::util::millis(which.running_for)));
    let states: Vec<String> = sqlx::query_scalar(REQUEUE_STUCK)
        .bind(cutoff)
        .bind(now)
        .bind(which.name.as_deref())
        .bind(i64::from(which.limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::db("requeue stuck"))?;
    let pending = states.iter().filter(|s| *s == "pending").count();
    Ok((states.len() as u64, pending as u64))
}
