//! The migrator on SQLite: one `BEGIN IMMEDIATE` transaction around the whole run.
//!
//! SQLite has no advisory lock, and sqlx's migrator takes none on it: two processes migrating
//! one fresh file both saw nothing applied and the second failed on the first's work
//! (`duplicate column`, `UNIQUE constraint failed`). Holding the write lock from before the
//! migrations table is read until the last migration is recorded makes the second wait
//! (`busy_timeout`) and then find everything applied. SQLite's DDL is transactional, so a
//! failed run leaves nothing behind.

use std::time::Instant;

use sqlx::migrate::{MigrateError, Migration};
use sqlx::{Executor as _, SqliteConnection, SqlitePool};

use super::{plan, Applied};
use crate::error::{Error, Result};

/// The migrations embedded from `migrations/sqlite`.
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Applies `migrations` to the database of `pool` (the store's writer).
pub(crate) async fn run(pool: &SqlitePool, migrations: &[Migration]) -> Result<()> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(Error::db("migrate"))?;
    ensure_table(&mut tx).await?;
    let applied: Vec<Applied> = sqlx::query_as(super::APPLIED)
        .fetch_all(&mut *tx)
        .await
        .map_err(Error::db("migrate"))?;
    let plan = plan(migrations, &applied)?;
    plan.log();
    for pending in &plan.pending {
        let migration = pending.migration;
        if migration.no_tx {
            return Err(Error::MigrationState {
                version: migration.version,
                reason: "is marked `-- no-transaction`, which the SQLite store does not run: \
                         its migrations apply in one transaction"
                    .into(),
            });
        }
        let started = Instant::now();
        tx.execute(migration.sql.clone())
            .await
            .map_err(|e| MigrateError::ExecuteMigration(e, migration.version))?;
        sqlx::query(super::RECORD)
            .bind(migration.version)
            .bind(&*migration.description)
            .bind(&*migration.checksum)
            .bind(i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX))
            .bind(pending.compatible_from)
            .execute(&mut *tx)
            .await
            .map_err(Error::db("migrate"))?;
    }
    tx.commit().await.map_err(Error::db("migrate"))
}

/// Creates the migrations table (sqlx's columns, and `compatible_from`) or adds the column to
/// a table an earlier version created.
async fn ensure_table(conn: &mut SqliteConnection) -> Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS _durable_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
            success BOOLEAN NOT NULL,
            checksum BLOB NOT NULL,
            execution_time BIGINT NOT NULL,
            compatible_from BIGINT
        )",
    )
    .execute(&mut *conn)
    .await
    .map_err(Error::db("migrate"))?;
    let has_column: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('_durable_migrations')
                        WHERE name = 'compatible_from')",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(Error::db("migrate"))?;
    if !has_column {
        sqlx::query(super::ADD_COMPATIBLE_FROM)
            .execute(&mut *conn)
            .await
            .map_err(Error::db("migrate"))?;
    }
    Ok(())
}
