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
    _file: Option<durable_testkit::SqliteFile>,
    #[cfg(feature = "postgres")]
    _schema: Option<durable_testkit::PgSchema>,
}

impl Database {
    pub async fn create(kind: &Kind) -> Database {
        let database = match kind {
            Kind::Sqlite => {
                let file = durable_testkit::SqliteFile::new();
                Database {
                    connector: Connector::Sqlite(file.url()),
                    _file: Some(file),
                    #[cfg(feature = "postgres")]
                    _schema: None,
                }
            }
            #[cfg(feature = "postgres")]
            Kind::Postgres(url) => {
                // A `t_<uuid v7>` schema: one left by a killed run is swept by a later run.
                let schema = durable_testkit::PgSchema::new(url).await;
                Database {
                    connector: Connector::Postgres {
                        url: url.clone(),
                        schema: schema.name().to_owned(),
                    },
                    _file: None,
                    _schema: Some(schema),
                }
            }
        };
        let store = database.connector.clone().connect().await;
        store.migrate().await.expect("migrate");
        database
    }
}
