//! Fresh PostgreSQL schemas and databases on the test server.

use std::future::Future;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection as _, PgConnection};
use uuid::Uuid;

/// The environment variable naming the PostgreSQL server of the tests, e.g.
/// `postgres://postgres@127.0.0.1:5432/test`.
pub const URL_VAR: &str = "DURABLE_TEST_DATABASE_URL";

/// How old a leftover `t_<uuid v7>` schema must be before [`PgSchema::new`] sweeps it: far
/// longer than any test, so a schema of a run still going is never taken.
const STALE_AFTER_MS: u128 = 30 * 60 * 1000;

/// The test server's URL from [`URL_VAR`]; `None` (said on stderr) when it is not set, so the
/// PostgreSQL tests skip.
///
/// # Panics
///
/// When the variable is not set while `CI` is: CI must run the PostgreSQL tests.
pub fn database_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ => {
            assert!(
                std::env::var("CI").map_or(true, |v| v.is_empty()),
                "PostgreSQL tests are required in CI: set {URL_VAR}=postgres://user@host:port/database \
                 (for example postgres://postgres@127.0.0.1:5432/test)"
            );
            // Straight to the process's stderr: libtest captures `eprintln!` of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: set {URL_VAR}=postgres://user@host:port/database to run PostgreSQL tests"
            );
            None
        }
    }
}

/// A schema of its own on the server of `url`, named `t_<uuid v7>` unless chosen, and
/// dropped (`CASCADE`) when this is dropped, also when the test panics. Tests in schemas of
/// their own run in parallel on one database.
///
/// The schema is not created here: the store creates its schema when it connects.
#[derive(Debug)]
pub struct PgSchema {
    url: String,
    name: String,
    armed: bool,
}

impl PgSchema {
    /// A new `t_<uuid v7>` schema name on the server of `url`. The first call of a process
    /// also drops the `t_<uuid v7>` schemas older than 30 minutes: those of runs that were
    /// killed before they could clean up.
    pub async fn new(url: &str) -> Self {
        sweep_stale_schemas(url).await;
        Self::named(url, &format!("t_{}", Uuid::now_v7().simple()))
    }

    /// A schema with the given name (one that needs quoting, a benchmark's own), dropped like
    /// the others; nothing is swept.
    pub fn named(url: &str, name: &str) -> Self {
        Self {
            url: url.to_owned(),
            name: name.to_owned(),
            armed: true,
        }
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A connection of its own with the schema on its `search_path`.
    ///
    /// # Panics
    ///
    /// If the server cannot be reached.
    pub async fn connect(&self) -> PgConnection {
        let mut conn = PgConnection::connect(&self.url).await.expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SET search_path = \"{}\"",
            self.name
        )))
        .execute(&mut conn)
        .await
        .expect("search_path");
        conn
    }

    /// Drops the schema now, on the caller's runtime, reporting a failure instead of only
    /// printing it.
    pub async fn drop_now(mut self) -> Result<(), sqlx::Error> {
        self.armed = false;
        drop_schema(&self.url, &self.name).await
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (url, name) = (self.url.clone(), self.name.clone());
        if let Err(e) = block_on_own_thread(async move { drop_schema(&url, &name).await }) {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
    }
}

async fn drop_schema(url: &str, schema: &str) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    // A test that left a transaction open must not make the cleanup hang for good.
    sqlx::query("SET lock_timeout = '10s'")
        .execute(&mut conn)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await?;
    conn.close().await
}

/// Once per process: drops `t_<uuid v7>` schemas older than [`STALE_AFTER_MS`].
async fn sweep_stale_schemas(url: &str) {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let Ok(mut conn) = PgConnection::connect(url).await else {
                return;
            };
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT nspname::text FROM pg_namespace WHERE nspname ~ '^t_[0-9a-f]{12}7[0-9a-f]{19}$'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            for name in names {
                // A uuid v7 starts with its creation time in Unix milliseconds (48 bits).
                let created = u128::from_str_radix(&name[2..14], 16).unwrap_or(u128::MAX);
                if created.saturating_add(STALE_AFTER_MS) < now {
                    let _ = drop_schema(url, &name).await;
                }
            }
            let _ = conn.close().await;
        })
        .await;
}

/// A database of its own on the server of an administrative URL, named
/// `<prefix>_<uuid v7>`, dropped (`WITH (FORCE)`, closing what is still connected) when this
/// is dropped, also when the test panics.
#[derive(Debug)]
pub struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
    armed: bool,
}

impl PgDatabase {
    /// Creates the database through `admin_url` (a database of the server the caller may
    /// connect to, such as the one of [`URL_VAR`]).
    pub async fn create(admin_url: &str, prefix: &str) -> Result<Self, sqlx::Error> {
        let name = format!("{prefix}_{}", Uuid::now_v7().simple());
        let mut admin = PgConnection::connect(admin_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        Ok(Self {
            url: with_database(admin_url, &name),
            admin_url: admin_url.to_owned(),
            name,
            armed: true,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL of the new database: the administrative URL with its database replaced.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database now, on the caller's runtime, reporting a failure instead of only
    /// printing it.
    pub async fn drop_now(mut self) -> Result<(), sqlx::Error> {
        self.armed = false;
        drop_database(&self.admin_url, &self.name).await
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        if let Err(e) = block_on_own_thread(async move { drop_database(&admin_url, &name).await }) {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

async fn drop_database(admin_url: &str, name: &str) -> Result<(), sqlx::Error> {
    let mut admin = PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    admin.close().await
}

/// Runs a cleanup to completion on a thread with a runtime of its own: `Drop` may run inside
/// the test's runtime, which must not be blocked on from within.
fn block_on_own_thread<F>(cleanup: F) -> Result<(), String>
where
    F: Future<Output = Result<(), sqlx::Error>> + Send + 'static,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(cleanup).map_err(|e| e.to_string())
    })
    .join()
    .unwrap_or_else(|_| Err("the cleanup panicked".to_owned()))
}

/// `url` with its database (path) replaced by `name`, keeping user, host and query.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{database_url, with_database, PgDatabase, PgSchema};
    use sqlx::Connection as _;

    #[test]
    fn replaces_the_database_only() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "t_1"),
            "postgres://postgres@127.0.0.1:5432/t_1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t_2"),
            "postgres://u:p@h/t_2?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "t_3"),
            "postgres://h:5432/t_3"
        );
    }

    async fn exists(url: &str, sql: &'static str, name: &str) -> bool {
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::query_scalar(sql)
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .expect("query")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn schema_dropped_when_dropped() {
        let Some(url) = database_url() else { return };
        let schema = PgSchema::new(&url).await;
        let name = schema.name().to_owned();
        assert!(name.starts_with("t_") && name.len() == 34, "{name}");
        drop(schema.connect().await);
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
            .execute(&mut schema.connect().await)
            .await
            .expect("create");
        let sql = "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)";
        assert!(exists(&url, sql, &name).await);
        drop(schema);
        assert!(!exists(&url, sql, &name).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn database_dropped_when_dropped() {
        let Some(url) = database_url() else { return };
        let db = PgDatabase::create(&url, "t_testkit").await.expect("create");
        let name = db.name().to_owned();
        let sql = "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)";
        assert!(exists(&url, sql, &name).await);
        let mut conn = sqlx::PgConnection::connect(db.url())
            .await
            .expect("connect");
        let current: String = sqlx::query_scalar("SELECT current_database()::text")
            .fetch_one(&mut conn)
            .await
            .expect("current_database");
        assert_eq!(current, name);
        // Still connected: the drop closes it.
        drop(db);
        assert!(!exists(&url, sql, &name).await);
        drop(conn);
    }
}
