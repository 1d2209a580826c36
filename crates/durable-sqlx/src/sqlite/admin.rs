//! Inspection and administration on SQLite: [`AdminStore`] for [`SqliteStore`].

use std::time::Duration;

use durable_core::store::{
    async_trait, AdminStore, CancelOutcome, ListQuery, StateCounts, TaskRecord, MAX_LIST_LIMIT,
};
use durable_core::{TaskId, TaskState};

use super::rows::record_from_row;
use super::{sql, to_core, SqliteStore};
use crate::error::{Error, Result};
use crate::util::{detached, millis};

impl SqliteStore {
    /// Applies the embedded migrations missing from the file (see
    /// [`AdminStore::migrate`]); the same as the trait method, callable without importing it.
    pub async fn migrate(&self) -> Result<()> {
        let pool = self.inner.writer.clone();
        detached("migrate", async move {
            let migrate = &crate::migrate::sqlite::MIGRATOR;
            crate::migrate::sqlite::run(&pool, &migrate.migrations).await
        })
        .await
    }
}

#[async_trait]
impl AdminStore for SqliteStore {
    /// Applies the embedded migrations missing from the file, in one `BEGIN IMMEDIATE`
    /// transaction on the writer connection: processes migrating one file at once wait for
    /// each other. Starts against a newer schema whose migrations accept this version, and
    /// fails naming both versions otherwise (see `docs/UPGRADING.md`).
    async fn migrate(&self) -> durable_core::Result<()> {
        to_core(SqliteStore::migrate(self).await)
    }

    /// A `pending` row is `cancelled`; a `processing` one records the request, which the
    /// runtime running it finds at its next heartbeat (at once when it shares this store's
    /// client).
    async fn cancel(&self, id: TaskId) -> durable_core::Result<CancelOutcome> {
        self.cancel_task(id).await
    }

    async fn prune(&self, older_than: Duration, limit: u32) -> durable_core::Result<u64> {
        let clock = self.inner.clock.clone();
        to_core(
            self.transaction("prune", move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(sql::PRUNE)
                        .bind(clock.now_ms() - millis(older_than))
                        .bind(i64::from(limit))
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("prune"))?;
                    Ok(done.rows_affected())
                })
            })
            .await,
        )
    }

    async fn get(&self, id: TaskId) -> durable_core::Result<Option<TaskRecord>> {
        let row = sqlx::query(sql::GET)
            .bind(id.to_string())
            .fetch_optional(&self.inner.reader)
            .await
            .map_err(Error::db("get"))?;
        to_core(row.as_ref().map(record_from_row).transpose())
    }

    async fn list(&self, query: &ListQuery) -> durable_core::Result<durable_core::store::Page> {
        let rows = sqlx::query(sql::LIST)
            .bind(query.state.map(TaskState::as_str))
            .bind(query.name.as_deref())
            .bind(query.queue.as_deref())
            .bind(query.after.map(|id| id.to_string()))
            .bind(i64::from(query.limit.min(MAX_LIST_LIMIT)))
            .fetch_all(&self.inner.reader)
            .await
            .map_err(Error::db("list"))?;
        let tasks: Vec<TaskRecord> = to_core(rows.iter().map(record_from_row).collect())?;
        let next = (tasks.len() == query.limit as usize)
            .then(|| tasks.last().map(|t| t.id))
            .flatten();
        Ok(durable_core::store::Page::new(tasks, next))
    }

    async fn counts(&self) -> durable_core::Result<StateCounts> {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql::COUNTS)
            .fetch_all(&self.inner.reader)
            .await
            .map_err(Error::db("counts"))?;
        to_core(crate::util::state_counts(rows))
    }
    async fn stats(&self) -> durable_core::Result<durable_core::store::Stats> {
        Err(pending_impl("stats"))
    }
    async fn throughput(
        &self,
        _since: chrono::DateTime<chrono::Utc>,
    ) -> durable_core::Result<Vec<durable_core::store::ThroughputBucket>> {
        Err(pending_impl("throughput"))
    }
    async fn add_throughput(
        &self,
        _worker: durable_core::WorkerId,
        _buckets: &[durable_core::store::ThroughputBucket],
    ) -> durable_core::Result<()> {
        Err(pending_impl("add_throughput"))
    }
    async fn retry(
        &self,
        _id: TaskId,
        _seen: Option<durable_core::store::Seen>,
    ) -> durable_core::Result<durable_core::store::ActionOutcome> {
        Err(pending_impl("retry"))
    }
    async fn retry_failed(
        &self,
        _which: &durable_core::store::RetryFailed,
    ) -> durable_core::Result<u64> {
        Err(pending_impl("retry_failed"))
    }
    async fn delete(
        &self,
        _id: TaskId,
        _seen: Option<durable_core::store::Seen>,
    ) -> durable_core::Result<durable_core::store::ActionOutcome> {
        Err(pending_impl("delete"))
    }
    async fn requeue(
        &self,
        _id: TaskId,
        _seen: Option<durable_core::store::Seen>,
    ) -> durable_core::Result<durable_core::store::ActionOutcome> {
        Err(pending_impl("requeue"))
    }
    async fn requeue_stuck(
        &self,
        _which: &durable_core::store::StuckQuery,
    ) -> durable_core::Result<u64> {
        Err(pending_impl("requeue_stuck"))
    }
}

// SCAFFOLD (admin-api branch only): replaced by the real statements before anything lands.
fn pending_impl(operation: &'static str) -> durable_core::Error {
    durable_core::Error::Store {
        operation,
        source: "not implemented yet".into(),
    }
}
