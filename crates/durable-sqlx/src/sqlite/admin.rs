//! Inspection and administration on SQLite: [`AdminStore`] for [`SqliteStore`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use durable_core::store::{
    async_trait, ActionOutcome, AdminStore, CancelOutcome, Count, ListQuery, Page, RetryFailed,
    Seen, StateCounts, Stats, StuckQuery, TaskRecord, ThroughputBucket,
};
use durable_core::{TaskId, TaskState, WorkerId};

use super::rows::record_from_row;
use super::{actions, listing, overview, sql, to_core, SqliteStore};
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

    /// One keyset page over the primary key, either order; with a search, at most
    /// [`SEARCH_SCAN`](durable_core::store::SEARCH_SCAN) rows are read per call.
    async fn list(&self, query: &ListQuery) -> durable_core::Result<Page> {
        to_core(listing::list(&self.inner.reader, query).await)
    }

    async fn counts(&self) -> durable_core::Result<StateCounts> {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql::COUNTS)
            .fetch_all(&self.inner.reader)
            .await
            .map_err(Error::db("counts"))?;
        to_core(crate::util::state_counts(rows))
    }
    /// Every figure exact up to [`COUNT_BOUND`](durable_core::store::COUNT_BOUND), on the
    /// partial index of its state, and `AtLeast` past it.
    async fn stats(&self) -> durable_core::Result<Stats> {
        to_core(overview::stats(&self.inner.reader, self.now_ms()).await)
    }
    async fn state_stats(&self) -> durable_core::Result<Vec<(TaskState, Count)>> {
        to_core(
            overview::states(&self.inner.reader, self.now_ms())
                .await
                .map(|(states, _)| states),
        )
    }

    async fn throughput(
        &self,
        since: DateTime<Utc>,
    ) -> durable_core::Result<Vec<ThroughputBucket>> {
        to_core(
            overview::throughput(&self.inner.reader, since.timestamp_millis(), self.now_ms()).await,
        )
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
        let clock = self.inner.clock.clone();
        to_core(
            self.transaction("add throughput", move |conn| {
                Box::pin(async move {
                    overview::add_throughput(conn, worker, &buckets, clock.now_ms()).await
                })
            })
            .await,
        )
    }

    /// Wakes the runtimes of this process on the store when the task went back to
    /// `pending`.
    async fn retry(&self, id: TaskId, seen: Option<Seen>) -> durable_core::Result<ActionOutcome> {
        let clock = self.inner.clock.clone();
        let outcome = self
            .transaction("retry", move |conn| {
                Box::pin(async move { actions::retry(conn, id, seen, clock.now_ms()).await })
            })
            .await;
        if matches!(outcome, Ok(ActionOutcome::Done)) {
            self.wake();
        }
        to_core(outcome)
    }

    async fn retry_failed(&self, which: &RetryFailed) -> durable_core::Result<u64> {
        let which = which.clone();
        let clock = self.inner.clock.clone();
        let retried = self
            .transaction("retry failed", move |conn| {
                Box::pin(async move { actions::retry_failed(conn, &which, clock.now_ms()).await })
            })
            .await;
        if matches!(retried, Ok(n) if n > 0) {
            self.wake();
        }
        to_core(retried)
    }

    async fn delete(&self, id: TaskId, seen: Option<Seen>) -> durable_core::Result<ActionOutcome> {
        to_core(
            self.transaction("delete", move |conn| {
                Box::pin(async move { actions::delete(conn, id, seen).await })
            })
            .await,
        )
    }

    async fn requeue(&self, id: TaskId, seen: Option<Seen>) -> durable_core::Result<ActionOutcome> {
        let clock = self.inner.clock.clone();
        let outcome = self
            .transaction("requeue", move |conn| {
                Box::pin(async move { actions::requeue(conn, id, seen, clock.now_ms()).await })
            })
            .await;
        if matches!(outcome, Ok(ActionOutcome::Done)) {
            self.wake();
        }
        to_core(outcome)
    }

    async fn requeue_stuck(&self, which: &StuckQuery) -> durable_core::Result<u64> {
        let which = which.clone();
        let clock = self.inner.clock.clone();
        let moved = self
            .transaction("requeue stuck", move |conn| {
                Box::pin(async move { actions::requeue_stuck(conn, &which, clock.now_ms()).await })
            })
            .await;
        if matches!(moved, Ok((_, pending)) if pending > 0) {
            self.wake();
        }
        to_core(moved.map(|(n, _)| n))
    }
}

impl SqliteStore {
    /// Tells this process's runtimes on the store that tasks became due.
    fn wake(&self) {
        self.inner.due.send_modify(|n| *n = n.wrapping_add(1));
    }
}
