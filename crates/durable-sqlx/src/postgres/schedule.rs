//! Periodic schedules on PostgreSQL: [`ScheduleStore`] for [`PostgresStore`]. The
//! compare-and-set and the occurrences' inserts share one transaction; the insert's `NOTIFY`
//! wakes the other instances at its commit.

use chrono::{DateTime, Utc};
use durable_core::store::{async_trait, ScheduleAdvance, ScheduleRow, ScheduleStore};
use sqlx::Connection as _;

use super::rows::{insert_on, pooled};
use super::PostgresStore;
use crate::error::Error;

/// $1 schedule names.
const SCHEDULES: &str = "
SELECT name, enqueued_through, spec, updated_at FROM durable_schedules
WHERE name = ANY($1::text[])";

/// $1 name, $2 enqueued through, $3 spec. Creates the row unless it exists.
const CREATE: &str = "
INSERT INTO durable_schedules (name, enqueued_through, spec, created_at, updated_at)
VALUES ($1, $2, $3, durable_now(), durable_now())
ON CONFLICT (name) DO NOTHING";

/// $1 name, $2 the value read, $3 the new value, $4 spec. Moves the row only if it still
/// holds the value read: of two instances racing, the second one's update waits for the
/// first one's commit, then matches nothing.
const ADVANCE: &str = "
UPDATE durable_schedules SET enqueued_through = $3, spec = $4, updated_at = durable_now()
WHERE name = $1 AND enqueued_through = $2";

#[async_trait]
impl ScheduleStore for PostgresStore {
    /// The database's `now()`: every instance reads the same clock.
    async fn database_now(&self) -> durable_core::Result<DateTime<Utc>> {
        pooled(self.pool(), "read the clock", async |conn| {
            sqlx::query_scalar("SELECT durable_now()")
                .fetch_one(&mut *conn)
                .await
                .map_err(Error::db("read the clock"))
        })
        .await
    }

    async fn schedules(&self, names: &[String]) -> durable_core::Result<Vec<ScheduleRow>> {
        let rows: Vec<(String, DateTime<Utc>, String, DateTime<Utc>)> = sqlx::query_as(SCHEDULES)
            .bind(names)
            .fetch_all(self.pool())
            .await
            .map_err(Error::db("read schedules"))?;
        Ok(rows
            .into_iter()
            .map(|(name, through, spec, updated)| ScheduleRow::new(name, through, spec, updated))
            .collect())
    }

    async fn advance_schedule(&self, advance: ScheduleAdvance<'_>) -> durable_core::Result<bool> {
        let name = advance.name.to_owned();
        let spec = advance.spec.to_owned();
        let (from, to) = (advance.from, advance.to);
        let tasks = advance.tasks.to_vec();
        self.run("advance schedule", move |pool| async move {
            let mut conn = pool
                .acquire()
                .await
                .map_err(Error::db("advance schedule"))?;
            let mut tx = conn.begin().await.map_err(Error::db("advance schedule"))?;
            let query = match from {
                None => sqlx::query(CREATE).bind(&name).bind(to).bind(&spec),
                Some(from) => sqlx::query(ADVANCE)
                    .bind(&name)
                    .bind(from)
                    .bind(to)
                    .bind(&spec),
            };
            let moved = query
                .execute(&mut *tx)
                .await
                .map_err(Error::db("advance schedule"))?
                .rows_affected()
                == 1;
            if !moved {
                return Ok(false);
            }
            insert_on(&mut tx, &tasks).await?;
            tx.commit().await.map_err(Error::db("advance schedule"))?;
            Ok(true)
        })
        .await
    }
}
