//! SQLite store: the embedded default. One file, WAL, every write serialized through one
//! connection so `SQLITE_BUSY` never reaches the caller; reads use a small pool.

mod builder;
mod cycle;
mod encode;
mod open;
#[cfg(test)]
mod plan;
mod rows;
mod sql;
mod writer_owner;

use std::sync::Arc;
use std::time::Duration;

use durable_core::{
    async_trait, ClaimRequest, ClaimedTask, Fence, NewTask, RescueReport, StateCounts, Store,
    TaskId, TaskRecord, WriteBatch, WriteOutcome, REQUEUE_LIMIT,
};
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};

use crate::error::{Error, Result};
use crate::util::{combined_write, detached, millis};
pub use builder::{Durability, SqliteStoreBuilder};
use cycle::{claim_on, complete_on, Cycle};
pub(crate) use encode::insert_on;
use encode::{bound_cycle_args, fences_json, names_json, now_ms, rows_json};
use rows::{fence_from_row, record_from_row};
use writer_owner::{Holder, WriterOwner};

#[derive(Debug)]
pub(super) struct Pools {
    pub(super) writer: SqlitePool,
    pub(super) reader: SqlitePool,
    /// Who holds a transaction from [`SqliteStore::begin`] on the writer connection.
    pub(super) owner: Arc<WriterOwner>,
}

/// Task store on one SQLite file (or `sqlite::memory:` for tests).
///
/// Writes go through one connection in `BEGIN IMMEDIATE` transactions: inside the process
/// they queue instead of colliding, and another process on the same file is waited for
/// (`busy_timeout`) instead of failing with `SQLITE_BUSY`.
///
/// Share [`writer_pool`](Self::writer_pool) with your application's own writes on the same
/// file (through [`begin`](Self::begin)) to keep that guarantee for them too.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> durable_sqlx::Result<()> {
/// use durable_core::Store;
/// use durable_sqlx::sqlite::SqliteStore;
///
/// let store = SqliteStore::connect("sqlite://app.db").await?; // created if missing
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) inner: Arc<Pools>,
}

impl SqliteStore {
    /// Settings for `url`: `sqlite://path/to/file.db`, `sqlite::memory:`, or a bare path.
    pub fn builder(url: impl Into<String>) -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            url: url.into(),
            durability: Durability::Full,
            readers: 4,
            busy_timeout: Duration::from_secs(10),
            acquire_timeout: Duration::from_secs(30),
        }
    }

    /// Opens `url` with default settings (creating the file if missing).
    pub async fn connect(url: impl Into<String>) -> Result<Self> {
        Self::builder(url).connect().await
    }

    /// The single-connection pool every write goes through.
    pub fn writer_pool(&self) -> &SqlitePool {
        &self.inner.writer
    }

    /// The pool for reads.
    pub fn reader_pool(&self) -> &SqlitePool {
        &self.inner.reader
    }

    /// Opens a `BEGIN IMMEDIATE` transaction on the writer connection, for the application's
    /// own writes together with [`enqueue_in`](crate::enqueue_in).
    ///
    /// # Cancel safety
    ///
    /// The `BEGIN` runs in a spawned task, so dropping this future (a client disconnect
    /// dropping a handler) cannot leave the pooled connection inside a transaction.
    ///
    /// # The only writer connection
    ///
    /// While the transaction is open, every other write of the process waits: keep it short.
    /// Write tasks in it with [`enqueue_in`](crate::enqueue_in) (`Durable::spawn_in`): an
    /// enqueue through the [`Client`](durable_core::Client) needs the connection this
    /// transaction holds. From the task that called `begin` (or, in a runtime's main future,
    /// the same thread), such an enqueue fails with
    /// [`Error::InsideWriterTransaction`](durable_core::Error::InsideWriterTransaction)
    /// instead of waiting; from another task it waits for the commit — so a task that awaits
    /// a second task enqueueing through the client, while holding the transaction, still
    /// waits until the writer's 30 s acquire timeout.
    pub async fn begin(&self) -> Result<Transaction<'static, Sqlite>> {
        let pool = self.inner.writer.clone();
        let owner = Arc::clone(&self.inner.owner);
        let holder = Holder::current();
        detached("begin", async move {
            let tx = pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(Error::db("begin"))?;
            // Before the transaction exists for anyone to drop: its release comes after.
            owner.hold(holder);
            Ok(tx)
        })
        .await
    }

    /// Runs one write transaction detached from the caller.
    async fn write<T, F>(&self, operation: &'static str, body: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> futures_core_boxed::BoxFuture<'c, Result<T>>
            + Send
            + 'static,
    {
        let pool = self.inner.writer.clone();
        detached(operation, async move {
            let mut tx = pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(Error::db(operation))?;
            let value = body(&mut tx).await?;
            tx.commit().await.map_err(Error::db(operation))?;
            Ok(value)
        })
        .await
    }
}

/// A boxed future alias without pulling in `futures`.
mod futures_core_boxed {
    pub(crate) type BoxFuture<'a, T> =
        std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
}

impl SqliteStore {
    /// The rows could not be encoded: nothing about them can be written, the rest of the
    /// cycle still can.
    async fn write_without_rows(&self, batch: WriteBatch<'_>, error: Error) -> WriteOutcome {
        let rest = WriteBatch::new().complete(batch.complete);
        let rest = match batch.claim {
            Some(claim) => rest.claim(claim),
            None => rest,
        };
        let outcome = Store::write(self, rest).await;
        WriteOutcome::new(Err(error.into()), outcome.completed, outcome.claimed)
    }
}

fn to_core<T>(r: Result<T>) -> durable_core::Result<T> {
    r.map_err(Into::into)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    /// Every write goes through the one writer connection.
    fn single_writer(&self) -> bool {
        true
    }

    /// Applies the embedded migrations missing from the file, in one `BEGIN IMMEDIATE`
    /// transaction on the writer connection: processes migrating one file at once wait for
    /// each other. Starts against a newer schema whose migrations accept this version, and
    /// fails naming both versions otherwise (see `docs/UPGRADING.md`).
    async fn migrate(&self) -> durable_core::Result<()> {
        let pool = self.inner.writer.clone();
        to_core(
            detached("migrate", async move {
                let migrate = &crate::migrate::sqlite::MIGRATOR;
                crate::migrate::sqlite::run(&pool, &migrate.migrations).await
            })
            .await,
        )
    }

    async fn insert(&self, tasks: &[NewTask]) -> durable_core::Result<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        let tasks = tasks.to_vec();
        to_core(
            self.write("insert", move |conn| {
                Box::pin(async move { insert_on(conn, &tasks).await })
            })
            .await,
        )
    }

    async fn claim(&self, request: &ClaimRequest) -> durable_core::Result<Vec<ClaimedTask>> {
        if request.is_empty() {
            return Ok(Vec::new());
        }
        let request = request.clone();
        to_core(
            self.write("claim", move |conn| {
                Box::pin(async move { claim_on(conn, &request).await })
            })
            .await,
        )
    }

    /// One `BEGIN IMMEDIATE` transaction for the whole cycle — completions, inserts, claim —
    /// sent as one multi-statement query: one commit (one fsync with `synchronous=FULL`) and
    /// one round trip to the connection's thread instead of three transactions of three.
    async fn write(&self, batch: WriteBatch<'_>) -> WriteOutcome {
        if batch.is_empty() {
            return WriteOutcome::new(Ok(()), Ok(Vec::new()), Ok(Vec::new()));
        }
        let now = now_ms();
        let claim = batch.claim.filter(|c| !c.is_empty()).cloned();
        let operation = match (batch.complete.is_empty(), batch.insert.is_empty(), &claim) {
            (false, true, None) => "complete",
            (true, false, None) => "insert",
            (true, true, Some(_)) => "claim",
            _ => "write",
        };
        if crate::util::chunks(batch.insert).len() > 1 {
            // Too large for one statement: the rows in a transaction of their own, written
            // in several, then the rest of the cycle.
            let inserted = Store::insert(self, batch.insert).await;
            let mut rest = batch;
            rest.insert = &[];
            let rest = Store::write(self, rest).await;
            return WriteOutcome::new(inserted, rest.completed, rest.claimed);
        }
        let pool = self.inner.writer.clone();
        let capped = claim.as_ref().is_some_and(|c| !c.capped.is_empty());
        if !capped
            && batch.insert.len() <= sql::MAX_BOUND_ROWS
            && batch.complete.len() <= sql::MAX_BOUND_ROWS
        {
            let args = match bound_cycle_args(&batch, now) {
                Ok(args) => args,
                Err(error) => return self.write_without_rows(batch, error).await,
            };
            let script = sql::cycle_script(
                (!batch.complete.is_empty()).then(|| sql::bucket(batch.complete.len())),
                (!batch.insert.is_empty()).then(|| sql::bucket(batch.insert.len())),
                claim.is_some(),
            );
            let cycle = Cycle {
                pool,
                operation,
                fences: batch.complete.to_vec(),
                claim,
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
        };
        if capped {
            combined_write(self, batch, cycle.stepwise(rows, now)).await
        } else {
            combined_write(self, batch, cycle.json(rows)).await
        }
    }

    async fn heartbeat(&self, held: &[Fence], lease: Duration) -> durable_core::Result<Vec<Fence>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let fences = fences_json(held);
        to_core(
            self.write("heartbeat", move |conn| {
                Box::pin(async move {
                    let now = now_ms();
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

    async fn complete(&self, fences: &[Fence]) -> durable_core::Result<Vec<TaskId>> {
        if fences.is_empty() {
            return Ok(Vec::new());
        }
        let fences = fences_json(fences);
        to_core(
            self.write("complete", move |conn| {
                Box::pin(async move { complete_on(conn, fences).await })
            })
            .await,
        )
    }

    async fn retry(
        &self,
        fence: &Fence,
        delay: Duration,
        error: &str,
    ) -> durable_core::Result<bool> {
        let fences = fences_json(std::slice::from_ref(fence));
        let error = error.to_owned();
        to_core(
            self.write("retry", move |conn| {
                Box::pin(async move {
                    let now = now_ms();
                    let done = sqlx::query(sql::RETRY)
                        .bind(fences)
                        .bind(now)
                        .bind(now + crate::util::delay_ms(delay))
                        .bind(error)
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("retry"))?;
                    Ok(done.rows_affected() == 1)
                })
            })
            .await,
        )
    }

    async fn fail(&self, fence: &Fence, error: &str) -> durable_core::Result<bool> {
        let fences = fences_json(std::slice::from_ref(fence));
        let error = error.to_owned();
        to_core(
            self.write("fail", move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(sql::FAIL)
                        .bind(fences)
                        .bind(now_ms())
                        .bind(error)
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("fail"))?;
                    Ok(done.rows_affected() == 1)
                })
            })
            .await,
        )
    }

    async fn requeue(&self, fences: &[Fence]) -> durable_core::Result<u64> {
        if fences.is_empty() {
            return Ok(0);
        }
        let fences = fences_json(fences);
        to_core(
            self.write("requeue", move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(sql::REQUEUE)
                        .bind(fences)
                        .bind(now_ms())
                        .bind(i64::from(REQUEUE_LIMIT))
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("requeue"))?;
                    Ok(done.rows_affected())
                })
            })
            .await,
        )
    }

    async fn mark_started(&self, fence: &Fence) -> durable_core::Result<bool> {
        let fences = fences_json(std::slice::from_ref(fence));
        to_core(
            self.write("mark started", move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(sql::MARK_STARTED)
                        .bind(fences)
                        .bind(now_ms())
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
        to_core(
            self.write("rescue", move |conn| {
                Box::pin(async move {
                    let now = now_ms();
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
                    Ok(RescueReport { requeued, failed })
                })
            })
            .await,
        )
    }

    async fn cancel(&self, id: TaskId) -> durable_core::Result<bool> {
        to_core(
            self.write("cancel", move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(sql::CANCEL)
                        .bind(id.to_string())
                        .bind(now_ms())
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("cancel"))?;
                    Ok(done.rows_affected() == 1)
                })
            })
            .await,
        )
    }

    async fn prune(&self, older_than: Duration, limit: u32) -> durable_core::Result<u64> {
        to_core(
            self.write("prune", move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(sql::PRUNE)
                        .bind(now_ms() - millis(older_than))
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

    async fn backlog(&self) -> durable_core::Result<u64> {
        let n: i64 = sqlx::query_scalar(sql::BACKLOG)
            .bind(now_ms())
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
            .bind(now_ms().saturating_sub(millis(waiting)))
            .bind(names_json(known)?)
            .bind(i64::from(durable_core::UNCLAIMABLE_SCAN))
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

    async fn counts(&self) -> durable_core::Result<StateCounts> {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql::COUNTS)
            .fetch_all(&self.inner.reader)
            .await
            .map_err(Error::db("counts"))?;
        to_core(crate::util::state_counts(rows))
    }
}
