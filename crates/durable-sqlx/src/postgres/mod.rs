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

mod explain;
mod listen;
mod search_path;
mod sql;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use durable_core::{
    async_trait, CancellationToken, ClaimRequest, ClaimedTask, Fence, NewTask, RescueReport,
    StateCounts, Store, TaskId, TaskRecord, TaskState, WorkerId, WriteBatch, WriteOutcome,
    REQUEUE_LIMIT,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Row, Transaction};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::util::detached;

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

#[derive(Debug, Clone)]
enum Source {
    Url(String),
    Options(Box<PgConnectOptions>),
}

/// Connection settings of a [`PostgresStore`].
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> durable_sqlx::Result<()> {
/// use durable_sqlx::postgres::PostgresStore;
/// use std::time::Duration;
///
/// let store = PostgresStore::builder("postgres://app@localhost/app")
///     .schema("durable")
///     .application_name("api")
///     .max_connections(8)
///     .acquire_timeout(Duration::from_secs(5))
///     .statement_timeout(Duration::from_secs(10))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresStoreBuilder {
    source: Source,
    schema: Option<String>,
    application_name: Option<String>,
    max_connections: u32,
    min_connections: u32,
    acquire_timeout: Duration,
    statement_timeout: Option<Duration>,
    ping_after_idle: Duration,
}

impl PostgresStoreBuilder {
    /// Keeps the tables (and `_durable_migrations`) in `schema`: [`connect`](Self::connect)
    /// creates the schema if missing, and the connections get `schema` in front of the
    /// `search_path` they would have had without it — the one set in the URL
    /// (`?options=-c search_path=app,public`), in the connect options, in `PGOPTIONS`, on the
    /// role or the database, else the server's default (`"$user", public`). So
    /// `search_path=app,public` becomes `"<schema>", app, public`; `schema` is not repeated
    /// if the path already names it. Without it the store uses that `search_path` as it is.
    ///
    /// Transactions from [`PostgresStore::begin`] run with the same `search_path`: the
    /// application's own tables are still found unqualified.
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// The `application_name` of the store's connections, shown in `pg_stat_activity`
    /// (default: the URL's, else [`DEFAULT_APPLICATION_NAME`]).
    #[must_use]
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = Some(name.into());
        self
    }

    /// Most pooled connections (default 10). The `LISTEN` connection of a running runtime
    /// is one more, outside the pool. See `docs/POSTGRES.md` for sizing.
    #[must_use]
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Connections kept open while idle (default 0).
    #[must_use]
    pub fn min_connections(mut self, n: u32) -> Self {
        self.min_connections = n;
        self
    }

    /// How long an operation waits for a pooled connection (or for the server to accept
    /// one) before failing (default 10 s). A failed claim or heartbeat is retried by the
    /// runtime with backoff.
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The server-side `statement_timeout` of the store's connections (default
    /// [`DEFAULT_STATEMENT_TIMEOUT`], 30 s; `Duration::ZERO` turns it off): a statement
    /// still running then — an insert waiting on a lock, a hung server — is cancelled by
    /// PostgreSQL and fails with a transient error instead of holding its callers and its
    /// connection indefinitely. Without this call, a `statement_timeout` already in the
    /// URL's `options` is kept.
    ///
    /// It applies to every connection of the pool, including the transactions of
    /// [`PostgresStore::begin`]; a transaction that needs longer can `SET LOCAL
    /// statement_timeout`. Migrations run without it.
    #[must_use]
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// Pings a pooled connection before handing it out only when it was idle at least this
    /// long (default [`DEFAULT_PING_AFTER_IDLE`], 10 s; `Duration::ZERO` pings every time,
    /// sqlx's default). A ping is one round trip to the server on the request path; busy
    /// connections are checked when they go back to the pool anyway, and a connection that
    /// died while idle (a server restart, a failover, a firewall dropping idle sockets)
    /// is most likely one that sat idle. A connection that dies between two uses less than
    /// this apart fails its next statement, which the caller sees as a transient error.
    #[must_use]
    pub fn ping_after_idle(mut self, idle: Duration) -> Self {
        self.ping_after_idle = idle;
        self
    }

    /// Creates the schema if one was set and missing, and opens the pool (one connection
    /// eagerly, so a wrong URL fails here).
    pub async fn connect(self) -> Result<PostgresStore> {
        let mut options = match self.source {
            Source::Url(url) => {
                PgConnectOptions::from_str(url.trim()).map_err(|e| Error::InvalidUrl {
                    url: redact(&url),
                    reason: e.to_string(),
                })?
            }
            Source::Options(options) => *options,
        };
        if let Some(name) = &self.application_name {
            options = options.application_name(name);
        } else if options.get_application_name().is_none() {
            options = options.application_name(DEFAULT_APPLICATION_NAME);
        }
        if let Some(schema) = &self.schema {
            validate_schema(schema)?;
            let session_path = ensure_schema(&options, schema).await?;
            options =
                options.options([("search_path", search_path::prepend(schema, &session_path))]);
        }
        let user_set = options
            .get_options()
            .is_some_and(|o| o.contains("statement_timeout"));
        match self.statement_timeout {
            Some(timeout) => {
                options = options.options([("statement_timeout", crate::util::millis(timeout))]);
            }
            None if !user_set => {
                options = options.options([(
                    "statement_timeout",
                    crate::util::millis(DEFAULT_STATEMENT_TIMEOUT),
                )]);
            }
            None => {}
        }
        let ping_after_idle = self.ping_after_idle;
        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .min_connections(self.min_connections)
            .acquire_timeout(self.acquire_timeout)
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= ping_after_idle {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await
            .map_err(Error::db("connect"))?;
        Ok(PostgresStore::from_pool(pool))
    }
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let Some(at) = url[start..authority_end].rfind('@').map(|i| start + i) else {
        return url.to_owned();
    };
    match url[start..at].find(':').map(|i| start + i) {
        Some(colon) => format!("{}:***{}", &url[..colon], &url[at..]),
        None => url.to_owned(),
    }
}

fn validate_schema(schema: &str) -> Result<()> {
    let reason = if schema.is_empty() {
        "empty"
    } else if schema.len() > 63 {
        "longer than 63 bytes (PostgreSQL would truncate it)"
    } else if schema.contains('\0') {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(Error::InvalidSchema {
        schema: schema.to_owned(),
        reason,
    })
}

/// A double-quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates `schema` unless it exists (checked first, so a role without CREATE on the database
/// can use a schema made for it). Concurrent creators race harmlessly. Returns the
/// `search_path` a connection with `options` gets (from the options, `PGOPTIONS`, the role's
/// or the database's settings, or the server's default).
async fn ensure_schema(options: &PgConnectOptions, schema: &str) -> Result<String> {
    let options = options.clone();
    let schema = schema.to_owned();
    detached("create schema", async move {
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(Error::db("connect"))?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(&schema)
                .fetch_one(&mut conn)
                .await
                .map_err(Error::db("create schema"))?;
        if !exists {
            let created = sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS {}",
                quote_ident(&schema)
            )))
            .execute(&mut conn)
            .await;
            match created {
                Ok(_) => {}
                // Another instance created it between our check and our CREATE.
                Err(sqlx::Error::Database(e))
                    if e.code().is_some_and(|c| c == "23505" || c == "42P06") => {}
                Err(e) => return Err(Error::db("create schema")(e)),
            }
        }
        let path: String = sqlx::query_scalar("SELECT current_setting('search_path')")
            .fetch_one(&mut conn)
            .await
            .map_err(Error::db("create schema"))?;
        let _ = conn.close().await;
        Ok(path)
    })
    .await
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

/// The rows of an insert as one array per column.
#[derive(Default)]
struct Columns {
    ids: Vec<Uuid>,
    names: Vec<String>,
    queues: Vec<String>,
    payloads: Vec<String>,
    priorities: Vec<i16>,
    max_attempts: Vec<i32>,
    run_at: Vec<Option<DateTime<Utc>>>,
    owners: Vec<Option<Uuid>>,
    lease_ms: Vec<Option<i64>>,
}

impl Columns {
    fn of(tasks: &[NewTask]) -> Self {
        let mut c = Self::default();
        for t in tasks {
            c.ids.push(*t.id.as_uuid());
            c.names.push(t.name.clone());
            c.queues.push(t.queue.clone());
            c.payloads.push(t.payload.clone());
            c.priorities.push(t.priority);
            c.max_attempts
                .push(i32::try_from(t.max_attempts.max(1)).unwrap_or(i32::MAX));
            c.run_at.push(t.run_at);
            c.owners.push(t.claimed_by.map(|l| *l.owner.as_uuid()));
            c.lease_ms.push(t.claimed_by.map(|l| ms(l.lease)));
        }
        c
    }
}

/// Inserts rows on any PostgreSQL connection (a caller's transaction included), in one
/// statement that also sends the wakeup `NOTIFY` (delivered at commit) when a row is due.
///
/// A batch too large for one statement ([`chunks`](crate::util::chunks)) is written in
/// several inside a savepoint (a transaction if the connection has none): all or none.
pub(crate) async fn insert_on(conn: &mut PgConnection, tasks: &[NewTask]) -> Result<()> {
    match crate::util::chunks(tasks).as_slice() {
        [] => Ok(()),
        [one] => insert_statement(conn, one).await,
        several => {
            let mut tx = conn.begin().await.map_err(Error::db("insert"))?;
            for chunk in several {
                insert_statement(&mut tx, chunk).await?;
            }
            tx.commit().await.map_err(Error::db("insert"))
        }
    }
}

/// One insert statement (see [`sql::INSERT`]).
async fn insert_statement(conn: &mut PgConnection, tasks: &[NewTask]) -> Result<()> {
    let c = Columns::of(tasks);
    sqlx::query(sql::INSERT)
        .bind(&c.ids)
        .bind(&c.names)
        .bind(&c.queues)
        .bind(&c.payloads)
        .bind(&c.priorities)
        .bind(&c.max_attempts)
        .bind(&c.run_at)
        .bind(&c.owners)
        .bind(&c.lease_ms)
        .execute(conn)
        .await
        .map_err(Error::db("insert"))?;
    Ok(())
}

/// Runs one autocommit statement on a pooled connection, in the caller's task.
async fn pooled<T>(
    pool: &PgPool,
    operation: &'static str,
    body: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
) -> durable_core::Result<T> {
    let mut conn = pool.acquire().await.map_err(Error::db(operation))?;
    Ok(body(&mut conn).await?)
}

/// The fences as the three arrays the fenced statements take.
fn fence_columns(fences: &[Fence]) -> (Vec<Uuid>, Vec<Uuid>, Vec<i32>) {
    let mut ids = Vec::with_capacity(fences.len());
    let mut owners = Vec::with_capacity(fences.len());
    let mut attempts = Vec::with_capacity(fences.len());
    for f in fences {
        ids.push(*f.id.as_uuid());
        owners.push(*f.owner.as_uuid());
        attempts.push(attempt_i32(f.attempt));
    }
    (ids, owners, attempts)
}

fn attempt_i32(attempt: u32) -> i32 {
    i32::try_from(attempt).unwrap_or(i32::MAX)
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// PostgreSQL text cannot hold NUL bytes; an error message with one would fail the write.
fn clean_text(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s.to_owned()
    }
}

fn claimed_from_row(row: &PgRow, owner: WorkerId) -> Result<ClaimedTask> {
    let db = || Error::db("claim");
    Ok(ClaimedTask::new(
        TaskId::from_uuid(row.try_get("id").map_err(db())?),
        row.try_get("name").map_err(db())?,
        row.try_get("queue").map_err(db())?,
        row.try_get("payload").map_err(db())?,
        count(row.try_get("attempts").map_err(db())?),
        count(row.try_get("max_attempts").map_err(db())?),
        owner,
    ))
}

fn record_from_row(row: &PgRow) -> Result<TaskRecord> {
    let db = || Error::db("get");
    let id: Uuid = row.try_get("id").map_err(db())?;
    let state: String = row.try_get("state").map_err(db())?;
    let state = TaskState::from_str(&state).map_err(|e| Error::CorruptRow {
        id: id.to_string(),
        reason: e.to_string(),
    })?;
    let mut record = TaskRecord::new(
        TaskId::from_uuid(id),
        row.try_get::<String, _>("name").map_err(db())?,
        row.try_get::<String, _>("queue").map_err(db())?,
        row.try_get::<String, _>("payload").map_err(db())?,
        state,
    );
    record.priority = row.try_get("priority").map_err(db())?;
    record.attempts = count(row.try_get("attempts").map_err(db())?);
    record.max_attempts = count(row.try_get("max_attempts").map_err(db())?);
    record.requeues = count(row.try_get("requeues").map_err(db())?);
    record.run_at = row.try_get("run_at").map_err(db())?;
    record.lease_owner = row
        .try_get::<Option<Uuid>, _>("lease_owner")
        .map_err(db())?
        .map(WorkerId::from_uuid);
    record.lease_expires_at = row.try_get("lease_expires_at").map_err(db())?;
    record.last_error = row.try_get("last_error").map_err(db())?;
    record.created_at = row.try_get("created_at").map_err(db())?;
    record.updated_at = row.try_get("updated_at").map_err(db())?;
    record.finished_at = row.try_get("finished_at").map_err(db())?;
    Ok(record)
}

/// Claims per `request` inside the caller's transaction: the capped queues first, then the
/// rest.
async fn claim_on(conn: &mut PgConnection, request: &ClaimRequest) -> Result<Vec<ClaimedTask>> {
    if request.capped.is_empty() {
        return claim_some(conn, request, request.limit, None, &[]).await;
    }
    let mut remaining = request.limit;
    let mut claimed = Vec::new();
    for (queue, cap) in &request.capped {
        let n = (*cap).min(remaining);
        if n == 0 {
            continue;
        }
        let rows = claim_some(conn, request, n, Some(queue), &[]).await?;
        remaining -= rows.len().min(remaining);
        claimed.extend(rows);
    }
    if remaining > 0 {
        let excluded: Vec<String> = request.capped.iter().map(|(q, _)| q.clone()).collect();
        let rows = claim_some(conn, request, remaining, None, &excluded).await?;
        claimed.extend(rows);
    }
    Ok(claimed)
}

/// Completes the fenced attempts (as [`fence_columns`]) on `conn`.
async fn complete_on(
    conn: &mut PgConnection,
    (ids, owners, attempts): (Vec<Uuid>, Vec<Uuid>, Vec<i32>),
) -> Result<Vec<TaskId>> {
    let done: Vec<Uuid> = sqlx::query_scalar(sql::COMPLETE)
        .bind(ids)
        .bind(owners)
        .bind(attempts)
        .fetch_all(conn)
        .await
        .map_err(Error::db("complete"))?;
    Ok(done.into_iter().map(TaskId::from_uuid).collect())
}

/// One claim statement on a transaction: rows of `queue` (`Some`), of every queue but
/// `excluded` (`None`), at most `n`.
async fn claim_some(
    conn: &mut PgConnection,
    request: &ClaimRequest,
    n: usize,
    queue: Option<&str>,
    excluded: &[String],
) -> Result<Vec<ClaimedTask>> {
    if request.names.is_empty() {
        return Ok(Vec::new());
    }
    let owner = *request.owner.as_uuid();
    let lease = ms(request.lease);
    let limit = i64::try_from(n).unwrap_or(i64::MAX);
    let names: &[String] = &request.names;
    let query = match queue {
        Some(queue) => sqlx::query(sql::CLAIM_QUEUE)
            .bind(owner)
            .bind(lease)
            .bind(limit)
            .bind(names)
            .bind(queue.to_owned()),
        None if excluded.is_empty() => sqlx::query(sql::CLAIM_ANY)
            .bind(owner)
            .bind(lease)
            .bind(limit)
            .bind(names),
        None => sqlx::query(sql::CLAIM_OTHERS)
            .bind(owner)
            .bind(lease)
            .bind(limit)
            .bind(names)
            .bind(excluded.to_vec()),
    };
    let rows = query
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::db("claim"))?;
    // The statement has committed (or will with its transaction): a row that cannot be read
    // must not fail the claim of the others. In a UTF8 database (PostgreSQL checks text on
    // input) no single row can be unreadable; what can be is every row, for a binary that
    // does not know the table's column types (a downgrade, a migration it predates). So the
    // row is not failed — another binary can run it — but left to its lease, which expires
    // and hands it back (a last attempt uncounted: it never started).
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        match claimed_from_row(row, request.owner) {
            Ok(task) => claimed.push(task),
            Err(error) => tracing::error!(%error, task_id = ?row.try_get::<Uuid, _>("id").ok(),
                "claimed a task row this version cannot read; leaving it until its lease expires"),
        }
    }
    Ok(claimed)
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
