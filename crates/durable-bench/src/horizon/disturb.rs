//! What holds the horizon back during a phase: sessions of their own (not the store's pools)
//! that open a transaction at the phase's start and keep it to its end — a snapshot of the
//! task table, or (`idle-xid`) a transaction id alone, which reads none of the queue's
//! tables and so holds no lock on them.
//!
//! On PostgreSQL a `REPEATABLE READ` snapshot keeps `VACUUM` from removing any row version
//! that became dead after it was taken; on SQLite an open read transaction keeps checkpoints
//! from copying WAL frames past its snapshot into the database and the WAL from restarting.

use std::str::FromStr;
use std::time::Duration;

use durable_core::CancellationToken;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection, SqliteConnection};
use tokio::task::JoinSet;

use super::args::Phase;
use crate::Result;

/// Where the run's tables are.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A schema of a PostgreSQL database.
    Postgres {
        /// Server and database.
        url: String,
        /// The run's schema.
        schema: String,
    },
    /// A SQLite file.
    Sqlite {
        /// `sqlite://` URL of the file.
        url: String,
    },
}

/// A session of its own on the run's tables.
enum Session {
    Pg(PgConnection),
    Lite(SqliteConnection),
}

impl Session {
    /// Opens a session on `target`; on PostgreSQL with `parallel_workers` as its
    /// `max_parallel_workers_per_gather` when given (the server's otherwise).
    async fn open(target: &Target, parallel_workers: Option<u32>) -> Result<Self> {
        match target {
            Target::Postgres { url, schema } => {
                let mut conn = PgConnectOptions::from_str(url)?
                    .application_name("durable-bench-horizon-reader")
                    .connect()
                    .await?;
                let path = format!("SET search_path = \"{}\"", schema.replace('"', "\"\""));
                let set = match parallel_workers {
                    Some(workers) => {
                        format!("{path}; SET max_parallel_workers_per_gather = {workers}")
                    }
                    None => path,
                };
                sqlx::raw_sql(AssertSqlSafe(set)).execute(&mut conn).await?;
                Ok(Session::Pg(conn))
            }
            Target::Sqlite { url } => Ok(Session::Lite(
                SqliteConnectOptions::from_str(url)?
                    .busy_timeout(Duration::from_secs(10))
                    .connect()
                    .await?,
            )),
        }
    }

    async fn exec(&mut self, sql: &'static str) -> Result<()> {
        match self {
            Session::Pg(conn) => sqlx::raw_sql(sql).execute(conn).await.map(drop)?,
            Session::Lite(conn) => sqlx::raw_sql(sql).execute(conn).await.map(drop)?,
        }
        Ok(())
    }

    /// Opens the snapshot: `BEGIN` and a first read of the task table (PostgreSQL takes a
    /// `REPEATABLE READ` snapshot at the first statement, SQLite at the first read).
    async fn begin(&mut self, first_read: &'static str) -> Result<()> {
        let begin = match self {
            Session::Pg(_) => "BEGIN ISOLATION LEVEL REPEATABLE READ",
            Session::Lite(_) => "BEGIN",
        };
        self.exec(begin).await?;
        self.exec(first_read).await
    }

    /// Opens a transaction that holds the horizon back without reading any of the queue's
    /// tables, so it takes no lock on them: on PostgreSQL a transaction id (`SELECT
    /// txid_current()` at `READ COMMITTED`: no snapshot kept between statements, the id
    /// alone holds the horizon), on SQLite a read of the schema table (a read transaction
    /// holds the WAL whatever it read).
    async fn hold_xid(&mut self) -> Result<()> {
        let first = match self {
            Session::Pg(_) => "SELECT txid_current()",
            Session::Lite(_) => "SELECT 1 FROM sqlite_master LIMIT 1",
        };
        self.exec("BEGIN").await?;
        self.exec(first).await
    }

    async fn end(mut self) -> Result<()> {
        self.exec("ROLLBACK").await?;
        match self {
            Session::Pg(conn) => conn.close().await?,
            Session::Lite(conn) => conn.close().await?,
        }
        Ok(())
    }
}

/// The read that opens the idle transaction's snapshot.
const TOUCH: &str = "SELECT 1 FROM durable_tasks LIMIT 1";
/// A reader's scan of the task table.
const SCAN: &str = "SELECT count(*) FROM durable_tasks";

/// How the `rr-readers` phase reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Readers {
    /// Concurrent sessions (at least one).
    pub(crate) count: usize,
    /// Pause between two scans of one session.
    pub(crate) pause: Duration,
    /// PostgreSQL: the sessions' `max_parallel_workers_per_gather`; `None`: the server's.
    pub(crate) parallel_workers: Option<u32>,
}

/// The sessions of one phase, running until [`end`](Self::end).
#[derive(Debug)]
pub(crate) struct Disturbance {
    stop: CancellationToken,
    sessions: JoinSet<Result<u64>>,
}

impl Disturbance {
    /// Opens the sessions of `phase` (none for `clean` and `recovery`); each has its snapshot
    /// when this returns.
    pub(crate) async fn start(phase: Phase, target: &Target, readers: Readers) -> Result<Self> {
        let stop = CancellationToken::new();
        let mut sessions = JoinSet::new();
        match phase {
            Phase::Clean | Phase::Recovery => {}
            Phase::IdleTx | Phase::IdleXid => {
                let mut session = Session::open(target, None).await?;
                if phase == Phase::IdleTx {
                    session.begin(TOUCH).await?;
                } else {
                    session.hold_xid().await?;
                }
                let stop = stop.clone();
                sessions.spawn(async move {
                    stop.cancelled().await;
                    session.end().await?;
                    Ok(0)
                });
            }
            Phase::RrReaders => {
                for _ in 0..readers.count.max(1) {
                    let mut session = Session::open(target, readers.parallel_workers).await?;
                    session.begin(SCAN).await?;
                    let stop = stop.clone();
                    sessions.spawn(async move {
                        let mut scans = 1;
                        loop {
                            tokio::select! {
                                () = stop.cancelled() => break,
                                () = tokio::time::sleep(readers.pause) => {}
                            }
                            // A scan is not interrupted by the end of the phase: it is short
                            // next to one, and the session must be usable to roll back.
                            session.exec(SCAN).await?;
                            scans += 1;
                        }
                        session.end().await?;
                        Ok(scans)
                    });
                }
            }
        }
        Ok(Self { stop, sessions })
    }

    /// Ends the sessions (rolls their transactions back); returns the scans the readers made.
    pub(crate) async fn end(mut self) -> Result<u64> {
        self.stop.cancel();
        let mut scans = 0;
        while let Some(result) = self.sessions.join_next().await {
            scans += result??;
        }
        Ok(scans)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    use sqlx::ConnectOptions;

    use super::*;
    use crate::horizon::wal;

    /// Writes `rows` rows of 3 KiB on `conn`, one transaction each (autocheckpoint on).
    async fn write(conn: &mut SqliteConnection, rows: usize) {
        for _ in 0..rows {
            sqlx::query("INSERT INTO durable_tasks (v) VALUES (?)")
                .bind("x".repeat(3000))
                .execute(&mut *conn)
                .await
                .expect("insert");
        }
    }

    #[tokio::test]
    async fn an_idle_read_transaction_pins_the_sqlite_wal() {
        let file = durable_testkit::SqliteFile::create("durable-bench-pin", "pin.db")
            .expect("temporary file");
        let mut writer = SqliteConnectOptions::from_str(&file.url())
            .expect("url")
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .connect()
            .await
            .expect("open");
        sqlx::raw_sql("CREATE TABLE durable_tasks (v TEXT)")
            .execute(&mut writer)
            .await
            .expect("create");
        write(&mut writer, 50).await;
        let target = Target::Sqlite { url: file.url() };
        let readers = Readers {
            count: 1,
            pause: Duration::ZERO,
            parallel_workers: None,
        };
        let held = Disturbance::start(Phase::IdleTx, &target, readers)
            .await
            .expect("idle transaction");
        let mut shm = wal::Shm::new(file.path());
        let pinned = shm.progress().expect("progress").frames;
        // Well past the autocheckpoint (1,000 pages): without the reader the WAL restarts.
        write(&mut writer, 2000).await;
        let grown = shm.progress().expect("progress");
        assert!(
            grown.frames > 2000,
            "the WAL restarted under the reader: {grown:?}"
        );
        assert!(
            grown.backfilled <= pinned,
            "past the reader: {pinned} {grown:?}"
        );
        held.end().await.expect("end");
        write(&mut writer, 1200).await;
        let released = shm.progress().expect("progress");
        assert!(
            released.frames < grown.frames,
            "{released:?} after {grown:?}"
        );
    }

    /// The horizon the disturbance's session holds (`backend_xid`, `backend_xmin`), if any.
    async fn held_by_reader(admin: &mut PgConnection) -> (Option<i32>, Option<i32>) {
        sqlx::query_as(
            "SELECT max(age(backend_xid)), max(age(backend_xmin)) FROM pg_stat_activity \
             WHERE application_name = 'durable-bench-horizon-reader' \
               AND datname = current_database() AND pid <> pg_backend_pid() \
               AND (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL)",
        )
        .fetch_one(admin)
        .await
        .expect("pg_stat_activity")
    }

    /// Whether `ACCESS EXCLUSIVE` on the task table (what a `TRUNCATE` takes) is granted now.
    async fn exclusive_granted(admin: &mut PgConnection, schema: &str) -> bool {
        sqlx::raw_sql("BEGIN")
            .execute(&mut *admin)
            .await
            .expect("begin");
        let lock = format!("LOCK TABLE \"{schema}\".durable_tasks IN ACCESS EXCLUSIVE MODE NOWAIT");
        let granted = match sqlx::raw_sql(AssertSqlSafe(lock))
            .execute(&mut *admin)
            .await
        {
            Ok(_) => true,
            Err(error) => {
                let code = error
                    .as_database_error()
                    .and_then(sqlx::error::DatabaseError::code);
                assert_eq!(code.as_deref(), Some("55P03"), "{error}");
                false
            }
        };
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut *admin)
            .await
            .expect("rollback");
        granted
    }

    #[tokio::test]
    async fn an_idle_xid_holds_the_horizon_and_no_lock_where_an_idle_snapshot_holds_both() {
        let Some(url) = durable_testkit::database_url() else {
            return;
        };
        let schema = format!("durable_bench_disturb_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&url).await.expect("connect");
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE SCHEMA \"{schema}\"; CREATE TABLE \"{schema}\".durable_tasks (v int)"
        )))
        .execute(&mut admin)
        .await
        .expect("create");
        let target = Target::Postgres {
            url,
            schema: schema.clone(),
        };
        let readers = Readers {
            count: 1,
            pause: Duration::ZERO,
            parallel_workers: None,
        };

        let held = Disturbance::start(Phase::IdleXid, &target, readers)
            .await
            .expect("idle-xid");
        // Transactions after the held one age it.
        for _ in 0..3 {
            sqlx::raw_sql("SELECT txid_current()")
                .execute(&mut admin)
                .await
                .expect("xid");
        }
        let (xid, _) = held_by_reader(&mut admin).await;
        let xid = xid.expect("the idle-xid session holds a transaction id");
        assert!(xid >= 3, "{xid}");
        let xmin_age: i64 = sqlx::query_scalar(super::super::storage::XMIN_AGE)
            .fetch_one(&mut admin)
            .await
            .expect("xmin age");
        assert!(xmin_age >= i64::from(xid), "{xmin_age} < {xid}");
        assert!(
            exclusive_granted(&mut admin, &schema).await,
            "idle-xid locks the task table"
        );
        held.end().await.expect("end");
        assert_eq!(held_by_reader(&mut admin).await, (None, None));

        let held = Disturbance::start(Phase::IdleTx, &target, readers)
            .await
            .expect("idle-tx");
        let (_, xmin) = held_by_reader(&mut admin).await;
        assert!(xmin.is_some(), "the idle-tx session holds a snapshot");
        assert!(
            !exclusive_granted(&mut admin, &schema).await,
            "idle-tx holds its read's lock on the task table"
        );
        held.end().await.expect("end");

        sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
            .execute(&mut admin)
            .await
            .expect("drop");
    }

    #[tokio::test]
    async fn readers_scan_with_the_parallel_workers_they_are_given() {
        let Some(url) = durable_testkit::database_url() else {
            return;
        };
        let target = Target::Postgres {
            url,
            schema: "public".to_owned(),
        };
        let show = |session: Session| async move {
            let Session::Pg(mut conn) = session else {
                panic!("a PostgreSQL session");
            };
            let shown: String = sqlx::query_scalar("SHOW max_parallel_workers_per_gather")
                .fetch_one(&mut conn)
                .await
                .expect("show");
            shown
        };
        let server = show(Session::open(&target, None).await.expect("open")).await;
        for workers in [0, 3] {
            let session = Session::open(&target, Some(workers)).await.expect("open");
            assert_eq!(show(session).await, workers.to_string());
        }
        assert_eq!(
            show(Session::open(&target, None).await.expect("open")).await,
            server,
            "none given: the server's"
        );
    }
}
