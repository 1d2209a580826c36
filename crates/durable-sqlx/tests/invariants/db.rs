//! The databases an iteration runs on: a fresh SQLite file, or a fresh PostgreSQL schema
//! (dropped afterwards), and how each simulated process opens its own connections to it.

use std::sync::Arc;
#[cfg(feature = "postgres")]
use std::time::Duration;

use durable_core::store::Store;
use durable_sqlx::sqlite::{Durability, SqliteStore};

/// Which backend.
#[derive(Debug, Clone)]
pub enum Kind {
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres(String),
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
            #[cfg(feature = "postgres")]
            Kind::Postgres(_) => "postgres",
        }
    }
}

/// How to open a store on the iteration's database (cheap to clone into a process).
#[derive(Debug, Clone)]
pub enum Connector {
    Sqlite(String),
    #[cfg(feature = "postgres")]
    Postgres {
        url: String,
        schema: String,
    },
}

impl Connector {
    /// A store with connections of its own, opened on the current Tokio runtime (a
    /// process's connections die with it).
    pub async fn connect(self) -> Arc<dyn Store> {
        match self {
            // NORMAL: the test exercises logic, not fsync; a process "crash" here keeps the OS.
            Connector::Sqlite(url) => Arc::new(
                SqliteStore::builder(url)
                    .durability(Durability::Normal)
                    .readers(2)
                    .connect()
                    .await
                    .expect("open the SQLite file"),
            ),
            #[cfg(feature = "postgres")]
            Connector::Postgres { url, schema } => Arc::new(
                durable_sqlx::postgres::PostgresStore::builder(url)
                    .schema(schema.clone())
                    .application_name(schema)
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect()
                    .await
                    .expect("connect to PostgreSQL"),
            ),
        }
    }
}

/// A fresh, migrated database, removed when dropped.
pub struct Database {
    pub connector: Connector,
    _dir: Option<tempfile::TempDir>,
    #[cfg(feature = "postgres")]
    _schema: Option<pg::SchemaGuard>,
}

impl Database {
    pub async fn create(kind: &Kind) -> Database {
        let database = match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("tasks.db").display());
                Database {
                    connector: Connector::Sqlite(url),
                    _dir: Some(dir),
                    #[cfg(feature = "postgres")]
                    _schema: None,
                }
            }
            #[cfg(feature = "postgres")]
            Kind::Postgres(url) => {
                // The `t_<uuid v7>` shape of the other PostgreSQL tests: a schema left by a
                // killed run is swept by their next run.
                let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
                Database {
                    connector: Connector::Postgres {
                        url: url.clone(),
                        schema: schema.clone(),
                    },
                    _dir: None,
                    _schema: Some(pg::SchemaGuard {
                        url: url.clone(),
                        schema,
                    }),
                }
            }
        };
        let store = database.connector.clone().connect().await;
        store.migrate().await.expect("migrate");
        database
    }
}

/// The PostgreSQL URL, or `None` (after saying so) when PostgreSQL tests are not configured.
///
/// # Panics
///
/// When the variable is missing and `CI` is set: CI must run these tests.
#[cfg(feature = "postgres")]
pub fn postgres_url() -> Option<String> {
    use std::io::Write as _;
    const URL_VAR: &str = "DURABLE_TEST_DATABASE_URL";
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").map_or(true, |v| v.is_empty()),
                "PostgreSQL tests are required in CI: set {URL_VAR}=postgres://user@host:port/database"
            );
            let _ = writeln!(
                std::io::stderr(),
                "skipped: set {URL_VAR}=postgres://user@host:port/database to run the PostgreSQL invariants"
            );
            None
        }
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use sqlx::{Connection, PgConnection};

    /// Drops the schema when dropped (also when the test panics).
    pub struct SchemaGuard {
        pub url: String,
        pub schema: String,
    }

    impl Drop for SchemaGuard {
        fn drop(&mut self) {
            let (url, schema) = (self.url.clone(), self.schema.clone());
            // A runtime of its own on a thread of its own: this may run inside the test's.
            let dropped = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio");
                rt.block_on(async {
                    let mut conn = PgConnection::connect(&url).await?;
                    sqlx::query("SET lock_timeout = '10s'")
                        .execute(&mut conn)
                        .await?;
                    let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await?;
                    conn.close().await
                })
            })
            .join();
            if let Ok(Err(e)) = dropped {
                eprintln!("could not drop test schema {}: {e}", self.schema);
            }
        }
    }
}
