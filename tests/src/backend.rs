//! A fresh database per test, on SQLite or PostgreSQL.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use durable_testkit::PgDatabase;
use tempfile::TempDir;

/// Environment variable naming the PostgreSQL server the PostgreSQL variants use, e.g.
/// `postgres://postgres@127.0.0.1:5432/test`. Each test creates (and drops) its own database
/// on it.
pub const POSTGRES_ENV: &str = durable_testkit::URL_VAR;

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
    /// Held for its `Drop`: the database goes with the `TestDb`.
    _postgres: Option<PgDatabase>,
    servers: AtomicUsize,
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
                let admin_url = durable_testkit::database_url()?;
                let db = PgDatabase::create(&admin_url, "t")
                    .await
                    .unwrap_or_else(|e| panic!("cannot create a database on {admin_url}: {e}"));
                Some(TestDb::new(backend, db.url().to_owned(), dir, Some(db)))
            }
        }
    }

    fn new(backend: Backend, url: String, dir: TempDir, postgres: Option<PgDatabase>) -> Self {
        TestDb {
            backend,
            url,
            dir: Some(dir),
            _postgres: postgres,
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
        // The database is dropped with its field (`WITH (FORCE)`), after this.
    }
}
