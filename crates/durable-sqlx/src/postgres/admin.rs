//! Inspection and administration on PostgreSQL: [`AdminStore`] for [`PostgresStore`].

use std::time::Duration;

use durable_core::store::{
    async_trait, AdminStore, CancelOutcome, ListQuery, StateCounts, TaskRecord, MAX_LIST_LIMIT,
};
use durable_core::{TaskId, TaskState};

use super::rows::record_from_row;
use super::{ms, sql, PostgresStore};
use crate::error::{Error, Result};
use crate::util::detached;

impl PostgresStore {
    /// Applies the embedded migrations missing from the database (see
    /// [`AdminStore::migrate`]); the same as the trait method, callable without importing it.
    pub async fn migrate(&self) -> Result<()> {
        // Without a statement timeout: a migration on a large table may take its time. (The
        // last `-c` of the startup options wins.)
        let options = (*self.pool.connect_options())
            .clone()
            .options([("statement_timeout", 0)]);
        detached("migrate", async move {
            let migrate = &crate::migrate::postgres::MIGRATOR;
            crate::migrate::postgres::run(&options, &migrate.migrations).await
        })
        .await
    }
}

#[async_trait]
impl AdminStore for PostgresStore {
    /// Applies the embedded migrations missing from the database on a dedicated connection,
    /// recording them in `_durable_migrations` in the first schema of the `search_path`. A
    /// database-wide advisory lock (sqlx's) is held meanwhile, so instances starting together
    /// apply each once; the connection is closed afterwards, so a failed run cannot leave the
    /// lock held. Starts against a newer schema whose migrations accept this version, and
    /// fails naming both versions otherwise (see `docs/UPGRADING.md`).
    async fn migrate(&self) -> durable_core::Result<()> {
        PostgresStore::migrate(self).await.map_err(Into::into)
    }

    /// One statement: a `pending` row is `cancelled`; a `processing` one records the request
    /// and sends a `NOTIFY` on the cancellation channel, so the instance running it stops the
    /// attempt at once.
    async fn cancel(&self, id: TaskId) -> durable_core::Result<CancelOutcome> {
        self.cancel_task(id).await
    }

    async fn prune(&self, older_than: Duration, limit: u32) -> durable_core::Result<u64> {
        self.run("prune", move |pool| async move {
            let done = sqlx::query(sql::PRUNE)
                .bind(ms(older_than))
                .bind(i64::from(limit))
                .execute(&pool)
                .await
                .map_err(Error::db("prune"))?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn get(&self, id: TaskId) -> durable_core::Result<Option<TaskRecord>> {
        self.run("get", move |pool| async move {
            let row = sqlx::query(sql::GET)
                .bind(id.as_uuid())
                .fetch_optional(&pool)
                .await
                .map_err(Error::db("get"))?;
            row.as_ref().map(record_from_row).transpose()
        })
        .await
    }

    async fn list(&self, query: &ListQuery) -> durable_core::Result<durable_core::store::Page> {
        let query = query.clone();
        self.run("list", move |pool| async move {
            let rows = sqlx::query(sql::LIST)
                .bind(query.state.map(TaskState::as_str))
                .bind(query.name)
                .bind(query.queue)
                .bind(query.after.map(|id| *id.as_uuid()))
                .bind(i64::from(query.limit.min(MAX_LIST_LIMIT)))
                .fetch_all(&pool)
                .await
                .map_err(Error::db("list"))?;
            let tasks: Vec<TaskRecord> = rows.iter().map(record_from_row).collect::<Result<_>>()?;
            let next = (tasks.len() == query.limit as usize)
                .then(|| tasks.last().map(|t| t.id))
                .flatten();
            Ok(durable_core::store::Page::new(tasks, next))
        })
        .await
    }

    async fn counts(&self) -> durable_core::Result<StateCounts> {
        self.run("counts", move |pool| async move {
            let rows: Vec<(String, i64)> = sqlx::query_as(sql::COUNTS)
                .fetch_all(&pool)
                .await
                .map_err(Error::db("counts"))?;
            crate::util::state_counts(rows)
        })
        .await
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
