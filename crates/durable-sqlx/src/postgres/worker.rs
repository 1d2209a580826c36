//! The worker protocol on PostgreSQL: [`WorkerStore`] for [`PostgresStore`].

use std::time::Duration;

use durable_core::store::{
    async_trait, Fence, KeyClaim, KeyTake, Maintenance, RescueReport, Wakeup, Wakeups, WorkerStore,
    WriteBatch, WriteOutcome,
};
use durable_core::{TaskId, WorkerId};
use futures_util::StreamExt;
use sqlx::Row;
use tokio::sync::mpsc;

use super::claim::{claim_some, complete_on, Claim};
use super::moved::again_if_moved;
use super::rows::{attempt_i32, count, fence_columns, insert_on, pooled};
use super::{listen, ms, sql, PostgresStore};
use crate::error::Error;

/// Cancellation notifications held for the runtime at most (more are found by its heartbeat).
const CANCEL_BUFFER: usize = 256;

#[async_trait]
impl WorkerStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    /// The system clock plus what a test clock moved `durable_now()` by. (The statements
    /// themselves take the database's clock.)
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// A task holding a `LISTEN` connection (opened with the pool's connect options, outside
    /// the pool) yields once per notification. When the connection drops it is
    /// re-established with backoff (100 ms doubling to 10 s), re-`LISTEN`s, and yields once
    /// in case notifications were missed meanwhile. The task ends when the stream is dropped.
    /// Cancellation notifications ([`Wakeup::Cancel`]) come on the same connection.
    fn wakeups(&self) -> Wakeups {
        // One slot: wakeups that arrive while one is pending are one wakeup.
        let (wake, wakes) = mpsc::channel(1);
        // Cancellations each name a task: room for a burst.
        let (cancel, cancels) = mpsc::channel(CANCEL_BUFFER);
        let options = (*self.pool.connect_options()).clone();
        tokio::spawn(listen::listen_loop(
            options,
            listen::Senders { wake, cancel },
        ));
        let wakes = futures_util::stream::unfold(wakes, |mut rx| async move {
            rx.recv().await.map(|()| (Wakeup::Due, rx))
        });
        let cancels = futures_util::stream::unfold(cancels, |mut rx| async move {
            rx.recv().await.map(|id| (Wakeup::Cancel(id), rx))
        });
        // Ends when the listener does (its wakeup sender dropped): the cancellations' stream
        // ends with it.
        futures_util::stream::select(wakes, cancels).boxed()
    }

    /// The parts run at once on separate pooled connections — completions, then the other
    /// outcomes, alongside the insert, the claim after the insert so it sees the new rows — each its own
    /// transaction. PostgreSQL commits concurrent transactions together (its WAL flushes
    /// are group-committed), so parallel statements beat one combined statement here: a
    /// cycle costs about one round trip and one commit wait.
    ///
    /// Each part is one autocommit statement, run in the caller's task rather than a
    /// detached one: the client's writer already is a task no request can cancel, and a
    /// spawn per part was a scheduler hop on every request's path. (A dropped statement
    /// cannot leave a transaction open; only a claim over capped queues needs a
    /// transaction, and that one stays detached.)
    async fn write(&self, batch: WriteBatch<'_>) -> WriteOutcome {
        let pool = &self.pool;
        if !batch.complete.is_empty() || !batch.settle.is_empty() {
            self.pace.note_active();
        }
        // Completions before the other outcomes: an attempt that completed while shutdown
        // was handing it back ran, and its completion must win over the hand-back.
        let outcomes = async {
            let completed = if batch.complete.is_empty() {
                Ok(Vec::new())
            } else {
                pooled(pool, "complete", async |conn| {
                    complete_on(conn, fence_columns(batch.complete)).await
                })
                .await
            };
            let settled = if batch.settle.is_empty() {
                Ok(Vec::new())
            } else {
                self.settle(batch.settle).await
            };
            (completed, settled)
        };
        let insert_then_claim = async {
            let inserted = if !batch.responses.is_empty() {
                // Idempotent requests' responses commit with their tasks: one transaction.
                self.insert_with_responses(batch.insert, batch.responses)
                    .await
            } else if batch.insert.is_empty() {
                Ok(Vec::new())
            } else if crate::util::chunks(batch.insert).len() > 1
                || crate::unique::any_unique(batch.insert)
            {
                // Several statements need a transaction: a detached one.
                self.insert_rows(batch.insert).await
            } else {
                pooled(pool, "insert", async |conn| {
                    insert_on(conn, batch.insert).await
                })
                .await
            };
            let claimed = match batch.claim {
                Some(request) if !request.is_empty() && request.capped.is_empty() => {
                    pooled(&self.claims, "claim", async |conn| {
                        let claim = Claim {
                            request,
                            resume: &self.resume,
                            looks: &self.claims,
                            own_transaction: true,
                        };
                        claim_some(conn, &claim, request.limit, None, &[]).await
                    })
                    .await
                }
                Some(request) if !request.is_empty() => self.claim_rows(request).await,
                _ => Ok(Vec::new()),
            };
            (inserted, claimed)
        };
        let ((completed, settled), (inserted, claimed)) = tokio::join!(outcomes, insert_then_claim);
        if claimed.as_ref().is_ok_and(|rows| !rows.is_empty()) {
            self.pace.note_active();
        }
        WriteOutcome::empty()
            .with_inserted(inserted)
            .with_completed(completed)
            .with_settled(settled)
            .with_claimed(claimed)
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
        let (ids, owners, attempts) = fence_columns(held);
        self.run("heartbeat", move |pool| async move {
            let rows = again_if_moved(|| {
                sqlx::query(sql::HEARTBEAT)
                    .bind(&ids)
                    .bind(&owners)
                    .bind(&attempts)
                    .bind(ms(lease))
                    .fetch_all(&pool)
            })
            .await
            .map_err(Error::db("heartbeat"))?;
            rows.iter()
                .map(|r| {
                    let db = || Error::db("heartbeat");
                    Ok(Fence {
                        id: TaskId::from_uuid(r.try_get("id").map_err(db())?),
                        owner: WorkerId::from_uuid(r.try_get("lease_owner").map_err(db())?),
                        attempt: count(r.try_get("attempts").map_err(db())?),
                    })
                })
                .collect()
        })
        .await
    }

    async fn cancel_requested(&self, held: &[Fence]) -> durable_core::Result<Vec<TaskId>> {
        self.cancel_requested_among(held).await
    }

    async fn mark_started(&self, fence: &Fence) -> durable_core::Result<bool> {
        let fence = *fence;
        self.run("mark started", move |pool| async move {
            let done = again_if_moved(|| {
                sqlx::query(sql::MARK_STARTED)
                    // Planned with its parameters at each run, not as a cached generic plan
                    // (see "Single-row statements, planned per run" in
                    // `sql.rs`).
                    .persistent(false)
                    .bind(fence.id.as_uuid())
                    .bind(fence.owner.as_uuid())
                    .bind(attempt_i32(fence.attempt))
                    .execute(&pool)
            })
            .await
            .map_err(Error::db("mark started"))?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn rescue_expired(&self) -> durable_core::Result<RescueReport> {
        self.run("rescue", move |pool| async move {
            let row = again_if_moved(|| sqlx::query(sql::RESCUE).fetch_one(&pool))
                .await
                .map_err(Error::db("rescue"))?;
            let requeued: i64 = row.try_get("requeued").map_err(Error::db("rescue"))?;
            let failed: i64 = row.try_get("failed").map_err(Error::db("rescue"))?;
            let cancelled: i64 = row.try_get("cancelled").map_err(Error::db("rescue"))?;
            Ok(RescueReport {
                requeued: requeued as u64,
                failed: failed as u64,
                cancelled: cancelled as u64,
            })
        })
        .await
    }

    /// Vacuums the live partition when dead row versions pile up there (see
    /// `docs/POSTGRES.md`, "The live partition and the history"). Looks only when this
    /// store claimed or finished tasks since the last round: an idle instance sends nothing.
    async fn maintain(&self) -> durable_core::Result<Maintenance> {
        let pace = std::sync::Arc::clone(&self.pace);
        self.run("maintenance", move |pool| async move {
            super::maintain::maintain_on(&pool, &pace).await
        })
        .await
    }

    async fn backlog(&self) -> durable_core::Result<u64> {
        self.run("backlog", move |pool| async move {
            let n: i64 = sqlx::query_scalar(sql::BACKLOG)
                .fetch_one(&pool)
                .await
                .map_err(Error::db("backlog"))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn unclaimable(
        &self,
        known: &[String],
        waiting: Duration,
    ) -> durable_core::Result<Vec<(String, u64)>> {
        let known = known.to_vec();
        self.run("unclaimable", move |pool| async move {
            let rows: Vec<(String, i64)> = sqlx::query_as(sql::UNCLAIMABLE)
                .bind(ms(waiting))
                .bind(known)
                .bind(i64::from(durable_core::store::UNCLAIMABLE_SCAN))
                .fetch_all(&pool)
                .await
                .map_err(Error::db("unclaimable"))?;
            Ok(rows
                .into_iter()
                .map(|(name, n)| (name, u64::try_from(n).unwrap_or(0)))
                .collect())
        })
        .await
    }
}
