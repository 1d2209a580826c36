//! Cancellation and snoozing on SQLite: cancelling a task (a `pending` row at once, a
//! `processing` one by recording the request), finding the requests among held attempts
//! (the heartbeat's look: the only way another process learns of one), and the `cancelled`
//! and snoozed outcomes.

use durable_core::store::{CancelOutcome, Fence};
use durable_core::TaskId;
use sqlx::SqliteConnection;

use super::encode::fences_json;
use super::rows::parse_id;
use super::{to_core, SqliteStore};
use crate::error::{Error, Result};

/// ?1 id, ?2 now. A `pending` row becomes `cancelled`; a `processing` one records the
/// request (the first one's time is kept). Returns the state after the update; no row: the
/// task is neither. SET expressions read the row as it was.
const CANCEL: &str = "
UPDATE durable_tasks
SET state = CASE WHEN state = 'pending' THEN 'cancelled' ELSE state END,
    finished_at = CASE WHEN state = 'pending' THEN ?2 ELSE finished_at END,
    cancel_requested_at = CASE WHEN state = 'processing' THEN coalesce(cancel_requested_at, ?2) END,
    updated_at = ?2
WHERE id = ?1 AND state IN ('pending', 'processing')
RETURNING state";

/// ?1 id.
const STATE: &str = "SELECT state FROM durable_tasks WHERE id = ?1";

/// ?1 fences as JSON. The held rows whose cancellation was requested.
const CANCEL_REQUESTED: &str = "
SELECT id FROM durable_tasks
WHERE id IN (SELECT f.value ->> '$.id' FROM json_each(?1) AS f)
  AND state = 'processing' AND cancel_requested_at IS NOT NULL";

/// The fence of one attempt: ?1 a one-element JSON array.
macro_rules! one_fence {
    () => {
        "state = 'processing'
  AND (id, lease_owner, attempts) IN (
      SELECT f.value ->> '$.id', f.value ->> '$.owner', f.value ->> '$.attempt'
      FROM json_each(?1) AS f)"
    };
}

/// ?1 fence, ?2 now, ?3 error. An attempt of a cancel-requested task ended.
const CANCELLED: &str = concat!(
    "UPDATE durable_tasks SET state = 'cancelled', last_error = ?3, errors = ",
    push_error!("?2", "?3"),
    ", lease_expires_at = NULL,
    finished_at = ?2, updated_at = ?2
WHERE ",
    one_fence!()
);

/// ?1 fence, ?2 now, ?3 run_at. Back to `pending` without counting the attempt (`cancelled`
/// if its cancellation was requested meanwhile).
const SNOOZE: &str = concat!(
    "UPDATE durable_tasks
SET state = CASE WHEN cancel_requested_at IS NULL THEN 'pending' ELSE 'cancelled' END,
    attempts = CASE WHEN cancel_requested_at IS NULL THEN attempts - 1 ELSE attempts END,
    run_at = ?3,
    finished_at = CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE ?2 END,
    lease_owner = CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE lease_owner END,
    lease_expires_at = NULL, updated_at = ?2
WHERE ",
    one_fence!()
);

/// What [`RESCUE_CANCEL`] records.
macro_rules! rescue_cancelled {
    () => {
        "'cancelled: its worker stopped heart-beating (lease expired)'"
    };
}

/// ?1 now. Expired leases of cancel-requested rows: `cancelled` (run before the sweep's
/// other statements, in its transaction).
pub(super) const RESCUE_CANCEL: &str = concat!(
    "
UPDATE durable_tasks
SET state = 'cancelled', finished_at = ?1, updated_at = ?1, lease_expires_at = NULL,
    last_error = ",
    rescue_cancelled!(),
    ", errors = ",
    push_error!("?1", rescue_cancelled!()),
    "
WHERE state = 'processing' AND lease_expires_at < ?1 AND cancel_requested_at IS NOT NULL"
);

impl SqliteStore {
    /// [`AdminStore::cancel`](durable_core::store::AdminStore::cancel).
    pub(super) async fn cancel_task(&self, id: TaskId) -> durable_core::Result<CancelOutcome> {
        let clock = self.inner.clock.clone();
        to_core(
            self.transaction("cancel", move |conn| {
                Box::pin(async move {
                    let id = id.to_string();
                    let moved: Option<String> = sqlx::query_scalar(CANCEL)
                        .bind(&id)
                        .bind(clock.now_ms())
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(Error::db("cancel"))?;
                    if let Some(state) = moved {
                        return Ok(if state == "cancelled" {
                            CancelOutcome::Cancelled
                        } else {
                            CancelOutcome::Requested
                        });
                    }
                    let found: Option<String> = sqlx::query_scalar(STATE)
                        .bind(&id)
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(Error::db("cancel"))?;
                    Ok(match found {
                        Some(_) => CancelOutcome::AlreadyFinished,
                        None => CancelOutcome::NotFound,
                    })
                })
            })
            .await,
        )
    }

    /// [`WorkerStore::cancel_requested`](durable_core::store::WorkerStore::cancel_requested),
    /// on the reader pool.
    pub(super) async fn cancel_requested_among(
        &self,
        held: &[Fence],
    ) -> durable_core::Result<Vec<TaskId>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = sqlx::query_scalar(CANCEL_REQUESTED)
            .bind(fences_json(held))
            .fetch_all(&self.inner.reader)
            .await
            .map_err(Error::db("cancel requested"))?;
        to_core(ids.iter().map(|id| parse_id(id)).collect())
    }
}

/// Writes a `cancelled` outcome (fenced) in the settle transaction; whether it applied.
pub(super) async fn write_cancelled(
    conn: &mut SqliteConnection,
    fence: &Fence,
    now: i64,
    error: &str,
) -> Result<bool> {
    let done = sqlx::query(CANCELLED)
        .bind(fences_json(std::slice::from_ref(fence)))
        .bind(now)
        .bind(error)
        .execute(&mut *conn)
        .await
        .map_err(Error::db("cancelled"))?;
    Ok(done.rows_affected() == 1)
}

/// Writes a snooze (fenced) in the settle transaction; whether it applied.
pub(super) async fn write_snoozed(
    conn: &mut SqliteConnection,
    fence: &Fence,
    now: i64,
    delay: std::time::Duration,
) -> Result<bool> {
    let done = sqlx::query(SNOOZE)
        .bind(fences_json(std::slice::from_ref(fence)))
        .bind(now)
        .bind(now + crate::util::delay_ms(delay))
        .execute(&mut *conn)
        .await
        .map_err(Error::db("snooze"))?;
    Ok(done.rows_affected() == 1)
}
