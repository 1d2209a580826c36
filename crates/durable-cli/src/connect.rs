//! Opening the store a URL names: SQLite or PostgreSQL.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use durable_core::store::Store;
use durable_sqlx::postgres::PostgresStore;
use durable_sqlx::sqlite::SqliteStore;

use crate::error::{Error, Result};

/// Which backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

fn backend(url: &str) -> Option<Backend> {
    let url = url.trim();
    if url.starts_with("sqlite:") {
        Some(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(Backend::Postgres)
    } else {
        None
    }
}

/// The file a SQLite URL names, or `None` for an in-memory database.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.trim().strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:") && !url.contains("mode=memory")).then_some(path)
}

/// Opens the store of `url`. Only `create` (for `migrate`) may create a SQLite file: any
/// other command on a mistyped path would otherwise leave an empty database behind and
/// report it empty instead of wrong.
///
/// `timeout` bounds the wait for a PostgreSQL connection: an unreachable server is retried
/// until then, not reported at the first refusal (a server restarting accepts soon after).
pub(crate) async fn open(
    url: &str,
    schema: Option<&str>,
    create: bool,
    timeout: Duration,
) -> Result<Arc<dyn Store>> {
    match backend(url) {
        Some(Backend::Sqlite) => {
            if schema.is_some() {
                return Err(Error::Usage(
                    "--schema applies to PostgreSQL only; a SQLite database has no schemas".into(),
                ));
            }
            if let Some(path) = sqlite_path(url) {
                if !create && !Path::new(path).exists() {
                    return Err(Error::NoDatabase {
                        path: path.to_owned(),
                    });
                }
            }
            let store = SqliteStore::builder(url)
                .readers(1)
                .connect()
                .await
                .map_err(|source| Error::Connect { source })?;
            Ok(Arc::new(store))
        }
        Some(Backend::Postgres) => {
            let mut builder = PostgresStore::builder(url)
                .application_name("durable-cli")
                .max_connections(2)
                .acquire_timeout(timeout);
            if let Some(schema) = schema {
                builder = builder.schema(schema);
            }
            let store = builder
                .connect()
                .await
                .map_err(|source| Error::Connect { source })?;
            Ok(Arc::new(store))
        }
        None => Err(Error::Usage(
            "the database URL must start with sqlite: or postgres:// (set --database-url or DATABASE_URL)"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_backend_and_file() {
        assert_eq!(backend("sqlite://a.db"), Some(Backend::Sqlite));
        assert_eq!(backend("postgresql://h/db"), Some(Backend::Postgres));
        assert_eq!(backend("mysql://h/db"), None);
        assert_eq!(
            sqlite_path("sqlite://data/app.db?mode=rwc"),
            Some("data/app.db")
        );
        assert_eq!(sqlite_path("sqlite:app.db"), Some("app.db"));
        assert_eq!(sqlite_path("sqlite:///var/app.db"), Some("/var/app.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }
}
