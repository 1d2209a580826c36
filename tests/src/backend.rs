//! A fresh database per test, on SQLite or PostgreSQL.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::Connection;
use tempfile::TempDir;

/// Environment variable naming the PostgreSQL server the PostgreSQL variants use, e.g.
/// `postgres://postgres@127.0.0.1:5432/test`. Each test creates (and drops) its own database
/// on it.
pub const POSTGRES_ENV: &str = "DURABLE_TEST_DATABASE_URL";

/// Which database the example runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in the test's temporary directory.
    Sqlite,
    /// A database of its own on the server named by [`POSTGRES_ENV`].
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// A database for one test, plus a temporary directory for its server logs. The PostgreSQL
/// database is dropped (`WITH (FORCE)`) when this is dropped. If the test panics, the
/// temporary directory is kept and its path printed, for the logs.
#[derive(Debug)]
pub struct TestDb {
    backend: Backend,
    url: String,
    dir: Option<TempDir>,
    postgres: Option<PgCleanup>,
    servers: AtomicUsize,
}

#[derive(Debug)]
struct PgCleanup {
    admin_url: String,
    name: String,
}

impl TestDb {
    /// A fresh database on `backend`; `None` if the PostgreSQL variant must be skipped
    /// ([`POSTGRES_ENV`] unset outside CI; the reason is printed).
    ///
    /// # Panics
    ///
    /// If [`POSTGRES_ENV`] is unset while `CI` is set (PostgreSQL tests are required in CI),
    /// or the database cannot be created.
    pub async fn create(backend: Backend) -> Option<TestDb> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("durable-{backend}-"))
            .tempdir()
            .expect("create a temporary directory");
        match backend {
            Backend::Sqlite => {
                let file = dir.path().join("signup.db");
                let url = format!("sqlite://{}", file.display());
                Some(TestDb::new(backend, url, dir, None))
            }
            Backend::Postgres => {
                let admin_url = match std::env::var(POSTGRES_ENV) {
                    Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
                    _ => {
                        let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty());
                        assert!(
                            !in_ci,
                            "{POSTGRES_ENV} is not set, but PostgreSQL tests are required in CI \
                             (CI is set): start PostgreSQL and set e.g. \
                             {POSTGRES_ENV}=postgres://postgres@127.0.0.1:5432/test"
                        );
                        eprintln!(
                            "skipped: set {POSTGRES_ENV}=postgres://postgres@127.0.0.1:5432/test \
                             to run PostgreSQL tests"
                        );
                        return None;
                    }
                };
                let name = format!("t_{}", uuid::Uuid::new_v4().simple());
                let mut admin = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("cannot connect to {POSTGRES_ENV}={admin_url}: {e}")
                    });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .execute(&mut admin)
                    .await
                    .unwrap_or_else(|e| panic!("CREATE DATABASE {name} failed: {e}"));
                admin.close().await.ok();
                let url = with_database(&admin_url, &name);
                Some(TestDb::new(
                    backend,
                    url,
                    dir,
                    Some(PgCleanup { admin_url, name }),
                ))
            }
        }
    }

    fn new(backend: Backend, url: String, dir: TempDir, postgres: Option<PgCleanup>) -> Self {
        TestDb {
            backend,
            url,
            dir: Some(dir),
            postgres,
            servers: AtomicUsize::new(0),
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The `DATABASE_URL` to give the example.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The test's temporary directory (SQLite file, server logs).
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("the temporary directory lives as long as the TestDb")
            .path()
    }

    /// A new log file path for the next server started on this database.
    pub(crate) fn next_log_path(&self) -> (usize, PathBuf) {
        let n = self.servers.fetch_add(1, Ordering::Relaxed) + 1;
        (n, self.dir().join(format!("server-{n}.log")))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!(
                    "test failed: keeping {} (database and server logs)",
                    kept.display()
                );
            }
        }
        if let Some(pg) = self.postgres.take() {
            // Drop runs inside the test's runtime: do the async cleanup on a thread of its own.
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("build a runtime for dropping the test database");
                runtime
                    .block_on(async {
                        let mut admin = sqlx::PgConnection::connect(&pg.admin_url).await?;
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                            pg.name
                        )))
                        .execute(&mut admin)
                        .await?;
                        admin.close().await
                    })
                    .map_err(|e| format!("DROP DATABASE {} failed: {e}", pg.name))
            })
            .join();
            match dropped {
                Ok(Ok(())) => {}
                Ok(Err(message)) => eprintln!("warning: {message}"),
                Err(_) => eprintln!("warning: dropping the test database panicked"),
            }
        }
    }
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
    use super::with_database;

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
}
