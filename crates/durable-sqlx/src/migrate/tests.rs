//! The planner's decisions, on migrations made up for the purpose.

use sqlx::migrate::{Migration, MigrationType};
use sqlx::SqlSafeStr as _;

use super::{compatible_from, plan, Applied};
use crate::error::Error;

fn migration(version: i64, sql: &str) -> Migration {
    Migration::new(
        version,
        format!("migration {version}").into(),
        MigrationType::Simple,
        sqlx::AssertSqlSafe(sql.to_owned()).into_sql_str(),
        false,
    )
}

fn applied(m: &Migration) -> Applied {
    Applied {
        version: m.version,
        checksum: m.checksum.to_vec(),
        success: true,
        compatible_from: Some(compatible_from(m).expect("declaration")),
    }
}

fn newer(version: i64, compatible_from: Option<i64>) -> Applied {
    Applied {
        version,
        checksum: vec![0],
        success: true,
        compatible_from,
    }
}

fn versions(known: &[Migration], rows: &[Applied]) -> Vec<i64> {
    plan(known, rows)
        .expect("plan")
        .pending
        .iter()
        .map(|p| p.migration.version)
        .collect()
}

fn two() -> Vec<Migration> {
    vec![
        migration(1, "CREATE TABLE t (a int);\n"),
        migration(
            2,
            "-- durable:compatible-from 1\nALTER TABLE t ADD COLUMN b int;\n",
        ),
    ]
}

#[test]
fn a_fresh_database_gets_every_migration_with_its_declaration() {
    let known = two();
    let plan = plan(&known, &[]).expect("plan");
    let pending: Vec<(i64, i64)> = plan
        .pending
        .iter()
        .map(|p| (p.migration.version, p.compatible_from))
        .collect();
    assert_eq!(pending, [(1, 1), (2, 1)]);
    assert_eq!((plan.supported, plan.applied), (2, 0));
}

#[test]
fn only_missing_migrations_are_applied() {
    let known = two();
    assert_eq!(versions(&known, &[applied(&known[0])]), [2]);
    assert!(versions(&known, &[applied(&known[0]), applied(&known[1])]).is_empty());
}

#[test]
fn newer_migrations_that_accept_this_version_are_run_against() {
    let known = two();
    let rows = [
        applied(&known[0]),
        applied(&known[1]),
        newer(3, Some(2)),
        newer(4, Some(1)),
    ];
    let plan = plan(&known, &rows).expect("compatible");
    assert!(plan.pending.is_empty());
    assert_eq!((plan.supported, plan.applied), (2, 4));
}

#[test]
fn a_newer_migration_that_needs_a_newer_build_is_refused_naming_the_versions() {
    let known = two();
    let rows = [
        applied(&known[0]),
        applied(&known[1]),
        newer(3, Some(3)),
        newer(4, Some(2)),
    ];
    let error = plan(&known, &rows).expect_err("incompatible");
    assert!(
        matches!(
            error,
            Error::IncompatibleSchema {
                applied: 4,
                required: 3,
                supported: 2
            }
        ),
        "{error:?}"
    );
    let undeclared = [applied(&known[0]), applied(&known[1]), newer(3, None)];
    assert!(matches!(
        plan(&known, &undeclared),
        Err(Error::IncompatibleSchema { required: 3, .. })
    ));
}

#[test]
fn checksums_are_compared_line_endings_aside() {
    let known = two();
    let crlf = migration(1, "CREATE TABLE t (a int);\r\n");
    let mut row = applied(&known[0]);
    row.checksum = crlf.checksum.to_vec();
    assert_eq!(versions(&known, &[row]), [2], "a CRLF checkout");
    // And the other way round: this build from a CRLF checkout, the database from LF.
    let known_crlf = vec![crlf];
    assert!(versions(&known_crlf, &[applied(&known[0])]).is_empty());

    let mut edited = applied(&known[0]);
    edited.checksum = migration(1, "CREATE TABLE t (a bigint);\n")
        .checksum
        .to_vec();
    assert!(matches!(
        plan(&known, &[edited]),
        Err(Error::MigrationChanged { version: 1 })
    ));
}

#[test]
fn gaps_removals_and_failed_rows_are_refused() {
    let known = two();
    // 2 applied without 1.
    assert!(matches!(
        plan(&known, &[applied(&known[1])]),
        Err(Error::MigrationState { version: 1, .. })
    ));
    // 1 applied, removed from the build.
    assert!(matches!(
        plan(&known[1..], &[applied(&known[0]), applied(&known[1])]),
        Err(Error::MigrationState { version: 1, .. })
    ));
    let mut failed = applied(&known[0]);
    failed.success = false;
    assert!(matches!(
        plan(&known, &[failed]),
        Err(Error::MigrationState { version: 1, .. })
    ));
}

#[test]
fn declarations_are_read_and_checked() {
    let with = |sql: &str| compatible_from(&migration(5, sql));
    assert_eq!(with("ALTER TABLE t ADD c int;").expect("none"), 5);
    assert_eq!(
        with("-- Adds c.\n  -- durable:compatible-from 3  \nALTER TABLE t ADD c int;")
            .expect("declared"),
        3
    );
    for bad in [
        "-- durable:compatible-from three",
        "-- durable:compatible-from 0",
        "-- durable:compatible-from 6",
        "-- durable:compatible-from 3\n-- durable:compatible-from 4",
    ] {
        assert!(
            matches!(with(bad), Err(Error::MigrationState { version: 5, .. })),
            "{bad}"
        );
    }
}

#[test]
fn the_migrators_use_the_documented_table() {
    // Their SQL names the table literally.
    assert_eq!(crate::MIGRATIONS_TABLE, "_durable_migrations");
    #[cfg(feature = "sqlite")]
    assert!(include_str!("sqlite.rs").contains("CREATE TABLE IF NOT EXISTS _durable_migrations"));
    #[cfg(feature = "postgres")]
    assert!(include_str!("postgres.rs").contains("CREATE TABLE IF NOT EXISTS _durable_migrations"));
}
