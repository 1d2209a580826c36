//! The operator's actions on PostgreSQL: retry, delete and requeue, one task (fenced by what
//! the operator saw) or in bulk. Each is one statement; rows made due wake the instances
//! with a `NOTIFY`, as an insert does.

use durable_core::store::{ActionOutcome, RetryFailed, Seen, StuckQuery};
use durable_core::{TaskId, TaskState};
use sqlx::PgPool;
use uuid::Uuid;

use super::moved::{again_if_moved, row_moved};
use super::ms;
use crate::admin::{moved, seen_params, Found};
use crate::error::{Error, Result};

/// A task back to `pending`, due now, with one more attempt allowed if it used them all. Its
/// cancellation request goes (a retried task is wanted again), its error history stays. A
/// row in the history partition moves back to the live one: to lane 0 if it has a unique
/// key (whose index is there), else to the lane of the moment, not the one it ran in, which
/// may be about to be truncated.
macro_rules! retry_set {
    () => {
        concat!(
            "state = 'pending', archived = false, run_at = durable_now(), finished_at = NULL, lease_owner = NULL,
    lease_expires_at = NULL, attempt_started_at = NULL, cancel_requested_at = NULL,
    max_attempts = greatest(max_attempts, attempts + 1), updated_at = durable_now(),
    lane = CASE WHEN unique_key IS NULL THEN ",
            lane_now!(),
            " ELSE 0 END"
        )
    };
}

/// A `processing` task handed back: `pending` now (`cancelled` if its cancellation was
/// requested). The attempt is not counted: `attempts` keeps its number, so the next claim
/// takes a new one and the interrupted attempt's fence (id, owner, attempt) can never match
/// again — even if the same instance claims the task — and one more attempt is allowed.
macro_rules! requeue_set {
    () => {
        concat!(
            "state = CASE WHEN cancel_requested_at IS NULL THEN 'pending' ELSE 'cancelled' END,
    archived = ",
            archived_as!(
                "",
                "CASE WHEN cancel_requested_at IS NULL THEN 'pending' ELSE 'cancelled' END"
            ),
            ",
    finished_at = CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE durable_now() END,
    max_attempts = CASE WHEN cancel_requested_at IS NULL
        THEN least(max_attempts, 2147483646) + 1 ELSE max_attempts END,
    run_at = durable_now(), lease_owner = NULL, lease_expires_at = NULL,
    attempt_started_at = NULL, requeues = requeues + 1, updated_at = durable_now()"
        )
    };
}

/// Whether the row (unqualified columns) matches the operator's `Seen`, $2 state and $3
/// attempts (both NULL: any).
macro_rules! as_seen {
    () => {
        "($2::text IS NULL OR (state = $2::text AND attempts = $3::int8))"
    };
}

/// The row as found, and what the action did, as one result row (see [`Found`]). A CTE that
/// sends a `NOTIFY` is counted into `done` (`+ 0 * count`): one that nothing reads never runs.
macro_rules! found {
    ($done:literal, $holder:literal) => {
        concat!(
            "
SELECT ",
            $done,
            " AS done, (SELECT state FROM target) AS state,
    (SELECT attempts FROM target) AS attempts, ",
            $holder,
            " AS holder"
        )
    };
}

/// $1 id, $2/$3 seen. The task holding the key the row would take back as `pending`, through
/// the unique index; the retry changes nothing while there is one.
const RETRY: &str = concat!(
    "
WITH target AS (
    SELECT state, attempts, unique_key, unique_states FROM durable_tasks WHERE id = $1
), holder AS (
    SELECT id FROM durable_tasks
    WHERE unique_key = (SELECT unique_key FROM target WHERE (unique_states & 1) <> 0)
      AND id <> $1 AND ",
    unique_live!(),
    "
    LIMIT 1
), moved AS (
    UPDATE durable_tasks SET ",
    retry_set!(),
    "
    WHERE id = $1 AND state IN ('failed', 'cancelled') AND ",
    as_seen!(),
    " AND NOT EXISTS (SELECT 1 FROM holder)
    RETURNING id
), woke AS (
    SELECT pg_notify(",
    channel!(),
    ", '') FROM moved
)",
    found!(
        "(SELECT count(*) FROM moved) + 0 * (SELECT count(*) FROM woke)",
        "(SELECT id FROM holder)"
    )
);

/// $1 name, $2 queue (NULL: any), $3 limit. `failed` rows, oldest failure first (migration
/// 9's index), whose unique key no other live task holds; with the key they would hold as
/// `pending` (to keep one row per key).
const RETRY_CANDIDATES: &str = concat!(
    "
SELECT t.id, CASE WHEN (t.unique_states & 1) <> 0 THEN t.unique_key END AS key
FROM durable_tasks AS t
WHERE t.state = 'failed' AND ($1::text IS NULL OR t.name = $1) AND ($2::text IS NULL OR t.queue = $2)
  AND NOT (t.unique_key IS NOT NULL AND (t.unique_states & 1) <> 0 AND EXISTS (
      SELECT 1 FROM durable_tasks WHERE unique_key = t.unique_key AND id <> t.id AND ",
    unique_live!(),
    "))
ORDER BY t.finished_at, t.id
LIMIT $3"
);

/// $1 ids. Retries those still `failed` and whose key is still free; wakes the instances.
const RETRY_MANY: &str = concat!(
    "
WITH moved AS (
    UPDATE durable_tasks AS t SET ",
    retry_set!(),
    "
    WHERE t.id = ANY($1::uuid[]) AND t.state = 'failed'
      AND NOT (t.unique_key IS NOT NULL AND (t.unique_states & 1) <> 0 AND EXISTS (
          SELECT 1 FROM durable_tasks WHERE unique_key = t.unique_key AND id <> t.id AND ",
    unique_live!(),
    "))
    RETURNING t.id
), woke AS (
    SELECT pg_notify(",
    channel!(),
    ", '') FROM (SELECT 1 FROM moved LIMIT 1) AS one
)
SELECT (SELECT count(*) FROM moved) AS n, (SELECT count(*) FROM woke) AS woke"
);

/// $1 id, $2/$3 seen. Deletes a row that is not `processing`, and its steps.
const DELETE: &str = concat!(
    "
WITH target AS (
    SELECT state, attempts FROM durable_tasks WHERE id = $1
), gone AS (
    DELETE FROM durable_tasks WHERE id = $1 AND state <> 'processing' AND ",
    as_seen!(),
    "
    RETURNING id
), steps AS (
    DELETE FROM durable_steps WHERE task_id IN (SELECT id FROM gone)
)",
    found!("(SELECT count(*) FROM gone)", "NULL::uuid")
);

/// $1 id, $2/$3 seen. Hands a `processing` row back; wakes the instances.
const REQUEUE: &str = concat!(
    "
WITH target AS (
    SELECT state, attempts FROM durable_tasks WHERE id = $1
), moved AS (
    UPDATE durable_tasks SET ",
    requeue_set!(),
    "
    WHERE id = $1 AND state = 'processing' AND ",
    as_seen!(),
    "
    RETURNING state
), woke AS (
    SELECT pg_notify(",
    channel!(),
    ", '') FROM moved WHERE state = 'pending'
)",
    found!(
        "(SELECT count(*) FROM moved) + 0 * (SELECT count(*) FROM woke)",
        "NULL::uuid"
    )
);

/// $1 running for (ms; 0: lease expired instead), $2 name (NULL: any), $3 limit. Stuck
/// `processing` rows, longest running first, skipping rows a worker's write holds locked.
const REQUEUE_STUCK: &str = concat!(
    "
WITH stuck AS MATERIALIZED (
    SELECT id FROM durable_tasks_live
    WHERE state = 'processing' AND ($2::text IS NULL OR name = $2)
      AND CASE WHEN $1::int8 = 0 THEN lease_expires_at < durable_now()
               ELSE started_at < durable_now() - $1::int8 * interval '1 millisecond' END
    ORDER BY started_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE durable_tasks AS t SET ",
    requeue_set!(),
    "
    FROM stuck
    WHERE t.id = stuck.id AND t.state = 'processing'
    RETURNING t.state
), woke AS (
    SELECT pg_notify(",
    channel!(),
    ", '') FROM (SELECT 1 FROM moved WHERE state = 'pending' LIMIT 1) AS one
)
SELECT (SELECT count(*) FROM moved) AS n, (SELECT count(*) FROM woke) AS woke"
);

/// $1 id. The row's state and attempts now.
const CURRENT: &str = "SELECT state, attempts FROM durable_tasks WHERE id = $1";

/// How many times a retry runs again when a concurrent insert took the key between the
/// statement's look for a holder and its write (the unique index refused the write).
const KEY_ROUNDS: usize = crate::unique::MAX_ROUNDS;

/// Whether `error` is the unique index refusing a write: a concurrent insert took the key.
fn key_taken(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(sqlx::error::DatabaseError::code)
        .is_some_and(|code| code == "23505")
}

/// What an action statement returns: done, the row's state and attempts, the key holder.
type Raw = (i64, Option<String>, Option<i32>, Option<Uuid>);

/// Runs one action statement.
async fn run(
    pool: &PgPool,
    statement: &'static str,
    id: TaskId,
    seen: Option<Seen>,
) -> std::result::Result<Raw, sqlx::Error> {
    let (state, attempts) = seen_params(seen);
    sqlx::query_as(statement)
        .bind(id.as_uuid())
        .bind(state)
        .bind(attempts)
        .fetch_one(pool)
        .await
}

fn decode_row(
    id: TaskId,
    state: Option<String>,
    attempts: Option<i32>,
) -> Result<Option<(TaskState, u32)>> {
    let Some(state) = state else { return Ok(None) };
    let state = state.parse::<TaskState>().map_err(|e| Error::CorruptRow {
        id: id.to_string(),
        reason: e.to_string(),
    })?;
    Ok(Some((
        state,
        u32::try_from(attempts.unwrap_or(0)).unwrap_or(0),
    )))
}

/// The outcome of one action, reading the row again if it moved under the statement.
async fn act(
    pool: &PgPool,
    operation: &'static str,
    statement: &'static str,
    id: TaskId,
    seen: Option<Seen>,
    applies: fn(TaskState) -> bool,
) -> Result<ActionOutcome> {
    let mut rounds = 0;
    let (done, state, attempts, holder) = loop {
        match run(pool, statement, id, seen).await {
            Ok(raw) => break raw,
            Err(e) if (key_taken(&e) || row_moved(&e)) && rounds < KEY_ROUNDS => rounds += 1,
            Err(e) => return Err(Error::db(operation)(e)),
        }
    };
    let found = Found {
        done: done > 0,
        row: decode_row(id, state, attempts)?,
        holder: holder.map(TaskId::from_uuid),
    };
    if let Some(outcome) = found.outcome(applies, seen) {
        return Ok(outcome);
    }
    let now: Option<(String, i32)> = sqlx::query_as(CURRENT)
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await
        .map_err(Error::db(operation))?;
    let (state, attempts) = now.map_or((None, None), |(s, a)| (Some(s), Some(a)));
    Ok(moved(decode_row(id, state, attempts)?))
}

/// [`AdminStore::retry`](durable_core::store::AdminStore::retry).
pub(super) async fn retry(pool: &PgPool, id: TaskId, seen: Option<Seen>) -> Result<ActionOutcome> {
    act(pool, "retry", RETRY, id, seen, |s| {
        matches!(s, TaskState::Failed | TaskState::Cancelled)
    })
    .await
}

/// [`AdminStore::delete`](durable_core::store::AdminStore::delete).
pub(super) async fn delete(pool: &PgPool, id: TaskId, seen: Option<Seen>) -> Result<ActionOutcome> {
    act(pool, "delete", DELETE, id, seen, |s| {
        s != TaskState::Processing
    })
    .await
}

/// [`AdminStore::requeue`](durable_core::store::AdminStore::requeue).
pub(super) async fn requeue(
    pool: &PgPool,
    id: TaskId,
    seen: Option<Seen>,
) -> Result<ActionOutcome> {
    act(pool, "requeue", REQUEUE, id, seen, |s| {
        s == TaskState::Processing
    })
    .await
}

/// [`AdminStore::retry_failed`](durable_core::store::AdminStore::retry_failed): the
/// candidates, at most one per unique key, then one statement for them all.
pub(super) async fn retry_failed(pool: &PgPool, which: &RetryFailed) -> Result<u64> {
    let mut rounds = 0;
    loop {
        let candidates: Vec<(Uuid, Option<String>)> = sqlx::query_as(RETRY_CANDIDATES)
            .bind(which.name.as_deref())
            .bind(which.queue.as_deref())
            .bind(i64::from(which.limit))
            .fetch_all(pool)
            .await
            .map_err(Error::db("retry failed"))?;
        let ids = crate::admin::one_per_key(candidates);
        if ids.is_empty() {
            return Ok(0);
        }
        match sqlx::query_scalar::<_, i64>(RETRY_MANY)
            .bind(ids)
            .fetch_one(pool)
            .await
        {
            Ok(n) => return Ok(u64::try_from(n).unwrap_or(0)),
            Err(e) if (key_taken(&e) || row_moved(&e)) && rounds < KEY_ROUNDS => rounds += 1,
            Err(e) => return Err(Error::db("retry failed")(e)),
        }
    }
}

/// [`AdminStore::requeue_stuck`](durable_core::store::AdminStore::requeue_stuck).
pub(super) async fn requeue_stuck(pool: &PgPool, which: &StuckQuery) -> Result<u64> {
    let n: i64 = again_if_moved(|| {
        sqlx::query_scalar(REQUEUE_STUCK)
            .bind(ms(which.running_for))
            .bind(which.name.as_deref())
            .bind(i64::from(which.limit))
            .fetch_one(pool)
    })
    .await
    .map_err(Error::db("requeue stuck"))?;
    Ok(u64::try_from(n).unwrap_or(0))
}
