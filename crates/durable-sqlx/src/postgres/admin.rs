//! Inspection and administration on PostgreSQL: [`AdminStore`] for [`PostgresStore`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use durable_core::store::{
    async_trait, ActionOutcome, AdminStore, CancelOutcome, Count, ListQuery, Page, RetryFailed,
    Seen, StateCounts, Stats, StuckQuery, TaskRecord, ThroughputBucket,
};
use durable_core::{TaskId, TaskState, WorkerId};

use super::moved::again_if_moved;
use super::rows::record_from_row;
use super::{actions, ms, overview, sql, PostgresStore};
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
            let done: i64 = again_if_moved(|| {
                sqlx::query_scalar(sql::PRUNE)
                    .bind(ms(older_than))
                    .bind(i64::from(limit))
                    .fetch_one(&pool)
            })
            .await
            .map_err(Error::db("prune"))?;
            Ok(u64::try_from(done).unwrap_or(0))
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

    /// One keyset page over the primary key, either order; with a search, at most
    /// [`SEARCH_SCAN`](durable_core::store::SEARCH_SCAN) rows are read per call.
    async fn list(&self, query: &ListQuery) -> durable_core::Result<Page> {
        let query = query.clone();
        self.run("list", move |pool| async move {
            super::listing::list(&pool, &query).await
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
    /// Counts each state up to [`COUNT_BOUND`](durable_core::store::COUNT_BOUND) on its
    /// partial index, except a terminal state the planner estimates past the bound: that one
    /// is the estimate ([`Count::Estimated`]).
    async fn stats(&self) -> durable_core::Result<Stats> {
        self.run("stats", |pool| async move { overview::stats(&pool).await })
            .await
    }
    async fn state_stats(&self) -> durable_core::Result<Vec<(TaskState, Count)>> {
        self.run("stats", |pool| async move { overview::states(&pool).await })
            .await
    }

    async fn throughput(
        &self,
        since: DateTime<Utc>,
    ) -> durable_core::Result<Vec<ThroughputBucket>> {
        self.run("throughput", move |pool| async move {
            overview::throughput(&pool, since).await
        })
        .await
    }

    async fn add_throughput(
        &self,
        worker: WorkerId,
        buckets: &[ThroughputBucket],
    ) -> durable_core::Result<()> {
        if buckets.is_empty() {
            return Ok(());
        }
        let buckets = buckets.to_vec();
        self.run("add throughput", move |pool| async move {
            overview::add_throughput(&pool, worker, &buckets).await
        })
        .await
    }

    /// One statement; a concurrent insert taking the key between its look and its write is
    /// caught (the unique index refuses the write) and the statement runs again.
    async fn retry(&self, id: TaskId, seen: Option<Seen>) -> durable_core::Result<ActionOutcome> {
        self.run("retry", move |pool| async move {
            actions::retry(&pool, id, seen).await
        })
        .await
    }

    async fn retry_failed(&self, which: &RetryFailed) -> durable_core::Result<u64> {
        let which = which.clone();
        self.run("retry failed", move |pool| async move {
            actions::retry_failed(&pool, &which).await
        })
        .await
    }

    async fn delete(&self, id: TaskId, seen: Option<Seen>) -> durable_core::Result<ActionOutcome> {
        self.run("delete", move |pool| async move {
            actions::delete(&pool, id, seen).await
        })
        .await
    }

    async fn requeue(&self, id: TaskId, seen: Option<Seen>) -> durable_core::Result<ActionOutcome> {
        self.run("requeue", move |pool| async move {
            actions::requeue(&pool, id, seen).await
        })
        .await
    }

    async fn requeue_stuck(&self, which: &StuckQuery) -> durable_core::Result<u64> {
        let which = which.clone();
        self.run("requeue stuck", move |pool| async move {
            actions::requeue_stuck(&pool, &which).await
        })
        .await
    }
}
