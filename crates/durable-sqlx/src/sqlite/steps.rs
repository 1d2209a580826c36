//! Step checkpoints on SQLite: [`StepStore`] for [`SqliteStore`], and the fenced statements
//! `complete_in` and `step_in` run in the application's transaction.

use durable_core::store::{async_trait, Fence, StepRecord, StepStore};
use durable_core::TaskId;
use sqlx::SqliteConnection;

use super::{to_core, SqliteStore};
use crate::error::{Error, Result};

/// ?1 id, ?2 owner, ?3 attempt, ?4 name, ?5 output, ?6 now. The step is written only while
/// the attempt holds its task.
const SAVE_STEP: &str = "
INSERT INTO durable_steps (task_id, name, output, attempt, created_at)
SELECT id, ?4, ?5, attempts, ?6 FROM durable_tasks
WHERE id = ?1 AND lease_owner = ?2 AND attempts = ?3 AND state = 'processing'";

/// ?1 id.
const STEPS: &str = "SELECT name, output, attempt FROM durable_steps WHERE task_id = ?1";

/// ?1 id, ?2 owner, ?3 attempt, ?4 now. The runtime's completion, for one fence (the lease
/// owner stays, as with every completion, so the row tells who completed it).
const COMPLETE: &str = "
UPDATE durable_tasks SET state = 'completed', lease_expires_at = NULL, finished_at = ?4,
    updated_at = ?4
WHERE id = ?1 AND lease_owner = ?2 AND attempts = ?3 AND state = 'processing'";

/// Writes a step's checkpoint on `conn`, fenced; `false` when the attempt lost its task.
pub(crate) async fn save_step_on(
    conn: &mut SqliteConnection,
    fence: &Fence,
    name: &str,
    output: &str,
    now: i64,
) -> Result<bool> {
    let done = sqlx::query(SAVE_STEP)
        .bind(fence.id.to_string())
        .bind(fence.owner.to_string())
        .bind(i64::from(fence.attempt))
        .bind(name)
        .bind(output)
        .bind(now)
        .execute(conn)
        .await
        .map_err(Error::db("save step"))?;
    Ok(done.rows_affected() == 1)
}

/// Completes the attempt `fence` on `conn`, fenced; `false` when it lost its task.
pub(crate) async fn complete_on(
    conn: &mut SqliteConnection,
    fence: &Fence,
    now: i64,
) -> Result<bool> {
    let done = sqlx::query(COMPLETE)
        .bind(fence.id.to_string())
        .bind(fence.owner.to_string())
        .bind(i64::from(fence.attempt))
        .bind(now)
        .execute(conn)
        .await
        .map_err(Error::db("complete in transaction"))?;
    Ok(done.rows_affected() == 1)
}

#[async_trait]
impl StepStore for SqliteStore {
    async fn steps(&self, id: TaskId) -> durable_core::Result<Vec<StepRecord>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(STEPS)
            .bind(id.to_string())
            .fetch_all(&self.inner.reader)
            .await
            .map_err(Error::db("read steps"))?;
        Ok(rows
            .into_iter()
            .map(|(name, output, attempt)| {
                StepRecord::new(name, output, u32::try_from(attempt).unwrap_or(0))
            })
            .collect())
    }

    /// Fails at once with [`InsideWriterTransaction`](durable_core::Error::InsideWriterTransaction)
    /// from the task holding a transaction of [`SqliteStore::begin`]: the write needs the
    /// connection it holds (record the step in that transaction with `step_in` instead).
    async fn save_step(
        &self,
        fence: &Fence,
        name: &str,
        output: &str,
    ) -> durable_core::Result<bool> {
        self.inner.owner.check().await?;
        let (fence, name, output) = (*fence, name.to_owned(), output.to_owned());
        let clock = self.inner.clock.clone();
        to_core(
            self.transaction("save step", move |conn| {
                Box::pin(
                    async move { save_step_on(conn, &fence, &name, &output, clock.now_ms()).await },
                )
            })
            .await,
        )
    }
}
