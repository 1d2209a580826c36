//! The worker protocol on SQLite: [`WorkerStore`] for [`SqliteStore`].

use std::time::Duration;

use durable_core::store::{
    async_trait, CommitMode, Fence, KeyClaim, KeyTake, RescueReport, Wakeup, Wakeups, WorkerStore,
    WriteBatch, WriteOutcome, UNCLAIMABLE_SCAN,
};
use durable_core::TaskId;
use futures_util::StreamExt as _;

use super::combined::combined_write;
use super::cycle::Cycle;
use super::encode::{bound_cycle_args, fences_json, names_json, rows_json};
use super::rows::fence_from_row;
use super::{script, sql, to_core, SqliteStore};
use crate::error::Error;
use crate::util::millis;

impl SqliteStore {
    /// One `BEGIN IMMEDIATE` transaction for the whole cycle — completions, inserts, claim —
    /// sent as one multi-statement query: one commit (one fsync with `synchronous=FULL`) and
    /// one round trip to the connection's thread instead of three transactions of three.
    async fn write_cycle(&self, batch: WriteBatch<'_>) -> WriteOutcome {
        if batch.is_empty() {
            return WriteOutcome::empty();
        }
        let now = self.now_ms();
        let claim = batch.claim.filter(|c| !c.is_empty()).cloned();
        let operation = match (batch.complete.is_empty(), batch.insert.is_empty(), &claim) {
            (false, true, None) => "complete",
            (true, false, None) => "insert",
            (true, true, Some(_)) => "claim",
            _ => "write",
        };
        if !batch.responses.is_empty() {
            // Idempotent requests' responses commit with their tasks, in a transaction of
            // their own (a statement per record), then the rest of the cycle.
            let inserted = self
                .insert_with_responses(batch.insert, batch.responses)
                .await;
            let mut rest = batch;
            rest.insert = &[];
            rest.responses = &[];
            return Box::pin(self.write_cycle(rest))
                .await
                .with_inserted(inserted);
        }
        if crate::util::chunks(batch.insert).len() > 1 || crate::unique::any_unique(batch.insert) {
            // Too large for one statement, or rows with unique keys (whose survivors take a
            // lookup): the rows in a transaction of their own, then the rest of the cycle.
            let inserted = self.insert_rows(batch.insert).await;
            let mut rest = batch;
            rest.insert = &[];
            return Box::pin(self.write_cycle(rest))
                .await
                .with_inserted(inserted);
        }
        let pool = self.inner.writer.clone();
        let capped = claim.as_ref().is_some_and(|c| !c.capped.is_empty());
        if !capped
            && batch.insert.len() <= script::MAX_BOUND_ROWS
            && batch.complete.len() <= script::MAX_BOUND_ROWS
        {
            let args = match bound_cycle_args(&batch, now) {
                Ok(args) => args,
                Err(error) => return self.write_without_rows(batch, error).await,
            };
            let script = script::cycle_script(
                (!batch.complete.is_empty()).then(|| script::bucket(batch.complete.len())),
                (!batch.insert.is_empty()).then(|| script::bucket(batch.insert.len())),
                claim.is_some(),
            );
            let cycle = Cycle {
                pool,
                operation,
                fences: batch.complete.to_vec(),
                claim,
                clock: self.inner.clock.clone(),
            };
            return combined_write(self, batch, cycle.bound(script, args)).await;
        }
        let rows = match (!batch.insert.is_empty())
            .then(|| rows_json(batch.insert, now))
            .transpose()
        {
            Ok(rows) => rows,
            Err(error) => return self.write_without_rows(batch, error).await,
        };
        let cycle = Cycle {
            pool,
            operation,
            fences: batch.complete.to_vec(),
            claim,
            clock: self.inner.clock.clone(),
        };
        if capped {
            combined_write(self, batch, cycle.stepwise(rows, now)).await
        } else {
            combined_write(self, batch, cycle.json(rows)).await
        }
    }
}

#[async_trait]
impl WorkerStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    /// Every write goes through the one writer connection, whose statements run on a thread
    /// of SQLite's (not on a runtime's I/O driver).
    fn commit_mode(&self) -> CommitMode {
        CommitMode::Serial
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.now()
    }

    /// Tasks an operator made due in this process (a retry, a requeue); inserts wake their
    /// runtime through the client, and other processes on the file are found by polling.
    fn wakeups(&self) -> Wakeups {
        let due = self.inner.due.subscribe();
        futures_util::stream::unfold(due, |mut due| async move {
            due.changed().await.ok().map(|()| (Wakeup::Due, due))
        })
        .boxed()
    }

    /// The cycle — completions, inserts and the claim — in one transaction, then the other
    /// outcomes (rare: a failed attempt, a shutdown's hand-back) in one of their own. In that
    /// order: an attempt that completed while shutdown was handing it back ran, and its
    /// completion must win over the hand-back.
    async fn write(&self, batch: WriteBatch<'_>) -> WriteOutcome {
        let mut cycle = batch;
        cycle.settle = &[];
        let outcome = self.write_cycle(cycle).await;
        let settled = if batch.settle.is_empty() {
            Ok(Vec::new())
        } else {
            self.settle(batch.settle).await
        };
        outcome.with_settled(settled)
    }

    async fn take_key(&self, take: &KeyTake) -> durable_core::Result<KeyClaim> {
        self.take_idempotency_key(take).await
    }

    async fn release_key(&self, key_hash: &str, token: &str) -> durable_core::Result<bool> {
        self.release_idempotency_key(key_hash, token).await
    }

    async fn purge_keys(&self, limit: u32) -> durable_core::Result<u64> {
        self.purge_idempotency_keys(limit).await
    }

    async fn heartbeat(&self, held: &[Fence], lease: Duration) -> durable_core::Result<Vec<Fence>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let fences = fences_json(held);
        let clock = self.inner.clock.clone();
        to_core(
            self.transaction("heartbeat", move |conn| {
                Box::pin(async move {
                    let now = clock.now_ms();
                    let rows = sqlx::query(sql::HEARTBEAT)
                        .bind(fences)
                        .bind(now + millis(lease))
                        .bind(now)
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(Error::db("heartbeat"))?;
                    rows.iter().map(fence_from_row).collect()
                })
            })
            .await,
        )
    }

    async fn cancel_requested(&self, held: &[Fence]) -> durable_core::Result<Vec<TaskId>> {
        self.cancel_requested_among(held).await
    }

    async fn mark_started(&self, fence: &Fence) -> durable_core::Result<bool> {
        let fences = fences_json(std::slice::from_ref(fence));
        let clock = self.inner.clock.clone();
        to_core(
            self.transaction("mark started", move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(sql::MARK_STARTED)
                        .bind(fences)
                        .bind(clock.now_ms())
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("mark started"))?;
                    Ok(done.rows_affected() == 1)
                })
            })
            .await,
        )
    }

    /// Fails when the calling task holds a transaction from [`SqliteStore::begin`].
    async fn check_enqueue(&self) -> durable_core::Result<()> {
        self.inner.owner.check().await
    }

    async fn rescue_expired(&self) -> durable_core::Result<RescueReport> {
        let clock = self.inner.clock.clone();
        to_core(
            self.transaction("rescue", move |conn| {
                Box::pin(async move {
                    let now = clock.now_ms();
                    let cancelled = sqlx::query(super::cancel::RESCUE_CANCEL)
                        .bind(now)
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("rescue"))?
                        .rows_affected();
                    let failed = sqlx::query(sql::RESCUE_FAIL)
                        .bind(now)
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("rescue"))?
                        .rows_affected();
                    let requeued = sqlx::query(sql::RESCUE_REQUEUE)
                        .bind(now)
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("rescue"))?
                        .rows_affected();
                    Ok(RescueReport {
                        requeued,
                        failed,
                        cancelled,
                    })
                })
            })
            .await,
        )
    }

    async fn backlog(&self) -> durable_core::Result<u64> {
        let n: i64 = sqlx::query_scalar(sql::BACKLOG)
            .bind(self.now_ms())
            .fetch_one(&self.inner.reader)
            .await
            .map_err(Error::db("backlog"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn unclaimable(
        &self,
        known: &[String],
        waiting: Duration,
    ) -> durable_core::Result<Vec<(String, u64)>> {
        let rows: Vec<(Vec<u8>, i64)> = sqlx::query_as(sql::UNCLAIMABLE)
            .bind(self.now_ms().saturating_sub(millis(waiting)))
            .bind(names_json(known)?)
            .bind(i64::from(UNCLAIMABLE_SCAN))
            .fetch_all(&self.inner.reader)
            .await
            .map_err(Error::db("unclaimable"))?;
        Ok(rows
            .into_iter()
            .map(|(name, n)| {
                let name = String::from_utf8_lossy(&name).into_owned();
                (name, u64::try_from(n).unwrap_or(0))
            })
            .collect())
    }
}
