//! Query plans of the store's hot statements on a live database, for checking that they read
//! the partial indexes rather than the whole table.

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgPool, Postgres, Row};
use uuid::Uuid;

use durable_core::store::Fence;

use super::resume::Reach;
use super::rows::fence_columns;
use super::{cancel, claim, look, overview, sql, PostgresStore};
use crate::error::{Error, Result};
use crate::util::detached;

impl PostgresStore {
    /// The query plan PostgreSQL picks for the claim statement (`EXPLAIN`, not executed): of
    /// the any-queue claim, or of the claim of one capped `queue`, for the task types
    /// `names`. For checking on a real database that claims use the live partition's claim
    /// indexes (`durable_tasks_*_ready` / `durable_tasks_*_ready_queue`, one per lane) rather than a
    /// scan of the whole table.
    pub async fn explain_claim(
        &self,
        limit: usize,
        queue: Option<&str>,
        names: &[&str],
    ) -> Result<String> {
        let owner = Uuid::nil();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
        let query = match queue {
            None => sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {}", claim::CLAIM_ANY)))
                .bind(owner)
                .bind(30_000_i64)
                .bind(limit)
                .bind(names),
            Some(queue) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "EXPLAIN {}",
                claim::CLAIM_QUEUE
            )))
            .bind(owner)
            .bind(30_000_i64)
            .bind(limit)
            .bind(names)
            .bind(queue.to_owned()),
        };
        explain_on(&self.claims, query).await
    }

    /// The query plan of a claim that resumes from a position (see
    /// [`PostgresStoreBuilder::claim_resume_after`](super::PostgresStoreBuilder::claim_resume_after)),
    /// as [`explain_claim`](Self::explain_claim): the position must be an index condition.
    pub async fn explain_resumed_claim(
        &self,
        limit: usize,
        queue: Option<&str>,
        names: &[&str],
    ) -> Result<String> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
        let text = if queue.is_some() {
            claim::CLAIM_QUEUE_FROM
        } else {
            claim::CLAIM_ANY_FROM
        };
        let query = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {text}")))
            .bind(Uuid::nil())
            .bind(30_000_i64)
            .bind(limit)
            .bind(names);
        let query = match queue {
            Some(queue) => query.bind(queue.to_owned()),
            None => query,
        };
        let query = query.bind(0_i32).bind(chrono::Utc::now()).bind(Uuid::nil());
        explain_on(&self.claims, query).await
    }

    /// The query plans of the looks before a resumed claim's position (see
    /// [`PostgresStoreBuilder::claim_resume_after`](super::PostgresStoreBuilder::claim_resume_after)),
    /// as [`explain_claim`](Self::explain_claim): the full look's, then the near look's.
    /// Each must walk the claim index in order — the full one from its head, the near one
    /// over a higher priority and the window before the position — the position as an index
    /// condition, and stop at the first due row.
    pub async fn explain_claim_look(
        &self,
        queue: Option<&str>,
        names: &[&str],
    ) -> Result<(String, String)> {
        let names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
        let full = self.explain_look(Reach::Full, queue, &names).await?;
        let near = self.explain_look(Reach::Near, queue, &names).await?;
        Ok((full, near))
    }

    async fn explain_look(
        &self,
        reach: Reach,
        queue: Option<&str>,
        names: &[String],
    ) -> Result<String> {
        let text = look::statement(reach, queue, &[]);
        let query =
            sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {text}"))).bind(names.to_vec());
        let query = match queue {
            Some(queue) => query.bind(queue.to_owned()),
            None => query,
        };
        let now = chrono::Utc::now();
        let query = query.bind(0_i32).bind(now).bind(Uuid::nil());
        let query = match reach {
            Reach::Near => query.bind(now - look::late()),
            Reach::Full => query,
        };
        explain_on(&self.claims, query).await
    }

    /// The query plan of the completion of `fences` (`EXPLAIN`, not executed), planned with
    /// its parameters as every completion is. For checking on a real database that the rows
    /// a completion moves are found by their primary key, never by a scan of the live
    /// partition, whatever its statistics say.
    pub async fn explain_completion(&self, fences: &[Fence]) -> Result<String> {
        let (ids, owners, attempts) = fence_columns(fences);
        let query = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {}", sql::COMPLETE)))
            .bind(ids)
            .bind(owners)
            .bind(attempts);
        self.explain(query).await
    }

    /// The query plan of the heartbeat's check for cancellations of the attempts `held`
    /// ([`WorkerStore::cancel_requested`], `EXPLAIN`, not executed). For checking on a real
    /// database that each task is looked up by its primary key.
    ///
    /// [`WorkerStore::cancel_requested`]: durable_core::store::WorkerStore::cancel_requested
    pub async fn explain_cancel_requested(&self, held: &[Fence]) -> Result<String> {
        let (ids, _, _) = fence_columns(held);
        let query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN {}",
            cancel::CANCEL_REQUESTED
        )))
        .bind(ids);
        self.explain(query).await
    }

    /// The query plans of the two counts that are not claims (`EXPLAIN`, not executed): the
    /// due backlog ([`WorkerStore::backlog`]) and the tasks of types outside `known`
    /// ([`WorkerStore::unclaimable`]). For checking on a real database that both read the
    /// partial claim index rather than the whole table.
    ///
    /// [`WorkerStore::backlog`]: durable_core::store::WorkerStore::backlog
    /// [`WorkerStore::unclaimable`]: durable_core::store::WorkerStore::unclaimable
    pub async fn explain_counts(&self, known: &[&str]) -> Result<(String, String)> {
        let backlog = self
            .explain(sqlx::query(sqlx::AssertSqlSafe(format!(
                "EXPLAIN {}",
                sql::BACKLOG
            ))))
            .await?;
        let known: Vec<String> = known.iter().map(|&n| n.to_owned()).collect();
        let unclaimable = self
            .explain(
                sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {}", sql::UNCLAIMABLE)))
                    .bind(60_000_i64)
                    .bind(known)
                    .bind(i64::from(durable_core::store::UNCLAIMABLE_SCAN)),
            )
            .await?;
        Ok((backlog, unclaimable))
    }

    /// The query plan of the counts per state
    /// ([`AdminStore::state_stats`](durable_core::store::AdminStore::state_stats), what the
    /// runtime's state gauges read), bound as they are read (`EXPLAIN`, not executed). For
    /// checking on a real database that each state is counted on its own partial index,
    /// never by a scan of the history partition.
    pub async fn explain_state_stats(&self) -> Result<String> {
        let query = overview::explain_states(&self.pool, overview::Due::Skipped).await?;
        self.explain(query).await
    }

    /// Runs an `EXPLAIN` on the store's pool and joins its lines.
    async fn explain(&self, query: Query<'static, Postgres, PgArguments>) -> Result<String> {
        explain_on(&self.pool, query).await
    }
}

/// Runs an `EXPLAIN` on `pool` (the claims' own, for a claim) and joins its lines.
async fn explain_on(pool: &PgPool, query: Query<'static, Postgres, PgArguments>) -> Result<String> {
    let pool = pool.clone();
    detached("explain", async move {
        let rows = query.fetch_all(&pool).await.map_err(Error::db("explain"))?;
        let lines = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::db("explain"))?;
        Ok(lines.join("\n"))
    })
    .await
}
