//! Applying the embedded migrations, across deploys and rollbacks.
//!
//! sqlx's migrator refuses a database holding a migration it does not know, so an instance of
//! the previous release restarting during a rollout (or a rollback) would fail at `migrate()`
//! once a newer release applied one. This migrator keeps sqlx's migration files, checksums
//! and table (`_durable_migrations`, with the same columns, so databases migrated before keep
//! working), and decides by compatibility instead:
//!
//! - **Schema version**: the highest migration version a build embeds.
//! - **Compatibility**: each migration may declare, in a line of its SQL,
//!   `-- durable:compatible-from N`: builds of schema version `N` or newer still run correctly
//!   once it is applied. Without the line, only builds that know it (`N` = its own version).
//!   The declaration is recorded with the migration (column `compatible_from`), so older builds
//!   can read it.
//! - `migrate()` applies the migrations it knows that are missing; it starts against newer
//!   ones it does not know when every applied migration accepts its schema version, and fails
//!   naming both versions otherwise.
//! - A shipped migration is never edited: one whose checksum differs from the recorded one is
//!   refused, except for line endings (a CRLF checkout is the same migration).

#[cfg(test)]
mod pinned;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(test)]
mod releases;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use sqlx::migrate::Migration;
use sqlx::SqlSafeStr as _;

use crate::error::{Error, Result};

/// The line a migration declares its compatibility with: `-- durable:compatible-from N`.
pub(crate) const COMPATIBLE_FROM: &str = "-- durable:compatible-from";

/// The applied migrations, oldest first (both backends).
pub(crate) const APPLIED: &str = "SELECT version, checksum, success, compatible_from
     FROM _durable_migrations ORDER BY version";

/// Records one applied migration: $1 version, $2 description, $3 checksum, $4 execution time
/// (ns), $5 compatible-from version (both backends; SQLite reads `$N` as `?N`).
pub(crate) const RECORD: &str = "INSERT INTO _durable_migrations
     (version, description, success, checksum, execution_time, compatible_from)
 VALUES ($1, $2, TRUE, $3, $4, $5)";

/// Adds the compatible-from column to a table an earlier version created.
pub(crate) const ADD_COMPATIBLE_FROM: &str =
    "ALTER TABLE _durable_migrations ADD COLUMN compatible_from BIGINT";

/// One row of `_durable_migrations`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Applied {
    pub(crate) version: i64,
    pub(crate) checksum: Vec<u8>,
    pub(crate) success: bool,
    /// `None` in rows written before the column existed, or by a hand.
    pub(crate) compatible_from: Option<i64>,
}

impl Applied {
    /// The oldest schema version that may run against this migration.
    fn accepts_from(&self) -> i64 {
        self.compatible_from.unwrap_or(self.version)
    }
}

/// A migration to apply, with the compatibility to record for it.
#[derive(Debug)]
pub(crate) struct Pending<'m> {
    pub(crate) migration: &'m Migration,
    pub(crate) compatible_from: i64,
}

/// What `migrate()` does to a database, decided from its migrations table.
#[derive(Debug)]
pub(crate) struct Plan<'m> {
    /// Known migrations not applied yet, in version order.
    pub(crate) pending: Vec<Pending<'m>>,
    /// This build's schema version.
    pub(crate) supported: i64,
    /// The newest migration the database has applied before this run.
    pub(crate) applied: i64,
}

impl Plan<'_> {
    /// Logs what the run found and will do.
    pub(crate) fn log(&self) {
        if self.applied > self.supported {
            tracing::warn!(
                database = self.applied,
                this_build = self.supported,
                "the database's durable schema is newer than this build's; starting, as every \
                 newer migration declares compatibility with this build's schema version"
            );
        }
        for pending in &self.pending {
            tracing::info!(
                version = pending.migration.version,
                description = %pending.migration.description,
                compatible_from = pending.compatible_from,
                "applying durable migration"
            );
        }
    }
}

/// Decides what to apply to a database holding `applied`, or why this build must not run
/// against it.
pub(crate) fn plan<'m>(known: &'m [Migration], applied: &[Applied]) -> Result<Plan<'m>> {
    let known: BTreeMap<i64, &Migration> = known
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| (m.version, m))
        .collect();
    let supported = known.keys().copied().max().unwrap_or(0);
    let newest = applied.iter().map(|a| a.version).max().unwrap_or(0);
    if let Some(failed) = applied.iter().find(|a| !a.success) {
        return Err(Error::MigrationState {
            version: failed.version,
            reason:
                "is recorded as failed in `_durable_migrations` (a migrator stopped half-way): \
                     check the schema by hand, then delete that row"
                    .into(),
        });
    }
    // Compatibility first: against a newer schema that does not accept this build, nothing
    // else matters (and nothing may be written).
    if let Some(required) = applied.iter().map(Applied::accepts_from).max() {
        if required > supported {
            return Err(Error::IncompatibleSchema {
                applied: newest,
                required,
                supported,
            });
        }
    }
    let applied: BTreeMap<i64, &Applied> = applied.iter().map(|a| (a.version, a)).collect();
    if let Some(removed) = applied
        .keys()
        .find(|v| **v <= supported && !known.contains_key(v))
    {
        return Err(Error::MigrationState {
            version: *removed,
            reason: "is applied but this build does not have it: a shipped migration was removed \
                     or renumbered; restore it"
                .into(),
        });
    }
    let mut pending = Vec::new();
    for (version, migration) in &known {
        match applied.get(version) {
            Some(row) if same_migration(&row.checksum, migration) => {}
            Some(_) => return Err(Error::MigrationChanged { version: *version }),
            None if *version < newest => {
                return Err(Error::MigrationState {
                    version: *version,
                    reason: format!(
                        "is not applied, but the newer migration {newest} is: rows were deleted \
                         from `_durable_migrations`, or a migration was added below one \
                         already shipped"
                    ),
                })
            }
            None => pending.push(Pending {
                migration,
                compatible_from: compatible_from(migration)?,
            }),
        }
    }
    Ok(Plan {
        pending,
        supported,
        applied: newest,
    })
}

/// The oldest schema version `migration` declares compatible (its own without a declaration).
pub(crate) fn compatible_from(migration: &Migration) -> Result<i64> {
    let invalid = |reason: String| Error::MigrationState {
        version: migration.version,
        reason,
    };
    let mut declared = None;
    for line in migration.sql.as_str().lines() {
        let Some(rest) = line.trim().strip_prefix(COMPATIBLE_FROM) else {
            continue;
        };
        let version: i64 = rest.trim().parse().map_err(|_| {
            invalid(format!(
                "has an unreadable `{COMPATIBLE_FROM}` line: `{}` (expected a version number)",
                line.trim()
            ))
        })?;
        if !(1..=migration.version).contains(&version) {
            return Err(invalid(format!(
                "declares `{COMPATIBLE_FROM} {version}`: it must be between 1 and its own version"
            )));
        }
        if declared.replace(version).is_some() {
            return Err(invalid(format!(
                "declares `{COMPATIBLE_FROM}` more than once"
            )));
        }
    }
    Ok(declared.unwrap_or(migration.version))
}

/// Whether `recorded` is the checksum of `migration`'s text, line endings aside: a build from a
/// CRLF checkout (Windows with `core.autocrlf`) applied the same statements.
fn same_migration(recorded: &[u8], migration: &Migration) -> bool {
    if recorded == &*migration.checksum {
        return true;
    }
    let lf = migration.sql.as_str().replace("\r\n", "\n");
    let crlf = lf.replace('\n', "\r\n");
    recorded == checksum(lf) || recorded == checksum(crlf)
}

/// sqlx's checksum of a migration's text (SHA-384).
fn checksum(sql: String) -> Vec<u8> {
    Migration::new(
        0,
        "".into(),
        sqlx::migrate::MigrationType::Simple,
        sqlx::AssertSqlSafe(sql).into_sql_str(),
        false,
    )
    .checksum
    .into_owned()
}
