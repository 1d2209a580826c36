//! PostgreSQL store: several application instances on one database.
//!
//! - **Claims** are one statement: a materialized CTE picks due `pending` rows in claim order
//!   with `FOR UPDATE SKIP LOCKED`, the `UPDATE` takes exactly those (per-queue caps: one
//!   such statement per capped queue, in one transaction).
//! - **Batches** are one statement each: `insert` binds typed arrays and `unnest`s them;
//!   `heartbeat`, `complete` and `requeue` take every fence at once. Every worker write is
//!   fenced on `(id, lease_owner, attempts)` and `state = 'processing'`.
//! - **Times** come from the database's clock (`now()`), so instances with skewed clocks agree
//!   on leases. (A `run_at` given at enqueue is the application's absolute time.)
//! - **Wakeups** across instances: an insert of due rows sends one `NOTIFY` per transaction;
//!   [`Store::listen`] keeps a `LISTEN` connection (re-established with backoff) and wakes the
//!   runtime. A hint only: the runtime keeps polling.
//! - **Schemas**: every statement uses unqualified names resolved through the connection's
//!   `search_path`; [`PostgresStoreBuilder::schema`] puts a schema of its own in front of it
//!   (and creates the schema), so tasks and the `_durable_migrations` table can live there.
//! - **Cancel safety**: every transaction runs in a spawned task (sqlx issue 4393), including
//!   the one [`PostgresStore::begin`] hands out.
//!
//! See `docs/POSTGRES.md` for running several instances, pool sizing and server settings.
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use durable_core::{Registry, Runtime, Store};
//! use durable_sqlx::postgres::PostgresStore;
//! use std::time::Duration;
//!
//! let store = PostgresStore::builder("postgres://app@db/app")
//!     .schema("durable") // tables in their own schema (created if missing)
//!     .application_name("billing-worker")
//!     .max_connections(10)
//!     .connect()
//!     .await?;
//! store.migrate().await?; // safe when several instances start at once
//! let runtime = Runtime::builder(store.clone(), Registry::new())
//!     .poll_interval(Duration::from_secs(5)) // NOTIFY is the fast path; polling the fallback
//!     .start();
//! // ... serve ...
//! runtime.shutdown(Duration::from_secs(10)).await;
//! # Ok(()) }
//! ```

mod builder;
mod claim;
mod explain;
mod listen;
mod rows;
mod search_path;
mod sql;

use std::sync::Arc;
use std::time::Duration;

use durable_core::{
    async_trait, CancellationToken, ClaimRequest, ClaimedTask, Fence, NewTask, RescueReport,
    StateCounts, Store, TaskId, TaskRecord, WorkerId, WriteBatch, WriteOutcome, REQUEUE_LIMIT,
};
use sqlx::postgres::PgConnectOptions;
use sqlx::{PgPool, Postgres, Row, Transaction};
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::util::detached;
pub use builder::PostgresStoreBuilder;
use builder::{quote_ident, Source};
use claim::{claim_on, claim_some, complete_on};
pub(crate) use rows::insert_on;
use rows::{attempt_i32, clean_text, count, fence_columns, pooled, record_from_row};

/// The `application_name` of the store's connections unless the URL or the builder sets one.
pub const DEFAULT_APPLICATION_NAME: &str = "axum-durable";

/// Default `statement_timeout` of the store's connections.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default idle time after which a pooled connection is pinged before use.
pub const DEFAULT_PING_AFTER_IDLE: Duration = Duration::from_secs(10);

/// Milliseconds of a duration for an `int8 * interval '1 millisecond'` parameter, capped
/// (about 100 years) so an absurd lease, delay or retention cannot overflow PostgreSQL's
/// interval arithmetic.
fn ms(d: Duration) -> i64 {
    crate::util::delay_ms(d)
}

/// Task store on PostgreSQL, for one or many application instances.
///
/// Cheap to clone (the pool is shared). Build it with [`connect`](Self::connect),
/// [`builder`](Self::builder) or [`from_pool`](Self::from_pool), then call
/// [`migrate`](Store::migrate) once at startup.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use durable_core::Store;
/// use durable_sqlx::postgres::PostgresStore;
///
/// let store = PostgresStore::connect("postgres://app@localhost/app").await?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Settings for `url` (`postgres://user:password@host:port/database?options`).
    pub fn builder(url: impl Into<String>) -> PostgresStoreBuilder {
        Self::builder_from(Source::Url(url.into()))
    }

    /// Settings starting from connect options built by the application (TLS, sockets...).
    pub fn builder_with_options(options: PgConnectOptions) -> PostgresStoreBuilder {
        Self::builder_from(Source::Options(Box::new(options)))
    }

    fn builder_from(source: Source) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            source,
            schema: None,
            application_name: None,
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: None,
            ping_after_idle: DEFAULT_PING_AFTER_IDLE,
        }
    }

    /// Opens `url` with default settings.
    pub async fn connect(url: impl Into<String>) -> Result<Self> {
        Self::builder(url).connect().await
    }

    /// A store on an existing pool (for example the application's own). Its connect options
    /// (`search_path`, `application_name`) are the store's; the `LISTEN` connection is opened
    /// with the same options, outside the pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The connection pool, for the application's own queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Opens a transaction on the store's pool, for the application's own writes together
    /// with [`enqueue_in`](crate::enqueue_in): the tasks exist only if it commits, and the
    /// `NOTIFY` that wakes other instances is sent at that commit.
    ///
    /// # Cancel safety
    ///
    /// The `BEGIN` runs in a spawned task, so dropping this future (a client disconnect
    /// dropping a handler) cannot return the pooled connection still inside a transaction
    /// (sqlx issue 4393). Dropping the returned transaction rolls it back.
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        let pool = self.pool.clone();
        detached("begin", async move {
            pool.begin().await.map_err(Error::db("begin"))
        })
        .await
    }

    /// Runs one operation on the pool in a spawned task (see [`detached`]).
    async fn run<T, F, Fut>(&self, operation: &'static str, body: F) -> durable_core::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(PgPool) -> Fut,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        detached(operation, body(self.pool.clone()))
            .await
            .map_err(Into::into)
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    /// Starts a task holding a `LISTEN` connection (opened with the pool's connect options,
    /// outside the pool) that calls `wake.notify_one()` per notification. When the
    /// connection drops it is re-established with backoff (100 ms doubling to 10 s) and
    /// re-`LISTEN`s, and wakes once in case notifications were missed meanwhile. Stops when
    /// `stop` is cancelled.
    fn listen(&self, wake: Arc<Notify>, stop: CancellationToken) {
        let options = (*self.pool.connect_options()).clone();
        tokio::spawn(listen::listen_loop(options, wake, stop));
    }

    /// Applies the embedded migrations missing from the database on a dedicated connection,
    /// recording them in `_durable_migrations` in the first schema of the `search_path`. A
    /// database-wide advisory lock (sqlx's) is held meanwhile, so instances starting together
    /// apply each once; the connection is closed afterwards, so a failed run cannot leave the
    /// lock held. Starts against a newer schema whose migrations accept this version, and
    /// fails naming both versions otherwise (see `docs/UPGRADING.md`).
    async fn migrate(&self) -> durable_core::Result<()> {
        // Without a statement timeout: a migration on a large table may take its time. (The
        // last `-c` of the startup options wins.)
        let options = (*self.pool.connect_options())
            .clone()
            .options([("statement_timeout", 0)]);
        self.run("migrate", move |_| async move {
            let migrate = &crate::migrate::postgres::MIGRATOR;
            crate::migrate::postgres::run(&options, &migrate.migrations).await
        })
        .await
    }

    async fn insert(&self, tasks: &[NewTask]) -> durable_core::Result<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        let tasks = tasks.to_vec();
        self.run("insert", move |pool| async move {
            let mut conn = pool.acquire().await.map_err(Error::db("insert"))?;
            insert_on(&mut conn, &tasks).await
        })
        .await
    }

    async fn claim(&self, request: &ClaimRequest) -> durable_core::Result<Vec<ClaimedTask>> {
        if request.is_empty() {
            return Ok(Vec::new());
        }
        let request = request.clone();
        self.run("claim", move |pool| async move {
            if request.capped.is_empty() {
                // The common case: one statement, its own transaction.
                let mut conn = pool.acquire().await.map_err(Error::db("claim"))?;
                return claim_some(&mut conn, &request, request.limit, None, &[]).await;
            }
            let mut tx = pool.begin().await.map_err(Error::db("claim"))?;
            let claimed = claim_on(&mut tx, &request).await?;
            tx.commit().await.map_err(Error::db("claim"))?;
            Ok(claimed)
        })
        .await
    }

    /// The parts run at once on separate pooled connections — completions alongside the
    /// insert, the claim after the insert so it sees the new rows — each its own
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
        let complete = async {
            if batch.complete.is_empty() {
                return Ok(Vec::new());
            }
            pooled(pool, "complete", async |conn| {
                complete_on(conn, fence_columns(batch.complete)).await
            })
            .await
        };
        let insert_then_claim = async {
            let inserted = if batch.insert.is_empty() {
                Ok(())
            } else if crate::util::chunks(batch.insert).len() > 1 {
                // Several statements need a transaction: a detached one.
                self.insert(batch.insert).await
            } else {
                pooled(pool, "insert", async |conn| {
                    insert_on(conn, batch.insert).await
                })
                .await
            };
            let claimed = match batch.claim {
                Some(request) if !request.is_empty() && request.capped.is_empty() => {
                    pooled(pool, "claim", async |conn| {
                        claim_some(conn, request, request.limit, None, &[]).await
                    })
                    .await
                }
                Some(request) if !request.is_empty() => self.claim(request).await,
                _ => Ok(Vec::new()),
            };
            (inserted, claimed)
        };
        let (completed, (inserted, claimed)) = tokio::join!(complete, insert_then_claim);
        WriteOutcome::new(inserted, completed, claimed)
    }

    async fn heartbeat(&self, held: &[Fence], lease: Duration) -> durable_core::Result<Vec<Fence>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, owners, attempts) = fence_columns(held);
        self.run("heartbeat", move |pool| async move {
            let rows = sqlx::query(sql::HEARTBEAT)
                .bind(ids)
                .bind(owners)
                .bind(attempts)
                .bind(ms(lease))
                .fetch_all(&pool)
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

    async fn complete(&self, fences: &[Fence]) -> durable_core::Result<Vec<TaskId>> {
        if fences.is_empty() {
            return Ok(Vec::new());
        }
        let columns = fence_columns(fences);
        self.run("complete", move |pool| async move {
            let mut conn = pool.acquire().await.map_err(Error::db("complete"))?;
            complete_on(&mut conn, columns).await
        })
        .await
    }

    async fn retry(
        &self,
        fence: &Fence,
        delay: Duration,
        error: &str,
    ) -> durable_core::Result<bool> {
        let fence = *fence;
        let error = clean_text(error);
        self.run("retry", move |pool| async move {
            let n: i64 = sqlx::query_scalar(sql::RETRY)
                .bind(fence.id.as_uuid())
                .bind(fence.owner.as_uuid())
                .bind(attempt_i32(fence.attempt))
                .bind(ms(delay))
                .bind(error)
                .fetch_one(&pool)
                .await
                .map_err(Error::db("retry"))?;
            Ok(n == 1)
        })
        .await
    }

    async fn fail(&self, fence: &Fence, error: &str) -> durable_core::Result<bool> {
        let fence = *fence;
        let error = clean_text(error);
        self.run("fail", move |pool| async move {
            let done = sqlx::query(sql::FAIL)
                .bind(fence.id.as_uuid())
                .bind(fence.owner.as_uuid())
                .bind(attempt_i32(fence.attempt))
                .bind(error)
                .execute(&pool)
                .await
                .map_err(Error::db("fail"))?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn requeue(&self, fences: &[Fence]) -> durable_core::Result<u64> {
        if fences.is_empty() {
            return Ok(0);
        }
        let (ids, owners, attempts) = fence_columns(fences);
        self.run("requeue", move |pool| async move {
            let row = sqlx::query(sql::REQUEUE)
                .bind(ids)
                .bind(owners)
                .bind(attempts)
                .bind(i32::try_from(REQUEUE_LIMIT).unwrap_or(i32::MAX))
                .fetch_one(&pool)
                .await
                .map_err(Error::db("requeue"))?;
            let n: i64 = row.try_get("n").map_err(Error::db("requeue"))?;
            Ok(n as u64)
        })
        .await
    }

    async fn mark_started(&self, fence: &Fence) -> durable_core::Result<bool> {
        let fence = *fence;
        self.run("mark started", move |pool| async move {
            let done = sqlx::query(sql::MARK_STARTED)
                .bind(fence.id.as_uuid())
                .bind(fence.owner.as_uuid())
                .bind(attempt_i32(fence.attempt))
                .execute(&pool)
                .await
                .map_err(Error::db("mark started"))?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn rescue_expired(&self) -> durable_core::Result<RescueReport> {
        self.run("rescue", move |pool| async move {
            let row = sqlx::query(sql::RESCUE)
                .fetch_one(&pool)
                .await
                .map_err(Error::db("rescue"))?;
            let requeued: i64 = row.try_get("requeued").map_err(Error::db("rescue"))?;
            let failed: i64 = row.try_get("failed").map_err(Error::db("rescue"))?;
            Ok(RescueReport {
                requeued: requeued as u64,
                failed: failed as u64,
            })
        })
        .await
    }

    async fn cancel(&self, id: TaskId) -> durable_core::Result<bool> {
        self.run("cancel", move |pool| async move {
            let done = sqlx::query(sql::CANCEL)
                .bind(id.as_uuid())
                .execute(&pool)
                .await
                .map_err(Error::db("cancel"))?;
            Ok(done.rows_affected() == 1)
        })
        .await
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
                .bind(i64::from(durable_core::UNCLAIMABLE_SCAN))
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
}

#[cfg(test)]
mod tests {
    use super::builder::{redact, validate_schema};
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/app"),
            "postgres://app:***@db:5432/app"
        );
        assert_eq!(redact("postgres://app@db/app"), "postgres://app@db/app");
        assert_eq!(redact("postgres://db/app?x=a@b"), "postgres://db/app?x=a@b");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("durable"), "\"durable\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn schema_names_are_checked() {
        assert!(validate_schema("durable").is_ok());
        assert!(validate_schema("").is_err());
        assert!(validate_schema(&"x".repeat(64)).is_err());
        let e = validate_schema("a\0b").expect_err("nul");
        assert!(e.to_string().contains("NUL"), "{e}");
    }

    #[test]
    fn durations_are_bounded() {
        assert_eq!(ms(Duration::from_millis(1500)), 1500);
        assert_eq!(ms(Duration::MAX), crate::util::MAX_DELAY_MS);
    }
}
