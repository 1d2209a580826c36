//! Periodic schedules on SQLite: [`ScheduleStore`] for [`SqliteStore`]. The compare-and-set
//! and the occurrences' inserts share one `BEGIN IMMEDIATE` transaction, which also
//! serializes processes sharing the file.

use chrono::{DateTime, Utc};
use durable_core::store::{async_trait, ScheduleAdvance, ScheduleRow, ScheduleStore};

use super::encode::{insert_on, names_json};
use super::rows::from_ms;
use super::{to_core, SqliteStore};
use crate::error::Error;

/// ?1 schedule names (JSON array).
const SCHEDULES: &str = "
SELECT name, enqueued_through, spec, updated_at FROM durable_schedules
WHERE name IN (SELECT value FROM json_each(?1))";

/// ?1 name, ?2 enqueued through, ?3 spec, ?4 now. Creates the row unless it exists.
const CREATE: &str = "
INSERT INTO durable_schedules (name, enqueued_through, spec, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?4)
ON CONFLICT (name) DO NOTHING";

/// ?1 name, ?2 the value read, ?3 the new value, ?4 spec, ?5 now. Moves the row only if it
/// still holds the value read.
const ADVANCE: &str = "
UPDATE durable_schedules SET enqueued_through = ?3, spec = ?4, updated_at = ?5
WHERE name = ?1 AND enqueued_through = ?2";

#[async_trait]
impl ScheduleStore for SqliteStore {
    /// This process's clock (SQLite has no other): one process per file, or processes on one
    /// machine.
    async fn database_now(&self) -> durable_core::Result<DateTime<Utc>> {
        Ok(from_ms(self.now_ms()))
    }

    async fn schedules(&self, names: &[String]) -> durable_core::Result<Vec<ScheduleRow>> {
        let rows: Vec<(String, i64, String, i64)> = sqlx::query_as(SCHEDULES)
            .bind(names_json(names)?)
            .fetch_all(&self.inner.reader)
            .await
            .map_err(Error::db("read schedules"))?;
        Ok(rows
            .into_iter()
            .map(|(name, through, spec, updated)| {
                ScheduleRow::new(name, from_ms(through), spec, from_ms(updated))
            })
            .collect())
    }

    async fn advance_schedule(&self, advance: ScheduleAdvance<'_>) -> durable_core::Result<bool> {
        let name = advance.name.to_owned();
        let spec = advance.spec.to_owned();
        let from = advance.from.map(|t| t.timestamp_millis());
        let to = advance.to.timestamp_millis();
        let tasks = advance.tasks.to_vec();
        let clock = self.inner.clock.clone();
        to_core(
            self.transaction("advance schedule", move |conn| {
                Box::pin(async move {
                    let now = clock.now_ms();
                    let query = match from {
                        None => sqlx::query(CREATE)
                            .bind(&name)
                            .bind(to)
                            .bind(&spec)
                            .bind(now),
                        Some(from) => sqlx::query(ADVANCE)
                            .bind(&name)
                            .bind(from)
                            .bind(to)
                            .bind(&spec)
                            .bind(now),
                    };
                    let moved = query
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("advance schedule"))?
                        .rows_affected()
                        == 1;
                    if moved {
                        insert_on(conn, &tasks, now).await?;
                    }
                    Ok(moved)
                })
            })
            .await,
        )
    }
}
