//! The parts of a writer cycle written one by one, each in a transaction of its own: inserts
//! too large for one statement, a cycle whose combined transaction failed in one part, and
//! attempts' outcomes other than completion.

use durable_core::store::{
    ClaimRequest, ClaimedTask, Fence, NewTask, Outcome, Settle, WriteBatch, WriteOutcome,
    REQUEUE_LIMIT,
};
use durable_core::TaskId;

use super::cycle::{claim_on, complete_on};
use super::encode::{fences_json, insert_on};
use super::{sql, to_core, SqliteStore};
use crate::error::Error;

impl SqliteStore {
    /// Each part of `batch` in a transaction of its own: outcomes, insert, claim.
    pub(super) async fn write_parts(&self, batch: WriteBatch<'_>) -> WriteOutcome {
        let completed = if batch.complete.is_empty() {
            Ok(Vec::new())
        } else {
            self.complete_fences(batch.complete).await
        };
        let settled = if batch.settle.is_empty() {
            Ok(Vec::new())
        } else {
            self.settle(batch.settle).await
        };
        let inserted = if batch.insert.is_empty() {
            Ok(Vec::new())
        } else {
            self.insert_rows(batch.insert).await
        };
        let claimed = match batch.claim {
            Some(request) if !request.is_empty() => self.claim_rows(request).await,
            _ => Ok(Vec::new()),
        };
        WriteOutcome::empty()
            .with_inserted(inserted)
            .with_completed(completed)
            .with_settled(settled)
            .with_claimed(claimed)
    }

    /// The rows could not be encoded: nothing about them can be written, the rest of the
    /// cycle still can.
    pub(super) async fn write_without_rows(
        &self,
        batch: WriteBatch<'_>,
        error: Error,
    ) -> WriteOutcome {
        let mut rest = batch;
        rest.insert = &[];
        self.write_parts(rest)
            .await
            .with_inserted(Err(error.into()))
    }

    /// Inserts `tasks` in one transaction (several statements for a large batch); returns
    /// each row's surviving id.
    pub(crate) async fn insert_rows(&self, tasks: &[NewTask]) -> durable_core::Result<Vec<TaskId>> {
        let tasks = tasks.to_vec();
        let clock = self.inner.clock.clone();
        to_core(
            self.transaction("insert", move |conn| {
                Box::pin(async move { insert_on(conn, &tasks, clock.now_ms()).await })
            })
            .await,
        )
    }

    pub(super) async fn claim_rows(
        &self,
        request: &ClaimRequest,
    ) -> durable_core::Result<Vec<ClaimedTask>> {
        let request = request.clone();
        let clock = self.inner.clock.clone();
        to_core(
            self.transaction("claim", move |conn| {
                Box::pin(async move { claim_on(conn, &request, clock.now_ms()).await })
            })
            .await,
        )
    }

    async fn complete_fences(&self, fences: &[Fence]) -> durable_core::Result<Vec<TaskId>> {
        let fences = fences_json(fences);
        let clock = self.inner.clock.clone();
        to_core(
            self.transaction("complete", move |conn| {
                Box::pin(async move { complete_on(conn, fences, clock.now_ms()).await })
            })
            .await,
        )
    }

    /// Writes outcomes other than completion in one transaction; returns the ids whose write
    /// applied. Retries and failures are rare (one statement each); a shutdown's requeue is
    /// one statement for all.
    pub(super) async fn settle(&self, outcomes: &[Settle]) -> durable_core::Result<Vec<TaskId>> {
        let outcomes = outcomes.to_vec();
        let clock = self.inner.clock.clone();
        to_core(
            self.transaction("settle", move |conn| {
                Box::pin(async move {
                    let now = clock.now_ms();
                    let mut applied = Vec::new();
                    let mut requeue = Vec::new();
                    for Settle { fence, outcome } in &outcomes {
                        let one = fences_json(std::slice::from_ref(fence));
                        let query = match outcome {
                            Outcome::Retry { delay, error } => sqlx::query(sql::RETRY)
                                .bind(one)
                                .bind(now)
                                .bind(now + crate::util::delay_ms(*delay))
                                .bind(error.clone()),
                            Outcome::Failed { error } => sqlx::query(sql::FAIL)
                                .bind(one)
                                .bind(now)
                                .bind(error.clone()),
                            Outcome::Requeued => {
                                requeue.push(*fence);
                                continue;
                            }
                            Outcome::Cancelled { error } => {
                                if super::cancel::write_cancelled(conn, fence, now, error).await? {
                                    applied.push(fence.id);
                                }
                                continue;
                            }
                            Outcome::Snoozed { delay } => {
                                if super::cancel::write_snoozed(conn, fence, now, *delay).await? {
                                    applied.push(fence.id);
                                }
                                continue;
                            }
                            // A variant this store does not know: leave the row to its lease.
                            _ => continue,
                        };
                        let done = query
                            .execute(&mut *conn)
                            .await
                            .map_err(Error::db("settle"))?;
                        if done.rows_affected() == 1 {
                            applied.push(fence.id);
                        }
                    }
                    if !requeue.is_empty() {
                        let ids: Vec<String> = sqlx::query_scalar(sql::REQUEUE)
                            .bind(fences_json(&requeue))
                            .bind(now)
                            .bind(i64::from(REQUEUE_LIMIT))
                            .fetch_all(&mut *conn)
                            .await
                            .map_err(Error::db("requeue"))?;
                        let ids = ids.into_iter().map(Ok::<_, std::convert::Infallible>);
                        applied.extend(super::cycle::fences_among(&requeue, ids));
                    }
                    Ok(applied)
                })
            })
            .await,
        )
    }
}
