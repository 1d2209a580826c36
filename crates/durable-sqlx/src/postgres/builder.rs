//! Connecting a PostgreSQL store: settings, the schema and its search path.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};

use super::{search_path, PostgresStore, DEFAULT_APPLICATION_NAME, DEFAULT_STATEMENT_TIMEOUT};
use crate::error::{Error, Result};
use crate::util::detached;

#[derive(Debug, Clone)]
pub(super) enum Source {
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
    pub(super) source: Source,
    pub(super) schema: Option<String>,
    pub(super) application_name: Option<String>,
    pub(super) max_connections: u32,
    pub(super) min_connections: u32,
    pub(super) acquire_timeout: Duration,
    pub(super) statement_timeout: Option<Duration>,
    pub(super) ping_after_idle: Duration,
    pub(super) resume_after: Duration,
    pub(super) truncate_lanes: bool,
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

    /// Most pooled connections (default 10). Outside the pool: the `LISTEN` connection of a
    /// running runtime, and the claims' connections (one per runtime claiming, one more for
    /// a look before the claim position while claims resume; at most three per store). See
    /// `docs/POSTGRES.md` for sizing.
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
    /// long (default [`DEFAULT_PING_AFTER_IDLE`](super::DEFAULT_PING_AFTER_IDLE), 10 s;
    /// `Duration::ZERO` pings every time, sqlx's default). A ping is one round trip to the server on the request path; busy
    /// connections are checked when they go back to the pool anyway, and a connection that
    /// died while idle (a server restart, a failover, a firewall dropping idle sockets)
    /// is most likely one that sat idle. A connection that dies between two uses less than
    /// this apart fails its next statement, which the caller sees as a transient error.
    /// The claims' own connections follow the same rule.
    #[must_use]
    pub fn ping_after_idle(mut self, idle: Duration) -> Self {
        self.ping_after_idle = idle;
        self
    }

    /// How long a claim that walks the claim index from its head must take before the
    /// store's next claims start where the last one ended instead (default 8 ms; a claim
    /// on a healthy table takes 1–2 ms, its commit included). A slow walk means entries of rows claimed since
    /// some old snapshot was taken (an idle transaction, a long report) that PostgreSQL
    /// cannot mark dead yet; resumed claims skip them. While claims resume, a walk from the
    /// head each second (or after twenty times as long as the last one took, if longer)
    /// still finds rows placed before the position — a higher priority, a transaction that
    /// committed late — and decides whether to keep resuming.
    /// `Duration::ZERO` resumes whenever possible, `Duration::MAX` never.
    #[must_use]
    pub fn claim_resume_after(mut self, slow: Duration) -> Self {
        self.resume_after = slow;
        self
    }

    /// Whether the store's maintenance truncates the live partition's lanes while vacuums
    /// cannot clean them (default `true`; see `docs/POSTGRES.md`, "Lanes"). While an old
    /// snapshot holds the vacuum horizon back, every task leaves its dead row versions behind
    /// until the snapshot ends; a lane whose turn ended and whose tasks are done is truncated
    /// instead, so the live partition stays a few megabytes however long the snapshot lives.
    ///
    /// A truncation is invisible to every transaction but one whose snapshot is older than
    /// it and that had not read the lanes (a lane a session holds locked is never truncated):
    /// such a snapshot finds the lane empty, where it would have seen tasks that have since
    /// finished (their rows are in the history, in versions it cannot see). Turn it off if
    /// long transactions must see every task as it was when they began; the live partition
    /// then grows while they run and is vacuumed once they end.
    ///
    /// ```no_run
    /// # async fn demo() -> durable_sqlx::Result<()> {
    /// use durable_sqlx::postgres::PostgresStore;
    ///
    /// // Nightly reports read `durable_tasks` in `REPEATABLE READ` transactions that must
    /// // count every task they began with.
    /// let store = PostgresStore::builder("postgres://app@localhost/app")
    ///     .truncate_lanes(false)
    ///     .connect()
    ///     .await?;
    /// # drop(store);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn truncate_lanes(mut self, truncate: bool) -> Self {
        self.truncate_lanes = truncate;
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
        // Every statement is planned for the tables as they are when it runs. A prepared
        // statement otherwise keeps a generic plan after its fifth run, and the live partition
        // is often empty then (vacuumed between bursts): the plan kept scans it, one pass per
        // fence of a completion, and keeps scanning once a burst or a held vacuum horizon has
        // filled it with tens of thousands of row versions — seconds per statement. Planning
        // each run costs a fraction of a millisecond.
        if !options
            .get_options()
            .is_some_and(|o| o.contains("plan_cache_mode"))
        {
            options = options.options([("plan_cache_mode", "force_custom_plan")]);
        }
        let ping_after_idle = self.ping_after_idle;
        let pool_options = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .min_connections(self.min_connections)
            .acquire_timeout(self.acquire_timeout);
        let pool = pinged_after_idle(pool_options, ping_after_idle)
            .connect_with(options)
            .await
            .map_err(Error::db("connect"))?;
        let mut store = PostgresStore::on_pool(pool, ping_after_idle);
        store.resume = std::sync::Arc::new(super::resume::Resume::new(self.resume_after));
        if !self.truncate_lanes {
            store.pace = std::sync::Arc::new(super::maintain::Pace::keeping_lanes());
        }
        Ok(store)
    }
}

/// `options` that ping a connection before handing it out only when it sat idle for
/// `ping_after_idle` or longer (see
/// [`PostgresStoreBuilder::ping_after_idle`]).
pub(super) fn pinged_after_idle(
    options: PgPoolOptions,
    ping_after_idle: Duration,
) -> PgPoolOptions {
    options
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= ping_after_idle {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// The URL without its password, for error messages.
pub(super) fn redact(url: &str) -> String {
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

pub(super) fn validate_schema(schema: &str) -> Result<()> {
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
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates `schema` unless it exists (checked first, so a role without CREATE on the database
/// can use a schema made for it). Concurrent creators race harmlessly. Returns the
/// `search_path` a connection with `options` gets (from the options, `PGOPTIONS`, the role's
/// or the database's settings, or the server's default).
pub(super) async fn ensure_schema(options: &PgConnectOptions, schema: &str) -> Result<String> {
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
