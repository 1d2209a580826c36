//! The shipped migrations, pinned: their checksums (SHA-384 of the file, as sqlx computes
//! it), their line endings, their compatibility declarations.
//!
//! A database that applied a migration records its checksum, and `migrate()` refuses one whose
//! text has since changed. So a shipped migration is never edited, not even a comment: the
//! change goes into a new migration. A new migration is pinned here when it ships.

use sqlx::migrate::Migration;

use super::{compatible_from, COMPATIBLE_FROM};

/// Migrations up to this version shipped before compatibility declarations existed; every
/// later one must declare it.
const UNDECLARED_UNTIL: i64 = 2;

#[cfg(feature = "sqlite")]
const SQLITE: &[(i64, &str)] = &[
    (
        1,
        "5a20093c34d2ae8c2d321e56d7b09a76f25246f92387b401687278579d28b394932e6e443958a70a8b1564be1c29836f",
    ),
    (
        2,
        "f8fd70bb1cc536042e52de21400060bb49b0f645803cf6eae7ff4d80ce867015f490874b2a491a98a4bf1e0e10303852",
    ),
    (
        8,
        "cbab30a00171041137e6aaef32867776fec9cdda83a3a03b5c3740b0218a90995337c402d6e7a0d76a81ae838f10dbd7",
    ),
];

#[cfg(feature = "postgres")]
const POSTGRES: &[(i64, &str)] = &[
    (
        1,
        "446a20620d60ff6499684eb13f803144dc2e4f12fe733722d7b2b50b369cb8b67f86cd5a3d82f99a1c4a171c62a034dd",
    ),
    (
        2,
        "ce1b7169f459b1786c90007680636b349c7208cda433b1c319e6a367a0a5b7a9b481c99803b2b0d6177d2fcd589ec586",
    ),
    (
        8,
        "227f6c9faecd55c66ad5815672fd500398a501fd5b8be49f0abfd65e5837430cbd2f3f323b35667a3540f1180a7446ec",
    ),
];

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn check_pinned(folder: &str, embedded: &[Migration], pinned: &[(i64, &str)]) {
    for migration in embedded {
        let actual = hex(&migration.checksum);
        match pinned.iter().find(|(v, _)| *v == migration.version) {
            Some((_, expected)) => assert_eq!(
                actual, *expected,
                "migrations/{folder}: migration {} (`{}`) was edited after it shipped. Databases \
                 that applied it refuse to start with the edited text. Restore the file byte \
                 for byte and add a new migration instead (see docs/UPGRADING.md). On a \
                 Windows checkout, also check that the file has LF line endings.",
                migration.version, migration.description
            ),
            None => panic!(
                "migrations/{folder}: migration {} (`{}`) is not pinned. Once it ships, add \
                 ({}, \"{actual}\") to the list in src/migrate/pinned.rs.",
                migration.version, migration.description, migration.version
            ),
        }
    }
    for (version, _) in pinned {
        assert!(
            embedded.iter().any(|m| m.version == *version),
            "migrations/{folder}: shipped migration {version} is missing: restore it (a \
             database that applied it refuses a build without it)"
        );
    }
}

fn check_text(folder: &str, embedded: &[Migration]) {
    for migration in embedded {
        let sql = migration.sql.as_str();
        assert!(
            !sql.contains('\r'),
            "migrations/{folder}: migration {} has CR line endings: save it with LF only",
            migration.version
        );
        let declared =
            compatible_from(migration).unwrap_or_else(|e| panic!("migrations/{folder}: {e}"));
        if migration.version > UNDECLARED_UNTIL {
            assert!(
                sql.lines().any(|l| l.trim().starts_with(COMPATIBLE_FROM)),
                "migrations/{folder}: migration {} must declare the oldest schema version that \
                 still runs correctly once it is applied, in a line `{COMPATIBLE_FROM} N` \
                 (N = {} if no older build can; see docs/UPGRADING.md)",
                migration.version,
                migration.version
            );
        }
        assert!(declared <= migration.version);
    }
}

#[cfg(feature = "sqlite")]
#[test]
fn shipped_sqlite_migrations_are_never_edited() {
    let embedded = &super::sqlite::MIGRATOR.migrations;
    check_text("sqlite", embedded);
    check_pinned("sqlite", embedded, SQLITE);
    assert!(
        embedded.iter().all(|m| !m.no_tx),
        "SQLite migrations run in one transaction: `-- no-transaction` is not supported"
    );
}

#[cfg(feature = "postgres")]
#[test]
fn shipped_postgres_migrations_are_never_edited() {
    let embedded = &super::postgres::MIGRATOR.migrations;
    check_text("postgres", embedded);
    check_pinned("postgres", embedded, POSTGRES);
}
