//! Cancellation and snoozing on PostgreSQL: cancelling a task (a `pending` row at once, a
//! `processing` one by recording the request and notifying the instances), finding the
//! requests among held attempts, and the `cancelled` and snoozed outcomes.
//!
//! A request reaches the instance running the attempt through a `NOTIFY` on a channel of
//! its own (`durable_cancel.<schema>`, the task id as payload), listened to on the same
//! connection as the wakeups; the heartbeat's look ([`CANCEL_REQUESTED`]) is the fallback
//! when a notification is lost.

use durable_core::store::{CancelOutcome, Fence};
use durable_core::TaskId;
use sqlx::{PgPool, Row};

use super::moved::again_if_moved;
use super::rows::{attempt_i32, clean_text, fence_columns};
use super::{ms, PostgresStore};
use crate::error::Error;

/// The cancellation channel's name, asked of the server by the listener (same rule as the
/// wakeup channel: one per schema, from the session's `search_path`).
pub(super) const CANCEL_CHANNEL: &str = "SELECT left('durable_cancel.' || current_schema(), 63)";

/// $1 id. A `pending` row becomes `cancelled`; a `processing` one records the request (the
/// first one's time is kept) and notifies the instances with the task id. `moved` is the
/// state after the update (none: the row is neither), `found` the state before it (none: no
/// such row). SET expressions read the row as it was.
const CANCEL: &str = concat!(
    "
WITH moved AS (
    UPDATE durable_tasks
    SET state = CASE WHEN state = 'pending' THEN 'cancelled' ELSE state END,
        archived = ",
    archived_as!(
        "",
        "CASE WHEN state = 'pending' THEN 'cancelled' ELSE state END"
    ),
    ",
        finished_at = CASE WHEN state = 'pending' THEN durable_now() ELSE finished_at END,
        cancel_requested_at = CASE WHEN state = 'processing'
            THEN coalesce(cancel_requested_at, durable_now()) END,
        updated_at = durable_now()
    WHERE id = $1::uuid AND state IN ('pending', 'processing') AND NOT archived
    RETURNING id, state
),
notified AS (
    SELECT pg_notify(left('durable_cancel.' || current_schema(), 63), id::text)
    FROM moved WHERE state = 'processing'
)
SELECT (SELECT state FROM moved) AS moved,
    (SELECT state FROM durable_tasks WHERE id = $1::uuid) AS found,
    (SELECT count(*) FROM notified) AS notified"
);

/// $1 ids. The held rows whose cancellation was requested.
/// One primary-key probe per id (see the fenced writes in `sql.rs` for why not a join). The
/// state is tested outside the probe, past its `LIMIT` (which keeps the planner from pulling
/// the probe up into a join): stated inside, it is the lease sweep's index's condition, and
/// on the statistics of a healthy queue the check was planned as a read of that whole index,
/// which a held vacuum horizon fills with an entry per finished task.
pub(super) const CANCEL_REQUESTED: &str = "
SELECT t.id FROM unnest($1::uuid[]) AS f(id)
CROSS JOIN LATERAL (
    SELECT l.id, l.state, l.cancel_requested_at FROM durable_tasks_live AS l
    WHERE l.id = f.id
    LIMIT 1
) AS t
WHERE t.state = 'processing' AND t.cancel_requested_at IS NOT NULL";

/// $1 id, $2 owner, $3 attempt, $4 error. An attempt of a cancel-requested task ended.
pub(super) const CANCELLED: &str = concat!(
    "
UPDATE durable_tasks
SET state = 'cancelled', archived = ",
    archived_as!("", "'cancelled'"),
    ", last_error = $4, errors = ",
    push_error!("", "$4::text"),
    ", lease_expires_at = NULL,
    finished_at = durable_now(), updated_at = durable_now()
WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 'processing' AND NOT archived"
);

/// $1 id, $2 owner, $3 attempt, $4 delay ms. Back to `pending` without counting the attempt
/// (`cancelled` if its cancellation was requested meanwhile); notifies when due at once.
pub(super) const SNOOZE: &str = concat!(
    "
WITH moved AS (
    UPDATE durable_tasks
    SET state = CASE WHEN cancel_requested_at IS NULL THEN 'pending' ELSE 'cancelled' END,
        archived = ",
    archived_as!(
        "",
        "CASE WHEN cancel_requested_at IS NULL THEN 'pending' ELSE 'cancelled' END"
    ),
    ",
        attempts = CASE WHEN cancel_requested_at IS NULL THEN attempts - 1 ELSE attempts END,
        run_at = durable_now() + $4::int8 * interval '1 millisecond',
        finished_at = CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE durable_now() END,
        lease_owner = CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE lease_owner END,
        lease_expires_at = NULL, updated_at = durable_now()
    WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 'processing'
      AND NOT archived
    RETURNING state, run_at
)
SELECT count(*) AS n,
    CASE WHEN bool_or(state = 'pending' AND run_at <= durable_now())
        THEN pg_notify(left('durable_tasks.' || current_schema(), 63), '')::text END AS notified
FROM moved"
);

impl PostgresStore {
    /// [`AdminStore::cancel`](durable_core::store::AdminStore::cancel).
    pub(super) async fn cancel_task(&self, id: TaskId) -> durable_core::Result<CancelOutcome> {
        self.run("cancel", move |pool| async move {
            let row = again_if_moved(|| sqlx::query(CANCEL).bind(id.as_uuid()).fetch_one(&pool))
                .await
                .map_err(Error::db("cancel"))?;
            let moved: Option<String> = row.try_get("moved").map_err(Error::db("cancel"))?;
            let found: Option<String> = row.try_get("found").map_err(Error::db("cancel"))?;
            Ok(match (moved.as_deref(), found) {
                (Some("cancelled"), _) => CancelOutcome::Cancelled,
                (Some(_), _) => CancelOutcome::Requested,
                (None, Some(_)) => CancelOutcome::AlreadyFinished,
                (None, None) => CancelOutcome::NotFound,
            })
        })
        .await
    }

    /// [`WorkerStore::cancel_requested`](durable_core::store::WorkerStore::cancel_requested).
    pub(super) async fn cancel_requested_among(
        &self,
        held: &[Fence],
    ) -> durable_core::Result<Vec<TaskId>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, _, _) = fence_columns(held);
        self.run("cancel requested", move |pool| async move {
            let ids: Vec<uuid::Uuid> = sqlx::query_scalar(CANCEL_REQUESTED)
                .bind(ids)
                .fetch_all(&pool)
                .await
                .map_err(Error::db("cancel requested"))?;
            Ok(ids.into_iter().map(TaskId::from_uuid).collect())
        })
        .await
    }
}

/// Writes a `cancelled` outcome (fenced); whether it applied.
pub(super) async fn write_cancelled(
    pool: &PgPool,
    fence: &Fence,
    error: &str,
) -> crate::error::Result<bool> {
    let error = clean_text(error);
    let done = again_if_moved(|| {
        sqlx::query(CANCELLED)
            // Planned with its parameters at each run, not as a cached generic plan
            // (see "Single-row statements, planned per run" in
            // `sql.rs`).
            .persistent(false)
            .bind(fence.id.as_uuid())
            .bind(fence.owner.as_uuid())
            .bind(attempt_i32(fence.attempt))
            .bind(&error)
            .execute(pool)
    })
    .await
    .map_err(Error::db("cancelled"))?;
    Ok(done.rows_affected() == 1)
}

/// Writes a snooze (fenced); whether it applied.
pub(super) async fn write_snoozed(
    pool: &PgPool,
    fence: &Fence,
    delay: std::time::Duration,
) -> crate::error::Result<bool> {
    let n: i64 = again_if_moved(|| {
        sqlx::query_scalar(SNOOZE)
            // Planned with its parameters at each run, not as a cached generic plan
            // (see "Single-row statements, planned per run" in
            // `sql.rs`).
            .persistent(false)
            .bind(fence.id.as_uuid())
            .bind(fence.owner.as_uuid())
            .bind(attempt_i32(fence.attempt))
            .bind(ms(delay))
            .fetch_one(pool)
    })
    .await
    .map_err(Error::db("snooze"))?;
    Ok(n == 1)
}
