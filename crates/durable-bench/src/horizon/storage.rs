//! Reading the state of the run's storage at each sample, on a connection of its own:
//! PostgreSQL's statistics of every `durable_*` table and index of the run's schema and the
//! age of the oldest snapshot; SQLite's file sizes and checkpoint progress.

use std::path::PathBuf;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, SqliteConnection};

use super::wal;
use crate::Result;

/// One table or index of the library.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Relation {
    /// Its name (`durable_tasks`, `durable_tasks_claim`...).
    pub(crate) name: String,
    /// `table` or `index`.
    pub(crate) kind: &'static str,
    /// Live row versions (tables; statistics, updated with a delay of about a second).
    pub(crate) live: i64,
    /// Dead row versions not yet vacuumed (tables).
    pub(crate) dead: i64,
    /// Its own size: the heap of a table, the index itself.
    pub(crate) bytes: i64,
    /// A table with its indexes and TOAST; an index alone.
    pub(crate) total_bytes: i64,
    /// Vacuums of the table so far, automatic or not.
    pub(crate) vacuums: i64,
}

/// The storage at one sample.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Storage {
    /// PostgreSQL.
    Postgres {
        /// Tables first, then indexes, by name.
        relations: Vec<Relation>,
        /// Transactions the oldest snapshot of the database trails (`age(backend_xmin)`):
        /// how far the vacuum horizon is held back.
        xmin_age: i64,
    },
    /// SQLite.
    Sqlite {
        /// The database file.
        db_bytes: u64,
        /// The WAL file (it only shrinks when a checkpoint restarts or truncates it).
        wal_bytes: u64,
        /// Pages in the database and those on its free list.
        pages: i64,
        /// Free pages (space left by deleted rows, reused before the file grows).
        free_pages: i64,
        /// Frames written to the WAL since it last restarted, and how many of them a
        /// checkpoint has copied into the database.
        checkpoint: wal::Progress,
    },
}

impl Storage {
    /// Bytes of the library's storage: its tables with their indexes, or the SQLite
    /// database with its WAL.
    pub(crate) fn total_bytes(&self) -> i64 {
        match self {
            Storage::Postgres { relations, .. } => relations
                .iter()
                .filter(|r| r.kind == "table")
                .map(|r| r.total_bytes)
                .sum(),
            Storage::Sqlite {
                db_bytes,
                wal_bytes,
                ..
            } => (*db_bytes + *wal_bytes) as i64,
        }
    }

    /// On PostgreSQL, the bytes of every table but the history (`durable_tasks_history`),
    /// with their indexes: what a held vacuum horizon makes grow, where the history grows
    /// with the tasks finished whatever the horizon, until the retention prunes it. `None`
    /// on SQLite (one file).
    pub(crate) fn hot_bytes(&self) -> Option<i64> {
        match self {
            Storage::Postgres { relations, .. } => Some(
                relations
                    .iter()
                    .filter(|r| r.kind == "table" && r.name != "durable_tasks_history")
                    .map(|r| r.total_bytes)
                    .sum(),
            ),
            Storage::Sqlite { .. } => None,
        }
    }

    /// The table claims scan, on PostgreSQL, as one: the live partition's leaves summed
    /// (`durable_tasks_keyed` and the lanes, schema 13 on), else the live partition of
    /// `durable_tasks` (schema 11 on), else `durable_tasks` itself.
    pub(crate) fn tasks(&self) -> Option<Relation> {
        let Storage::Postgres { relations, .. } = self else {
            return None;
        };
        let leaves: Vec<&Relation> = relations
            .iter()
            .filter(|r| {
                r.kind == "table"
                    && (r.name == "durable_tasks_keyed"
                        || r.name.starts_with("durable_tasks_lane_"))
            })
            .collect();
        if leaves.is_empty() {
            return relations
                .iter()
                .find(|r| r.name == "durable_tasks_live")
                .or_else(|| relations.iter().find(|r| r.name == "durable_tasks"))
                .cloned();
        }
        Some(leaves.iter().fold(
            Relation {
                name: "durable_tasks_live".into(),
                kind: "table",
                live: 0,
                dead: 0,
                bytes: 0,
                total_bytes: 0,
                vacuums: 0,
            },
            |sum, r| Relation {
                live: sum.live + r.live,
                dead: sum.dead + r.dead,
                bytes: sum.bytes + r.bytes,
                total_bytes: sum.total_bytes + r.total_bytes,
                // Each leaf is vacuumed on its own: the most vacuumed one.
                vacuums: sum.vacuums.max(r.vacuums),
                ..sum
            },
        ))
    }
}

/// The relations of `schema`, with their statistics and sizes.
const RELATIONS: &str = "
SELECT c.relname::text,
       c.relkind = 'r',
       COALESCE(s.n_live_tup, 0),
       COALESCE(s.n_dead_tup, 0),
       pg_relation_size(c.oid),
       pg_total_relation_size(c.oid),
       COALESCE(s.vacuum_count + s.autovacuum_count, 0)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE n.nspname = $1 AND c.relname LIKE 'durable%' AND c.relkind IN ('r', 'i')
ORDER BY c.relkind DESC, c.relname";

/// The oldest snapshot's age in this database (sessions without a snapshot have no xmin). A
/// transaction that holds an id but no snapshot (`READ COMMITTED` between statements) shows
/// all the same: every snapshot's xmin is at most the oldest running transaction's id, this
/// query's own snapshot included.
pub(super) const XMIN_AGE: &str = "
SELECT COALESCE(max(age(backend_xmin)), 0)::bigint
FROM pg_stat_activity WHERE datname = current_database()";

/// Reads the storage of one run.
#[derive(Debug)]
pub(crate) enum Reader {
    /// A connection to the server, and the run's schema.
    Postgres {
        /// Monitoring connection.
        conn: PgConnection,
        /// The run's schema.
        schema: String,
    },
    /// A connection to the file, its path and its WAL index.
    Sqlite {
        /// Monitoring connection.
        conn: SqliteConnection,
        /// The database file.
        path: PathBuf,
        /// The WAL index, open until [`close`](Reader::close).
        shm: wal::Shm,
    },
}

impl Reader {
    /// Connects to the PostgreSQL database of `url`, to read `schema`.
    pub(crate) async fn postgres(url: &str, schema: &str) -> Result<Self> {
        let conn = PgConnectOptions::from_str(url)?
            .application_name("durable-bench-horizon-monitor")
            .connect()
            .await?;
        Ok(Reader::Postgres {
            conn,
            schema: schema.to_owned(),
        })
    }

    /// Opens the SQLite file at `path`.
    pub(crate) async fn sqlite(path: PathBuf) -> Result<Self> {
        let conn = SqliteConnectOptions::new()
            .filename(&path)
            .busy_timeout(std::time::Duration::from_secs(10))
            .connect()
            .await?;
        Ok(Reader::Sqlite {
            shm: wal::Shm::new(&path),
            conn,
            path,
        })
    }

    /// What bounds the figures on this server: PostgreSQL's version, whether autovacuum
    /// runs at all (the task table's own autovacuum settings only apply when it does) and
    /// how many parallel workers a scan may take (the readers' unless they set their own);
    /// SQLite's version.
    pub(crate) async fn describe(&mut self) -> Result<String> {
        match self {
            Reader::Postgres { conn, .. } => {
                let (version, autovacuum, parallel): (String, String, String) = sqlx::query_as(
                    "SELECT current_setting('server_version'), current_setting('autovacuum'), \
                     current_setting('max_parallel_workers_per_gather')",
                )
                .fetch_one(&mut *conn)
                .await?;
                Ok(format!(
                    "PostgreSQL {version}, autovacuum {autovacuum}, \
                     max_parallel_workers_per_gather {parallel}"
                ))
            }
            Reader::Sqlite { conn, .. } => {
                let version: String = sqlx::query_scalar("SELECT sqlite_version()")
                    .fetch_one(&mut *conn)
                    .await?;
                Ok(format!("SQLite {version}"))
            }
        }
    }

    /// The storage now.
    pub(crate) async fn read(&mut self) -> Result<Storage> {
        match self {
            Reader::Postgres { conn, schema } => {
                let rows: Vec<(String, bool, i64, i64, i64, i64, i64)> = sqlx::query_as(RELATIONS)
                    .bind(schema.as_str())
                    .fetch_all(&mut *conn)
                    .await?;
                let xmin_age: i64 = sqlx::query_scalar(XMIN_AGE).fetch_one(&mut *conn).await?;
                Ok(Storage::Postgres {
                    relations: rows
                        .into_iter()
                        .map(
                            |(name, table, live, dead, bytes, total_bytes, vacuums)| Relation {
                                name,
                                kind: if table { "table" } else { "index" },
                                live,
                                dead,
                                bytes,
                                total_bytes,
                                vacuums,
                            },
                        )
                        .collect(),
                    xmin_age,
                })
            }
            Reader::Sqlite { conn, path, shm } => {
                let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
                    .fetch_one(&mut *conn)
                    .await?;
                let free_pages: i64 = sqlx::query_scalar("PRAGMA freelist_count")
                    .fetch_one(&mut *conn)
                    .await?;
                let size = |suffix: &str| {
                    let mut name = path.clone().into_os_string();
                    name.push(suffix);
                    std::fs::metadata(PathBuf::from(name)).map_or(0, |m| m.len())
                };
                Ok(Storage::Sqlite {
                    db_bytes: size(""),
                    wal_bytes: size("-wal"),
                    pages,
                    free_pages,
                    checkpoint: shm.progress()?,
                })
            }
        }
    }

    /// Closes the connection (and the WAL index: call it once the run's sessions are gone).
    pub(crate) async fn close(self) -> Result<()> {
        match self {
            Reader::Postgres { conn, .. } => conn.close().await?,
            Reader::Sqlite { conn, .. } => conn.close().await?,
        }
        Ok(())
    }
}
