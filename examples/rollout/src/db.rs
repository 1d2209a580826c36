//! The service's database: the task store and its own `completions` table, migrated by the
//! release this process is.

use std::sync::Arc;

use axum_durable::core::store::Store;
use axum_durable::postgres::PostgresStore;
use axum_durable::sqlite::SqliteStore;
use axum_durable::TaskId;
use sqlx::migrate::Migrator;

use crate::config::Version;

/// The application's migrations of both releases, per backend. A release embeds those up to
/// its own ([`Version::schema`]); see [`migrator`].
static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

impl Version {
    /// The newest application migration this release ships.
    pub(crate) fn schema(self) -> i64 {
        match self {
            Version::V1 => 1,
            Version::V2 => 2,
        }
    }
}

/// The migrator of `version`: only the migrations it ships (as a separate build of that
/// release would embed), and `ignore_missing`, so that it starts against a database a newer
/// release migrated further — a rolling deploy or a rollback — instead of failing with
/// `VersionMissing`. That is only right because every migration of the next release is
/// compatible with this one (add-only: a nullable column).
pub(crate) fn migrator(all: &Migrator, version: Version) -> Migrator {
    let shipped = all
        .iter()
        .filter(|m| m.version <= version.schema())
        .cloned()
        .collect();
    let mut migrator = Migrator::with_migrations(shipped);
    migrator.set_ignore_missing(true);
    migrator
}

/// A task that ran to its end, for `completions`.
#[derive(Debug)]
pub(crate) struct Completion<'a> {
    pub(crate) task_id: TaskId,
    pub(crate) kind: &'static str,
    pub(crate) seq: i64,
    pub(crate) version: Version,
    /// Only written by version 2, whose migration added the column.
    pub(crate) tag: Option<&'a str>,
}

/// The database: task store and `completions` on the same one.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    /// Several processes on one file (WAL, busy timeout).
    Sqlite(SqliteStore),
    /// Several instances on one server.
    Postgres(PostgresStore),
}

impl Db {
    /// Opens `url`: `postgres://...` / `postgresql://...`, else SQLite.
    pub(crate) async fn connect(url: &str) -> Result<Self, Box<dyn std::error::Error>> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Db::Postgres(PostgresStore::connect(url).await?))
        } else {
            Ok(Db::Sqlite(SqliteStore::connect(url).await?))
        }
    }

    /// The task store.
    pub(crate) fn store(&self) -> Arc<dyn Store> {
        match self {
            Db::Sqlite(s) => Arc::new(s.clone()),
            Db::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// The task store's migrations, then the application's of `version`.
    pub(crate) async fn migrate(&self, version: Version) -> Result<(), Box<dyn std::error::Error>> {
        match self {
            Db::Sqlite(s) => {
                s.migrate().await?;
                migrator(&SQLITE, version).run(s.writer_pool()).await?;
            }
            Db::Postgres(s) => {
                s.migrate().await?;
                migrator(&POSTGRES, version).run(s.pool()).await?;
            }
        }
        Ok(())
    }

    /// Records that a task ran to its end; a second end of the same task counts in `runs`.
    pub(crate) async fn record(&self, done: &Completion<'_>) -> Result<(), sqlx::Error> {
        // Version 1 names only the columns it knows, so it keeps working after version 2
        // added `tag`.
        let (columns, values) = match done.version {
            Version::V1 => ("task_id, kind, seq, version", "$1, $2, $3, $4"),
            Version::V2 => ("task_id, kind, seq, version, tag", "$1, $2, $3, $4, $5"),
        };
        let sql = format!(
            "INSERT INTO completions ({columns}) VALUES ({values}) \
             ON CONFLICT (task_id) DO UPDATE SET runs = completions.runs + 1"
        );
        let sql = sqlx::AssertSqlSafe(sql);
        match self {
            Db::Sqlite(s) => {
                let mut query = sqlx::query(sql)
                    .bind(done.task_id.to_string())
                    .bind(done.kind)
                    .bind(done.seq)
                    .bind(done.version.number());
                if done.version == Version::V2 {
                    query = query.bind(done.tag);
                }
                query.execute(s.writer_pool()).await?;
            }
            Db::Postgres(s) => {
                let mut query = sqlx::query(sql)
                    .bind(done.task_id.as_uuid())
                    .bind(done.kind)
                    .bind(done.seq)
                    .bind(done.version.number());
                if done.version == Version::V2 {
                    query = query.bind(done.tag);
                }
                query.execute(s.pool()).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{migrator, Version, SQLITE};
    use sqlx::migrate::MigrateError;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    /// Version 1 restarting after version 2 migrated (a rollback) starts only because its
    /// migrator ignores the migration it does not ship; sqlx's default refuses it.
    #[tokio::test]
    async fn version_1_starts_against_the_schema_of_version_2() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("app.db"))
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("open");
        migrator(&SQLITE, Version::V1).run(&pool).await.expect("v1");
        migrator(&SQLITE, Version::V2).run(&pool).await.expect("v2");
        let mut strict = migrator(&SQLITE, Version::V1);
        strict.set_ignore_missing(false);
        assert!(
            matches!(
                strict.run(&pool).await,
                Err(MigrateError::VersionMissing(2))
            ),
            "sqlx's default refuses a database migrated further"
        );
        migrator(&SQLITE, Version::V1)
            .run(&pool)
            .await
            .expect("v1 after v2, ignoring the migration it does not ship");
        let tag: Option<String> = sqlx::query_scalar(
            "INSERT INTO completions (task_id, kind, seq, version) VALUES ('t', 'work', 1, 1) \
             RETURNING tag",
        )
        .fetch_one(&pool)
        .await
        .expect("v1's insert still works with v2's column");
        assert_eq!(tag, None);
    }
}
