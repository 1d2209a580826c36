//! Database side of the scenarios: task timings, raw rows, outages (PostgreSQL admin
//! statements, a SQLite lock holder), and process memory.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Row};

use crate::backend::POSTGRES_ENV;
use crate::inspect::{Inspector, Snapshot};

/// Timing columns of one `durable_tasks` row, in Unix milliseconds of the database's clock
/// (PostgreSQL) or the writer's clock (SQLite).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Times {
    /// Lower-case hyphenated id.
    pub id: String,
    /// Task type.
    pub name: String,
    /// State.
    pub state: String,
    /// Counted attempts.
    pub attempts: i64,
    /// When it is (was) due.
    pub run_at: i64,
    /// Start of the latest attempt.
    pub started_at: Option<i64>,
    /// When it finished.
    pub finished_at: Option<i64>,
    /// When it was stored.
    pub created_at: i64,
}

const SQLITE_TIMES: &str = "SELECT id, name, state, attempts, run_at, started_at, finished_at, \
     created_at FROM durable_tasks";
const POSTGRES_TIMES: &str = "SELECT CAST(id AS TEXT) AS id, name, state, \
     CAST(attempts AS BIGINT) AS attempts, \
     CAST(extract(epoch FROM run_at) * 1000 AS BIGINT) AS run_at, \
     CAST(extract(epoch FROM started_at) * 1000 AS BIGINT) AS started_at, \
     CAST(extract(epoch FROM finished_at) * 1000 AS BIGINT) AS finished_at, \
     CAST(extract(epoch FROM created_at) * 1000 AS BIGINT) AS created_at FROM durable_tasks";

macro_rules! times_of {
    ($rows:expr) => {
        $rows
            .iter()
            .map(|row| {
                Ok(Times {
                    id: row.try_get::<String, _>("id")?.to_ascii_lowercase(),
                    name: row.try_get("name")?,
                    state: row.try_get("state")?,
                    attempts: row.try_get("attempts")?,
                    run_at: row.try_get("run_at")?,
                    started_at: row.try_get("started_at")?,
                    finished_at: row.try_get("finished_at")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    };
}

/// Every task row's timings.
pub async fn task_times(inspector: &Inspector) -> Result<Vec<Times>, sqlx::Error> {
    match inspector {
        Inspector::Sqlite(pool) => {
            times_of!(sqlx::query(SQLITE_TIMES).fetch_all(pool).await?)
        }
        Inspector::Postgres(pool) => {
            times_of!(sqlx::query(POSTGRES_TIMES).fetch_all(pool).await?)
        }
    }
}

/// Inserts a `pending` row directly, bypassing the client (a row written by another
/// version of the code, or by hand): `name` and `payload` (JSON text) as given.
pub async fn insert_raw_task(
    inspector: &Inspector,
    id: &str,
    name: &str,
    payload: &str,
) -> Result<(), sqlx::Error> {
    match inspector {
        Inspector::Sqlite(pool) => {
            let now = i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("the clock is after 1970")
                    .as_millis(),
            )
            .expect("milliseconds fit in i64");
            sqlx::query(
                "INSERT INTO durable_tasks (id, name, queue, payload, state, priority, attempts, \
                 max_attempts, run_at, created_at, updated_at) \
                 VALUES (?1, ?2, 'default', ?3, 'pending', 0, 0, 3, ?4, ?4, ?4)",
            )
            .bind(id)
            .bind(name)
            .bind(payload)
            .bind(now)
            .execute(pool)
            .await?;
        }
        Inspector::Postgres(pool) => {
            sqlx::query(
                "INSERT INTO durable_tasks (id, name, payload, max_attempts) \
                 VALUES (CAST($1 AS uuid), $2, CAST($3 AS jsonb), 3)",
            )
            .bind(id)
            .bind(name)
            .bind(payload)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// Reads the tables, retrying connection errors (the database may be coming back from an
/// outage) for up to `timeout`.
///
/// # Panics
///
/// If no read succeeds within `timeout`.
pub async fn snapshot(inspector: &Inspector, timeout: Duration) -> Snapshot {
    let deadline = Instant::now() + timeout;
    loop {
        match inspector.try_snapshot().await {
            Ok(snapshot) => return snapshot,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot read the example's tables for {timeout:?}: {e}"),
        }
    }
}

/// Polls the tables until `check` accepts them; returns that snapshot.
///
/// # Panics
///
/// After `timeout`, with `what` and the last state counts.
pub async fn wait_for(
    inspector: &Inspector,
    what: &str,
    timeout: Duration,
    mut check: impl FnMut(&Snapshot) -> bool,
) -> Snapshot {
    let deadline = Instant::now() + timeout;
    loop {
        let snapshot = snapshot(inspector, timeout).await;
        if check(&snapshot) {
            return snapshot;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}; rows by state: {:?}",
            snapshot.counts()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until no task is `pending` or `processing`.
pub async fn wait_finished(inspector: &Inspector, timeout: Duration) -> Snapshot {
    wait_for(
        inspector,
        "no task is pending or processing",
        timeout,
        |s| s.unfinished() == 0,
    )
    .await
}

/// The database name of a PostgreSQL URL.
pub fn database_name(url: &str) -> String {
    let without_query = url.split('?').next().unwrap_or(url);
    without_query
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A superuser connection to the server of [`POSTGRES_ENV`] (its own database, not the
/// test's), for outages aimed at one test database only.
#[derive(Debug)]
pub struct PgAdmin {
    conn: sqlx::PgConnection,
}

impl PgAdmin {
    /// Connects to [`POSTGRES_ENV`].
    ///
    /// # Panics
    ///
    /// If it is unset or unreachable.
    pub async fn connect() -> PgAdmin {
        let url = std::env::var(POSTGRES_ENV).expect("the PostgreSQL scenarios have a server");
        let conn = sqlx::PgConnection::connect(url.trim())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_ENV}: {e}"));
        PgAdmin { conn }
    }

    /// `pg_terminate_backend` for the backends of database `db` whose `application_name` is
    /// `application` and whose state is one of `states` (all states if empty). Returns how
    /// many were terminated.
    pub async fn terminate(
        &mut self,
        db: &str,
        application: &str,
        states: &[&str],
    ) -> Result<usize, sqlx::Error> {
        let states: Vec<String> = states.iter().map(|s| (*s).to_owned()).collect();
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid() AND application_name = $2 \
               AND (cardinality($3::text[]) = 0 OR state = ANY($3::text[]))",
        )
        .bind(db)
        .bind(application)
        .bind(&states)
        .fetch_all(&mut self.conn)
        .await?;
        Ok(killed.into_iter().filter(|k| *k).count())
    }

    /// Terminates every backend of `db` (the whole app, the inspector too).
    pub async fn terminate_all(&mut self, db: &str) -> Result<usize, sqlx::Error> {
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(db)
        .fetch_all(&mut self.conn)
        .await?;
        Ok(killed.into_iter().filter(|k| *k).count())
    }

    /// `ALTER DATABASE db ALLOW_CONNECTIONS on/off`: off, nobody (superusers included) can
    /// open a connection to it.
    pub async fn allow_connections(&mut self, db: &str, allow: bool) -> Result<(), sqlx::Error> {
        assert!(
            db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "unexpected database name {db:?}"
        );
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS {allow}"
        )))
        .execute(&mut self.conn)
        .await?;
        Ok(())
    }
}

/// Holds SQLite's write lock on the database file of `url` (`BEGIN EXCLUSIVE` on a
/// connection of its own) for `hold`, then releases it. Every writer of the file waits (up
/// to its busy timeout) meanwhile; readers of a WAL database still read.
///
/// # Panics
///
/// If the lock cannot be taken within 10 s.
pub async fn hold_sqlite_lock(url: &str, hold: Duration) {
    let options = SqliteConnectOptions::from_str(url)
        .expect("a valid SQLite URL")
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(10));
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("open the SQLite file for the lock holder");
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut conn)
        .await
        .expect("take the SQLite write lock");
    tokio::time::sleep(hold).await;
    sqlx::query("ROLLBACK")
        .execute(&mut conn)
        .await
        .expect("release the SQLite write lock");
    conn.close().await.ok();
}

/// Whether SQLite's write lock on the database file of `url` can be taken within `wait`
/// (`BEGIN IMMEDIATE` on a connection of its own, rolled back at once). `false`: a writer
/// held it all that time — longer than any live writer's transaction lasts, so a writer
/// that is stopped.
///
/// # Panics
///
/// If the file cannot be opened.
pub async fn sqlite_lock_free(url: &str, wait: Duration) -> bool {
    let options = SqliteConnectOptions::from_str(url)
        .expect("a valid SQLite URL")
        .create_if_missing(false)
        .busy_timeout(wait);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("open the SQLite file for the lock probe");
    let free = sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .is_ok();
    if free {
        sqlx::query("ROLLBACK")
            .execute(&mut conn)
            .await
            .expect("release the SQLite write lock");
    }
    conn.close().await.ok();
    free
}

/// A field of `/proc/<pid>/status` in kB (`VmRSS`, `VmHWM`), if readable.
pub fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{database_name, hold_sqlite_lock, sqlite_lock_free};

    #[test]
    fn database_names() {
        assert_eq!(database_name("postgres://u@h:5432/t_1"), "t_1");
        assert_eq!(database_name("postgres://u@h/t_2?sslmode=disable"), "t_2");
    }

    /// The probe the zombie scenario relies on tells a held write lock from a free one.
    #[tokio::test]
    async fn the_lock_probe_sees_a_held_write_lock() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("lock.db").display());
        let options = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .expect("a valid SQLite URL")
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
            .await
            .expect("create the file");
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&mut conn)
            .await
            .expect("a table");
        assert!(sqlite_lock_free(&url, Duration::from_millis(300)).await);
        let holder = tokio::spawn({
            let url = url.clone();
            async move { hold_sqlite_lock(&url, Duration::from_secs(2)).await }
        });
        // The holder takes the lock at once; the probe must find it taken for its whole wait.
        let until = tokio::time::Instant::now() + Duration::from_secs(1);
        let mut seen_held = false;
        while !seen_held && tokio::time::Instant::now() < until {
            seen_held = !sqlite_lock_free(&url, Duration::from_millis(300)).await;
        }
        assert!(seen_held, "the probe never saw the held lock");
        holder.await.expect("the holder");
        assert!(sqlite_lock_free(&url, Duration::from_millis(300)).await);
    }
}
