//! The rollout service's tables read from the test (`durable_tasks`, `completions`), and the
//! durable migration of a newer library release applied by hand.

use std::collections::BTreeMap;

use sqlx::migrate::{Migration, MigrationType};
use sqlx::{Row, SqlSafeStr as _};

use crate::inspect::Inspector;

/// One `durable_tasks` row, times in Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// Lower-case hyphenated id.
    pub id: String,
    /// Task type.
    pub name: String,
    /// State.
    pub state: String,
    /// Counted attempts.
    pub attempts: i64,
    /// Shutdown requeues.
    pub requeues: i64,
    /// The last recorded error.
    pub last_error: Option<String>,
    /// When it was stored.
    pub created_ms: i64,
    /// When it finished.
    pub finished_ms: Option<i64>,
}

impl TaskRow {
    /// From stored to finished, in milliseconds, if finished.
    pub fn wait_ms(&self) -> Option<i64> {
        self.finished_ms.map(|f| f - self.created_ms)
    }
}

/// One `completions` row: a task whose code ran to its end, `runs` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionRow {
    /// Lower-case hyphenated task id.
    pub task_id: String,
    /// `work` or `audit`.
    pub kind: String,
    /// The release that ran it (the last time).
    pub version: i64,
    /// How many times it ran to its end.
    pub runs: i64,
    /// Written by version 2 for `work`.
    pub tag: Option<String>,
}

/// Both tables at one moment.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    /// `durable_tasks`.
    pub tasks: Vec<TaskRow>,
    /// `completions` (empty until the service migrated).
    pub completions: Vec<CompletionRow>,
}

impl Tables {
    /// Tasks per state.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for task in &self.tasks {
            *counts.entry(task.state.clone()).or_default() += 1;
        }
        counts
    }

    /// Tasks `pending` or `processing`.
    pub fn unfinished(&self) -> usize {
        self.tasks
            .iter()
            .filter(|t| t.state == "pending" || t.state == "processing")
            .count()
    }

    /// The row of task `id`.
    pub fn task(&self, id: &str) -> Option<&TaskRow> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// The completion of task `id`.
    pub fn completion(&self, id: &str) -> Option<&CompletionRow> {
        self.completions.iter().find(|c| c.task_id == id)
    }
}

const SQLITE_TASKS: &str = "SELECT id, name, state, attempts, requeues, last_error, \
     created_at AS created_ms, finished_at AS finished_ms FROM durable_tasks";
const POSTGRES_TASKS: &str = "SELECT CAST(id AS TEXT) AS id, name, state, \
     CAST(attempts AS BIGINT) AS attempts, CAST(requeues AS BIGINT) AS requeues, last_error, \
     CAST(extract(epoch FROM created_at) * 1000 AS BIGINT) AS created_ms, \
     CAST(extract(epoch FROM finished_at) * 1000 AS BIGINT) AS finished_ms FROM durable_tasks";
const COMPLETIONS: &str = "SELECT CAST(task_id AS TEXT) AS task_id, kind, \
     CAST(version AS BIGINT) AS version, CAST(runs AS BIGINT) AS runs, tag FROM completions";

macro_rules! read {
    ($pool:expr, $tasks:expr) => {{
        let tasks = sqlx::query($tasks)
            .fetch_all($pool)
            .await?
            .iter()
            .map(|row| {
                Ok(TaskRow {
                    id: row.try_get::<String, _>("id")?.to_ascii_lowercase(),
                    name: row.try_get("name")?,
                    state: row.try_get("state")?,
                    attempts: row.try_get("attempts")?,
                    requeues: row.try_get("requeues")?,
                    last_error: row.try_get("last_error")?,
                    created_ms: row.try_get("created_ms")?,
                    finished_ms: row.try_get("finished_ms")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let completions = sqlx::query(COMPLETIONS)
            .fetch_all($pool)
            .await?
            .iter()
            .map(|row| {
                Ok(CompletionRow {
                    task_id: row.try_get::<String, _>("task_id")?.to_ascii_lowercase(),
                    kind: row.try_get("kind")?,
                    version: row.try_get("version")?,
                    runs: row.try_get("runs")?,
                    tag: row.try_get("tag")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(Tables { tasks, completions })
    }};
}

/// Reads both tables (after version 2 migrated: `completions.tag` exists).
pub async fn read(inspector: &Inspector) -> Result<Tables, sqlx::Error> {
    match inspector {
        Inspector::Sqlite(pool) => read!(pool, SQLITE_TASKS),
        Inspector::Postgres(pool) => read!(pool, POSTGRES_TASKS),
    }
}

/// The durable migration a newer release of the library would ship: a nullable column, which
/// builds of this schema version (13) neither read nor write, declared
/// compatible with them.
pub const NEXT_DURABLE_MIGRATION: &str = "-- durable:compatible-from 13\n\
     -- A nullable column: version 13 builds leave it NULL.\n\
     ALTER TABLE durable_tasks ADD COLUMN note TEXT;\n";

/// The library's schema version in this build: its newest migration.
const SCHEMA_VERSION: i64 = 13;

/// The next release's schema version.
const NEXT_SCHEMA_VERSION: i64 = SCHEMA_VERSION + 1;

/// Applies [`NEXT_DURABLE_MIGRATION`] as the next migration and records it in
/// `_durable_migrations` the way the library's migrator does (checksum, `compatible_from`
/// this version), in one transaction: what the first instance of a build on a newer library
/// would do at start. Every later start of a build of this schema version then goes through
/// the migrator's "newer but compatible" path.
pub async fn apply_next_durable_migration(inspector: &Inspector) -> Result<(), sqlx::Error> {
    let migration = Migration::new(
        NEXT_SCHEMA_VERSION,
        "next release".into(),
        MigrationType::Simple,
        sqlx::AssertSqlSafe(NEXT_DURABLE_MIGRATION).into_sql_str(),
        false,
    );
    let record = "INSERT INTO _durable_migrations \
         (version, description, success, checksum, execution_time, compatible_from) \
         VALUES ($2, 'next release', TRUE, $1, 0, $3)";
    match inspector {
        Inspector::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(NEXT_DURABLE_MIGRATION))
                .execute(&mut *tx)
                .await?;
            sqlx::query(record)
                .bind(&*migration.checksum)
                .bind(NEXT_SCHEMA_VERSION)
                .bind(SCHEMA_VERSION)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        Inspector::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(NEXT_DURABLE_MIGRATION))
                .execute(&mut *tx)
                .await?;
            sqlx::query(record)
                .bind(&*migration.checksum)
                .bind(NEXT_SCHEMA_VERSION)
                .bind(SCHEMA_VERSION)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
    }
}
