//! Step checkpoints on PostgreSQL: [`StepStore`] for [`PostgresStore`], and the fenced
//! statements `complete_in` and `step_in` run in the application's transaction.

use durable_core::store::{async_trait, Fence, StepRecord, StepStore};
use durable_core::TaskId;
use sqlx::PgConnection;

use super::rows::attempt_i32;
use super::PostgresStore;
use crate::error::{Error, Result};

/// $1 id, $2 owner, $3 attempt, $4 name, $5 output. The step is written only while the
/// attempt holds its task. `FOR SHARE` waits for a concurrent change of the row (a rescue, a
/// claim) and checks the fence against what it committed, not against the statement's
/// snapshot; it also keeps the row from changing hands until this transaction ends.
const SAVE_STEP: &str = "
INSERT INTO durable_steps (task_id, name, output, attempt)
SELECT id, $4, $5::jsonb, attempts FROM durable_tasks_live
WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 'processing'
FOR SHARE";

/// $1 id.
const STEPS: &str =
    "SELECT name, output::text AS output, attempt FROM durable_steps WHERE task_id = $1";

/// $1 id, $2 owner, $3 attempt. The runtime's completion, for one fence (the lease owner
/// stays, as with every completion, so the row tells who completed it). The row moves to the
/// history partition unless it holds its key.
const COMPLETE: &str = concat!(
    "
UPDATE durable_tasks SET state = 'completed', archived = ",
    archived_as!("", "'completed'"),
    ", lease_expires_at = NULL,
    finished_at = durable_now(), updated_at = durable_now()
WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 'processing' AND NOT archived"
);

/// Writes a step's checkpoint on `conn`, fenced; `false` when the attempt lost its task.
pub(crate) async fn save_step_on(
    conn: &mut PgConnection,
    fence: &Fence,
    name: &str,
    output: &str,
) -> Result<bool> {
    let done = sqlx::query(SAVE_STEP)
        // Planned with its parameters at each run, not as a cached generic plan
        // (see "Single-row statements, planned per run" in
        // `sql.rs`).
        .persistent(false)
        .bind(fence.id.as_uuid())
        .bind(fence.owner.as_uuid())
        .bind(attempt_i32(fence.attempt))
        .bind(name)
        .bind(output)
        .execute(conn)
        .await
        .map_err(Error::db("save step"))?;
    Ok(done.rows_affected() == 1)
}

/// Completes the attempt `fence` on `conn`, fenced; `false` when it lost its task.
pub(crate) async fn complete_on(conn: &mut PgConnection, fence: &Fence) -> Result<bool> {
    let done = sqlx::query(COMPLETE)
        // Planned with its parameters at each run, not as a cached generic plan
        // (see "Single-row statements, planned per run" in
        // `sql.rs`).
        .persistent(false)
        .bind(fence.id.as_uuid())
        .bind(fence.owner.as_uuid())
        .bind(attempt_i32(fence.attempt))
        .execute(conn)
        .await
        .map_err(Error::db("complete in transaction"))?;
    Ok(done.rows_affected() == 1)
}

#[async_trait]
impl StepStore for PostgresStore {
    async fn steps(&self, id: TaskId) -> durable_core::Result<Vec<StepRecord>> {
        self.run("read steps", move |pool| async move {
            let rows: Vec<(String, String, i32)> = sqlx::query_as(STEPS)
                .bind(id.as_uuid())
                .fetch_all(&pool)
                .await
                .map_err(Error::db("read steps"))?;
            Ok(rows
                .into_iter()
                .map(|(name, output, attempt)| {
                    StepRecord::new(name, output, u32::try_from(attempt).unwrap_or(0))
                })
                .collect())
        })
        .await
    }

    async fn save_step(
        &self,
        fence: &Fence,
        name: &str,
        output: &str,
    ) -> durable_core::Result<bool> {
        let (fence, name, output) = (*fence, name.to_owned(), output.to_owned());
        self.run("save step", move |pool| async move {
            let mut conn = pool.acquire().await.map_err(Error::db("save step"))?;
            save_step_on(&mut conn, &fence, &name, &output).await
        })
        .await
    }
}
