//! The migrator on PostgreSQL: a session advisory lock around the run, one transaction per
//! migration.
//!
//! The lock is sqlx's own (same key, derived from the database name), so this migrator, the
//! migrators of earlier versions of this crate and the application's sqlx migrations all
//! wait for each other. It is held on a connection of its own that is closed at the end,
//! failed or not, which also releases it.

use std::time::Instant;

use sqlx::migrate::{MigrateError, Migration};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, Executor as _, PgConnection};

use super::{plan, Applied, Pending};
use crate::error::{Error, Result};

/// The migrations embedded from `migrations/postgres`.
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Applies `migrations` on a dedicated connection opened with `options`.
pub(crate) async fn run(options: &PgConnectOptions, migrations: &[Migration]) -> Result<()> {
    let mut conn = PgConnection::connect_with(options)
        .await
        .map_err(Error::db("migrate"))?;
    let result = run_locked(&mut conn, migrations).await;
    // Ends the session: the advisory lock goes with it even if the run failed half-way.
    let _ = conn.close().await;
    result
}

async fn run_locked(conn: &mut PgConnection, migrations: &[Migration]) -> Result<()> {
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::db("migrate"))?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(lock_key(&database))
        .execute(&mut *conn)
        .await
        .map_err(Error::db("migrate"))?;
    ensure_table(conn).await?;
    let applied: Vec<Applied> = sqlx::query_as(super::APPLIED)
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::db("migrate"))?;
    let plan = plan(migrations, &applied)?;
    plan.log();
    for pending in &plan.pending {
        // A `-- no-transaction` migration runs outside one, as with sqlx; the others and
        // their record commit together. (Not for `CREATE INDEX CONCURRENTLY`: it would wait
        // for an instance waiting on the lock held here, a deadlock.)
        if pending.migration.no_tx {
            apply(conn, pending).await?;
        } else {
            let mut tx = conn.begin().await.map_err(Error::db("migrate"))?;
            apply(&mut tx, pending).await?;
            tx.commit().await.map_err(Error::db("migrate"))?;
        }
    }
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(lock_key(&database))
        .execute(&mut *conn)
        .await
        .map_err(Error::db("migrate"))?;
    Ok(())
}

/// Runs one migration and records it.
async fn apply(conn: &mut PgConnection, pending: &Pending<'_>) -> Result<()> {
    let migration = pending.migration;
    let started = Instant::now();
    conn.execute(migration.sql.clone())
        .await
        .map_err(|e| MigrateError::ExecuteMigration(e, migration.version))?;
    sqlx::query(super::RECORD)
        .bind(migration.version)
        .bind(&*migration.description)
        .bind(&*migration.checksum)
        .bind(i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX))
        .bind(pending.compatible_from)
        .execute(&mut *conn)
        .await
        .map_err(Error::db("migrate"))?;
    Ok(())
}

/// Creates the migrations table (sqlx's columns, and `compatible_from`) in the first schema of
/// the `search_path`, or adds the column to a table an earlier version created.
async fn ensure_table(conn: &mut PgConnection) -> Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS _durable_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
            success BOOLEAN NOT NULL,
            checksum BYTEA NOT NULL,
            execution_time BIGINT NOT NULL,
            compatible_from BIGINT
        )",
    )
    .execute(&mut *conn)
    .await
    .map_err(Error::db("migrate"))?;
    // Checked first: `ALTER TABLE` takes the table's exclusive lock and needs its ownership
    // even when there is nothing to add.
    let has_column: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute
                        WHERE attrelid = '_durable_migrations'::regclass
                          AND attname = 'compatible_from' AND NOT attisdropped)",
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

/// sqlx's advisory lock key for a database: `0x3d32ad9e` times the CRC-32 (ISO-HDLC) of its
/// name. The product stays below `i64::MAX` (both factors are under 2^32 and the first under
/// 2^31).
fn lock_key(database: &str) -> i64 {
    0x3d32_ad9e * i64::from(crc32(database.as_bytes()))
}

/// CRC-32/ISO-HDLC (the zlib one), bit by bit: it runs once per `migrate()`.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_the_iso_hdlc_one() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn lock_key_is_sqlx_s() {
        // As sqlx-postgres 0.9's `generate_lock_id`; the CRC-32 of "test" is 0xd87f7e0c.
        assert_eq!(lock_key("test"), 0x3d32_ad9e * i64::from(0xd87f_7e0c_u32));
    }
}
