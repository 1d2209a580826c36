//! Opening a fresh store per measurement (a temporary SQLite file or a PostgreSQL schema of
//! its own, from `durable-testkit`, removed afterwards), the no-op task, and the naive insert.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use durable_core::store::Store;
use durable_core::{Task, TaskContext, TaskError, TaskId};
use durable_sqlx::postgres::PostgresStore;
use durable_sqlx::sqlite::{Durability, SqliteStore};
use durable_testkit::{PgSchema, SqliteFile};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::Result;

/// A store implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Backend {
    /// `SqliteStore` on a temporary file (WAL, `synchronous=FULL`).
    Sqlite,
    /// `PostgresStore` in a schema of its own.
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// The benchmark's task: does nothing.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct NoOp {}

impl Task for NoOp {
    const NAME: &'static str = "bench_noop";
    type State = ();

    async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
        Ok(())
    }
}

/// Checks that PostgreSQL answers at `url` and that the store's module is built in.
pub(crate) async fn check_postgres(url: &str) -> Result<()> {
    let options = PgConnectOptions::from_str(url)?;
    let mut conn = PgConnection::connect_with(&options).await?;
    sqlx::query("SELECT 1").execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// A unique name for a schema or database of this process.
pub(crate) fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

enum Kind {
    Sqlite {
        store: SqliteStore,
        file: SqliteFile,
    },
    Postgres {
        store: PostgresStore,
        schema: PgSchema,
    },
}

/// A freshly migrated, empty store for one measurement; [`close`](Self::close) removes it.
pub(crate) struct BenchStore {
    /// Which implementation.
    pub(crate) backend: Backend,
    /// The store, shared.
    pub(crate) store: Arc<dyn Store>,
    kind: Kind,
}

impl fmt::Debug for BenchStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BenchStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// SQLite durability of the stores [`BenchStore::open`] opens (`--sqlite-sync`).
static SQLITE_DURABILITY: std::sync::OnceLock<Durability> = std::sync::OnceLock::new();

/// Sets the SQLite durability of every store opened from now on (once, at start).
pub(crate) fn set_sqlite_durability(durability: Durability) {
    let _ = SQLITE_DURABILITY.set(durability);
}

impl BenchStore {
    /// Opens an empty store: a new SQLite file (`synchronous=FULL` unless `--sqlite-sync
    /// normal`) or a new PostgreSQL schema.
    pub(crate) async fn open(backend: Backend, url: &str) -> Result<Self> {
        match backend {
            Backend::Sqlite => {
                Self::open_sqlite(SQLITE_DURABILITY.get().copied().unwrap_or_default()).await
            }
            Backend::Postgres => Self::open_postgres(url).await,
        }
    }

    /// Opens an empty SQLite store with the given durability.
    pub(crate) async fn open_sqlite(durability: Durability) -> Result<Self> {
        let file = SqliteFile::create("durable-bench", "bench.db")?;
        let store = SqliteStore::builder(file.url())
            .durability(durability)
            .connect()
            .await?;
        store.migrate().await?;
        Ok(Self {
            backend: Backend::Sqlite,
            store: Arc::new(store.clone()),
            kind: Kind::Sqlite { store, file },
        })
    }

    /// Opens an empty PostgreSQL store in a new schema of the database of `url`.
    pub(crate) async fn open_postgres(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?;
        // Named for the benchmark (not `t_<uuid>`): no sweep of other runs' schemas.
        let schema = PgSchema::named(url, &unique_name("durable_bench"));
        let store = PostgresStore::builder_with_options(options)
            .schema(schema.name())
            .application_name("durable-bench")
            .connect()
            .await?;
        store.migrate().await?;
        Ok(Self {
            backend: Backend::Postgres,
            store: Arc::new(store.clone()),
            kind: Kind::Postgres { store, schema },
        })
    }

    /// The SQLite store's single writer pool, if SQLite.
    pub(crate) fn sqlite_writer(&self) -> Option<&sqlx::SqlitePool> {
        match &self.kind {
            Kind::Sqlite { store, .. } => Some(store.writer_pool()),
            Kind::Postgres { .. } => None,
        }
    }

    /// The SQLite file, if SQLite (other processes open the same store through its URL).
    pub(crate) fn sqlite_file(&self) -> Option<&SqliteFile> {
        match &self.kind {
            Kind::Sqlite { file, .. } => Some(file),
            Kind::Postgres { .. } => None,
        }
    }

    /// The PostgreSQL store's pool, if PostgreSQL.
    pub(crate) fn pg_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.kind {
            Kind::Postgres { store, .. } => Some(store.pool()),
            Kind::Sqlite { .. } => None,
        }
    }

    /// The PostgreSQL schema, if PostgreSQL.
    pub(crate) fn pg_schema(&self) -> Option<&str> {
        match &self.kind {
            Kind::Postgres { schema, .. } => Some(schema.name()),
            Kind::Sqlite { .. } => None,
        }
    }

    /// A second PostgreSQL store on the same schema with a pool of its own (another
    /// "instance"), if PostgreSQL.
    pub(crate) async fn second_instance(&self) -> Result<Option<PostgresStore>> {
        match &self.kind {
            Kind::Postgres { store, schema, .. } => {
                let options = store.pool().connect_options().as_ref().clone();
                let other = PostgresStore::builder_with_options(options)
                    .schema(schema.name())
                    .application_name("durable-bench-b")
                    .connect()
                    .await?;
                Ok(Some(other))
            }
            Kind::Sqlite { .. } => Ok(None),
        }
    }

    /// The same storage behind a new pool (PostgreSQL: the old pool closed, a new store on the
    /// same schema, not migrated again); SQLite unchanged.
    pub(crate) async fn fresh_pool(self) -> Result<Self> {
        match self.kind {
            Kind::Postgres { store, schema } => {
                let options = store.pool().connect_options().as_ref().clone();
                store.pool().close().await;
                let store = PostgresStore::builder_with_options(options)
                    .schema(schema.name())
                    .application_name("durable-bench")
                    .connect()
                    .await?;
                Ok(Self {
                    backend: Backend::Postgres,
                    store: Arc::new(store.clone()),
                    kind: Kind::Postgres { store, schema },
                })
            }
            kind @ Kind::Sqlite { .. } => Ok(Self { kind, ..self }),
        }
    }

    /// The naive design: one row inserted in its own transaction (begin, insert, commit),
    /// straight into the same table, on the store's own connections.
    pub(crate) async fn naive_insert(&self) -> Result<()> {
        let id = TaskId::new();
        match &self.kind {
            Kind::Sqlite { store, .. } => {
                let now = chrono_ms();
                let mut tx = store.writer_pool().begin_with("BEGIN IMMEDIATE").await?;
                sqlx::query(
                    "INSERT INTO durable_tasks (id, name, queue, payload, max_attempts, run_at, \
                     created_at, updated_at) VALUES (?, 'bench_noop', 'default', '{}', 20, ?, ?, ?)",
                )
                .bind(id.to_string())
                .bind(now)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            Kind::Postgres { store, .. } => {
                let mut tx = store.pool().begin().await?;
                sqlx::query(
                    "INSERT INTO durable_tasks (id, name, queue, payload, max_attempts) \
                     VALUES ($1, 'bench_noop', 'default', '{}', 20)",
                )
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Closes the pools and removes the file or schema.
    pub(crate) async fn close(self) -> Result<()> {
        drop(self.store);
        match self.kind {
            Kind::Sqlite { store, file } => {
                store.writer_pool().close().await;
                store.reader_pool().close().await;
                drop(file);
            }
            Kind::Postgres { store, schema } => {
                store.pool().close().await;
                schema.drop_now().await?;
            }
        }
        Ok(())
    }
}

/// Unix milliseconds now (the SQLite store's time unit).
fn chrono_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
