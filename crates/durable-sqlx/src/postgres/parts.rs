//! The parts of a writer cycle that are not one pooled statement: a large insert, a claim
//! over capped queues, and attempts' outcomes other than completion.

use durable_core::store::{ClaimRequest, ClaimedTask, NewTask, Outcome, Settle, REQUEUE_LIMIT};
use durable_core::TaskId;
use sqlx::Row;

use super::claim::{claim_on, claim_some, Claim};
use super::moved::again_if_moved;
use super::rows::{attempt_i32, clean_text, fence_columns, insert_on};
use super::{ms, sql, PostgresStore};
use crate::error::Error;

impl PostgresStore {
    pub(crate) async fn insert_rows(&self, tasks: &[NewTask]) -> durable_core::Result<Vec<TaskId>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let tasks = tasks.to_vec();
        self.run("insert", move |pool| async move {
            let mut conn = pool.acquire().await.map_err(Error::db("insert"))?;
            insert_on(&mut conn, &tasks).await
        })
        .await
    }

    pub(super) async fn claim_rows(
        &self,
        request: &ClaimRequest,
    ) -> durable_core::Result<Vec<ClaimedTask>> {
        if request.is_empty() {
            return Ok(Vec::new());
        }
        let request = request.clone();
        let resume = std::sync::Arc::clone(&self.resume);
        // On the claims' own connections (see `claim_pool`).
        let pool = self.claims.clone();
        crate::util::detached("claim", async move {
            if request.capped.is_empty() {
                // The common case: one statement, its own transaction.
                let mut conn = pool.acquire().await.map_err(Error::db("claim"))?;
                let claim = Claim {
                    request: &request,
                    resume: &resume,
                    looks: &pool,
                    own_transaction: true,
                };
                return claim_some(&mut conn, &claim, request.limit, None, &[]).await;
            }
            let mut tx = pool.begin().await.map_err(Error::db("claim"))?;
            let claim = Claim {
                request: &request,
                resume: &resume,
                looks: &pool,
                own_transaction: false,
            };
            let claimed = claim_on(&mut tx, &claim).await?;
            tx.commit().await.map_err(Error::db("claim"))?;
            Ok(claimed)
        })
        .await
        .map_err(Into::into)
    }

    /// Writes outcomes other than completion, one statement each (a shutdown's requeue: one
    /// for all), in one detached task; returns the ids whose write applied. Retries due at
    /// once and requeued rows notify the other instances.
    pub(super) async fn settle(&self, outcomes: &[Settle]) -> durable_core::Result<Vec<TaskId>> {
        let outcomes = outcomes.to_vec();
        self.run("settle", move |pool| async move {
            let mut applied = Vec::new();
            let mut requeue = Vec::new();
            for Settle { fence, outcome } in outcomes {
                let (id, owner, attempt) = (
                    fence.id.as_uuid(),
                    fence.owner.as_uuid(),
                    attempt_i32(fence.attempt),
                );
                let done = match outcome {
                    Outcome::Retry { delay, error } => {
                        let error = clean_text(&error);
                        let n: i64 = again_if_moved(|| {
                            sqlx::query_scalar(sql::RETRY)
                                // Planned with its parameters at each run, not as a cached generic plan
                                // (see "Single-row statements, planned per run" in
                                // `sql.rs`).
                                .persistent(false)
                                .bind(id)
                                .bind(owner)
                                .bind(attempt)
                                .bind(ms(delay))
                                .bind(&error)
                                .fetch_one(&pool)
                        })
                        .await
                        .map_err(Error::db("retry"))?;
                        n == 1
                    }
                    Outcome::Failed { error } => {
                        let error = clean_text(&error);
                        again_if_moved(|| {
                            sqlx::query(sql::FAIL)
                                // Planned with its parameters at each run, not as a cached generic plan
                                // (see "Single-row statements, planned per run" in
                                // `sql.rs`).
                                .persistent(false)
                                .bind(id)
                                .bind(owner)
                                .bind(attempt)
                                .bind(&error)
                                .execute(&pool)
                        })
                        .await
                        .map_err(Error::db("fail"))?
                        .rows_affected()
                            == 1
                    }
                    Outcome::Requeued => {
                        requeue.push(fence);
                        continue;
                    }
                    Outcome::Cancelled { error } => {
                        super::cancel::write_cancelled(&pool, &fence, &error).await?
                    }
                    Outcome::Snoozed { delay } => {
                        super::cancel::write_snoozed(&pool, &fence, delay).await?
                    }
                    // A variant this store does not know: leave the row to its lease.
                    _ => continue,
                };
                if done {
                    applied.push(fence.id);
                }
            }
            if !requeue.is_empty() {
                let (ids, owners, attempts) = fence_columns(&requeue);
                let row = again_if_moved(|| {
                    sqlx::query(sql::REQUEUE)
                        .bind(&ids)
                        .bind(&owners)
                        .bind(&attempts)
                        .bind(i32::try_from(REQUEUE_LIMIT).unwrap_or(i32::MAX))
                        .fetch_one(&pool)
                })
                .await
                .map_err(Error::db("requeue"))?;
                let ids: Vec<uuid::Uuid> = row.try_get("ids").map_err(Error::db("requeue"))?;
                applied.extend(ids.into_iter().map(TaskId::from_uuid));
            }
            Ok(applied)
        })
        .await
    }
}
