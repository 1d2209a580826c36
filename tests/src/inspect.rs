//! Reads the example's tables directly, from the test process.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

use crate::backend::{Backend, TestDb};

const TASKS: &str =
    "SELECT CAST(id AS TEXT) AS id, name, state, CAST(attempts AS BIGINT) AS attempts, \
     CAST(lease_owner AS TEXT) AS lease_owner, last_error FROM durable_tasks ORDER BY id";
const USERS: &str = "SELECT email FROM users ORDER BY email";
const SENT: &str = "SELECT email, CAST(task_id AS TEXT) AS task_id FROM sent_emails ORDER BY email";

/// One row of `durable_tasks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// Lower-case hyphenated UUID.
    pub id: String,
    /// Task type name.
    pub name: String,
    /// `pending`, `processing`, `completed`, `failed` or `cancelled`.
    pub state: String,
    /// Attempts started (and counted).
    pub attempts: i64,
    /// The worker holding the lease, if any.
    pub lease_owner: Option<String>,
    /// The last recorded error.
    pub last_error: Option<String>,
}

/// The example's tables at one moment (read in one transaction).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `durable_tasks`, by id.
    pub tasks: Vec<TaskRow>,
    /// `users.email`.
    pub users: Vec<String>,
    /// `sent_emails`: `(email, task_id)`.
    pub sent: Vec<(String, String)>,
}

impl Snapshot {
    /// Rows per state.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for task in &self.tasks {
            *counts.entry(task.state.clone()).or_default() += 1;
        }
        counts
    }

    /// Rows in `state`.
    pub fn count(&self, state: &str) -> usize {
        self.tasks.iter().filter(|t| t.state == state).count()
    }

    /// Rows `pending` or `processing`.
    pub fn unfinished(&self) -> usize {
        self.count("pending") + self.count("processing")
    }

    /// The task row with `id` (any case).
    pub fn task(&self, id: &str) -> Option<&TaskRow> {
        self.tasks.iter().find(|t| t.id.eq_ignore_ascii_case(id))
    }

    /// `sent_emails` rows for `email`.
    pub fn sent_count(&self, email: &str) -> usize {
        self.sent.iter().filter(|(e, _)| e == email).count()
    }

    /// Whether `users` holds `email`.
    pub fn has_user(&self, email: &str) -> bool {
        self.users.iter().any(|u| u == email)
    }

    /// Tasks that started more than one counted attempt.
    pub fn rerun(&self) -> usize {
        self.tasks.iter().filter(|t| t.attempts > 1).count()
    }
}

/// A connection pool on a test's database.
#[derive(Debug, Clone)]
pub enum Inspector {
    /// On the SQLite file (WAL: reads do not block the server).
    Sqlite(SqlitePool),
    /// On the PostgreSQL database.
    Postgres(PgPool),
}

macro_rules! read {
    ($tx:expr) => {{
        let tasks = sqlx::query(TASKS)
            .fetch_all(&mut *$tx)
            .await?
            .iter()
            .map(|row| {
                Ok(TaskRow {
                    id: row.try_get::<String, _>("id")?.to_ascii_lowercase(),
                    name: row.try_get("name")?,
                    state: row.try_get("state")?,
                    attempts: row.try_get("attempts")?,
                    lease_owner: row.try_get("lease_owner")?,
                    last_error: row.try_get("last_error")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let users = sqlx::query(USERS)
            .fetch_all(&mut *$tx)
            .await?
            .iter()
            .map(|row| row.try_get("email"))
            .collect::<Result<Vec<String>, sqlx::Error>>()?;
        let sent = sqlx::query(SENT)
            .fetch_all(&mut *$tx)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("email")?,
                    row.try_get::<String, _>("task_id")?.to_ascii_lowercase(),
                ))
            })
            .collect::<Result<Vec<(String, String)>, sqlx::Error>>()?;
        Snapshot { tasks, users, sent }
    }};
}

impl Inspector {
    /// Connects to `db` (after a server created and migrated it).
    ///
    /// # Panics
    ///
    /// If the database cannot be opened.
    pub async fn connect(db: &TestDb) -> Inspector {
        match db.backend() {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(db.url())
                    .expect("a valid SQLite URL")
                    .create_if_missing(false)
                    .busy_timeout(Duration::from_secs(10));
                let pool = SqlitePoolOptions::new()
                    .max_connections(2)
                    .connect_with(options)
                    .await
                    .unwrap_or_else(|e| panic!("cannot open {}: {e}", db.url()));
                Inspector::Sqlite(pool)
            }
            Backend::Postgres => {
                let pool = PgPoolOptions::new()
                    .max_connections(2)
                    .connect(db.url())
                    .await
                    .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", db.url()));
                Inspector::Postgres(pool)
            }
        }
    }

    /// Reads the tables in one transaction.
    pub async fn try_snapshot(&self) -> Result<Snapshot, sqlx::Error> {
        match self {
            Inspector::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let snapshot = read!(tx);
                tx.commit().await?;
                Ok(snapshot)
            }
            Inspector::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .execute(&mut *tx)
                    .await?;
                let snapshot = read!(tx);
                tx.commit().await?;
                Ok(snapshot)
            }
        }
    }

    /// [`try_snapshot`](Self::try_snapshot), panicking on a database error.
    pub async fn snapshot(&self) -> Snapshot {
        self.try_snapshot()
            .await
            .unwrap_or_else(|e| panic!("reading the example's tables failed: {e}"))
    }
}
