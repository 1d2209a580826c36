//! PostgreSQL store: several application instances on one database.
//!
//! - **Claims** are one statement: a materialized CTE picks due `pending` rows in claim order
//!   with `FOR UPDATE SKIP LOCKED`, the `UPDATE` takes exactly those (per-queue caps: one
//!   such statement per capped queue, in one transaction).
//! - **Batches** are one statement each: `insert` binds typed arrays and `unnest`s them;
//!   `heartbeat`, `complete` and `requeue` take every fence at once. Every worker write is
//!   fenced on `(id, lease_owner, attempts)` and `state = 'processing'`.
//! - **Times** come from the database's clock (`durable_now()`, which is `now()` unless a
//!   test clock moved it), so instances with skewed clocks agree on leases. (A `run_at`
//!   given at enqueue is the application's absolute time.)
//! - **Wakeups** across instances: an insert of due rows sends one `NOTIFY` per transaction;
//!   [`wakeups`](durable_core::store::WorkerStore::wakeups) keeps a `LISTEN` connection
//!   (re-established with backoff) and wakes the runtime. A hint only: the runtime keeps polling.
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
//! use durable_core::store::Store;
//! use durable_core::{Registry, Runtime};
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

// First: the statements' macros are used by the modules after it.
#[macro_use]
mod sql;

mod actions;
mod admin;
mod builder;
mod cancel;
mod claim;
mod claim_pool;
mod clock;
mod explain;
mod idempotency;
mod lanes;
mod listen;
mod listing;
mod look;
mod maintain;
mod moved;
mod overview;
mod parts;
mod resume;
mod rows;
mod schedule;
mod search_path;
mod steps;
mod unique;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{PgPool, Postgres, Transaction};

use crate::error::{Error, Result};
use crate::util::detached;
pub use builder::PostgresStoreBuilder;
use builder::{quote_ident, Source};
pub(crate) use clock::set_durable_now;
pub(crate) use idempotency::record_on;
pub(crate) use rows::insert_on;
pub(crate) use steps::{complete_on, save_step_on};

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
/// [`migrate`](Self::migrate) once at startup.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use durable_sqlx::postgres::PostgresStore;
///
/// let store = PostgresStore::connect("postgres://app@localhost/app").await?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The claims' own connections (see [`claim_pool`]).
    claims: PgPool,
    /// The offset a test clock moved `durable_now()` by, for the times computed on the
    /// application's side (a client's delays). Zero in production.
    pub(crate) clock: crate::clock::Clock,
    /// Where this store's claims start (see [`resume`]), shared by its clones.
    resume: Arc<resume::Resume>,
    /// When this store vacuums the live partition (see [`maintain`]), shared by its clones.
    pace: Arc<maintain::Pace>,
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
            resume_after: resume::SLOW,
            truncate_lanes: true,
        }
    }

    /// Opens `url` with default settings.
    pub async fn connect(url: impl Into<String>) -> Result<Self> {
        Self::builder(url).connect().await
    }

    /// A store on an existing pool (for example the application's own). Its connect options
    /// (`search_path`, `application_name`) are the store's; the `LISTEN` connection and the
    /// claims' connections (at most three, with `enable_sort = off`: see `docs/POSTGRES.md`;
    /// pinged before use after [`DEFAULT_PING_AFTER_IDLE`] idle) are opened with the same
    /// options, outside the pool.
    ///
    /// Give the pool's connections `plan_cache_mode=force_custom_plan`, as
    /// [`builder`](Self::builder) does: the live partition is empty one moment and holds tens
    /// of thousands of rows the next, and a prepared statement's generic plan, made while it
    /// was empty, scans it.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), sqlx::Error> {
    /// use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    ///
    /// let options: PgConnectOptions = "postgres://localhost/app".parse()?;
    /// let pool = PgPoolOptions::new()
    ///     .connect_with(options.options([("plan_cache_mode", "force_custom_plan")]))
    ///     .await?;
    /// let store = durable_sqlx::postgres::PostgresStore::from_pool(pool);
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_pool(pool: PgPool) -> Self {
        Self::on_pool(pool, DEFAULT_PING_AFTER_IDLE)
    }

    /// A store on `pool`, its claims' connections pinged after `ping_after_idle` idle.
    fn on_pool(pool: PgPool, ping_after_idle: Duration) -> Self {
        Self {
            claims: claim_pool::claim_pool(&pool, ping_after_idle),
            pool,
            clock: crate::clock::Clock::default(),
            resume: Arc::default(),
            pace: Arc::default(),
        }
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
