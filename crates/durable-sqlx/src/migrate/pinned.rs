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
        3,
        "9aaf6b749baaea10a946a2eece3e5ad2fb2b76df0d1b72a8e2b0fe9e3c8530d5e5e2868f859ed7a05e0005c01e6001fb",
    ),
    (
        7,
        "5e2424d85abb24fd34a1e8b554a4b21a352dce1a5b31ca23e4bac6ddf9962476fb7a2adcc427144fb3fc63a3db785a87",
    ),
    (
        4,
        "411303ff6026924751db3ba46c3e394c74676ff4f7669f3b9c5da60a7d6bc24261ed4bde4f0fcc4a4bd78e164fdcb625",
    ),
    (
        5,
        "0303f71df31161c5b5c47b21c0be3189ddadb703b6426f4b586a9c6ef83ae3913782c338d51d1f940b52358a608be53d",
    ),
    (
        6,
        "932dbb911c0069b561e6c813616766ad5ab9016329eccfeae5980db0da18dfa7d667b1d3a969ca25a6c9642171808766",
    ),
    (
        8,
        "cbab30a00171041137e6aaef32867776fec9cdda83a3a03b5c3740b0218a90995337c402d6e7a0d76a81ae838f10dbd7",
    ),
    (
        9,
        "ba7b0fc7c6d27ee86760edfb64a51d9643f366080d337eff9a13b171bcc37c81fc8428465cf1a3d4804327978a52b87f",
    ),
    (
        10,
        "d770f6f5ed26fd2a3a5726b01d8d795b77bc845a2303eb9ab15dba06951f725fff213ab7d9d1fd9d5bf7b3a914d9a08d",
    ),
    (
        11,
        "e2440b7c5932e3f84a0d768b7650a65f71bcfb7b4282dfde097ee3fd62989c855c19ccaa74bea4c9c17ba0783343672d",
    ),
    (
        12,
        "b2af7909f8fcbf5108819c4adce75a0100ca66a260c9f267a97d29da580d7e34bfb5f2574d67159c9dcc11368e6c684a",
    ),
    (
        13,
        "8029bfb0cd5ad367f9a7a3f486c705b73147fc23979aaa206deca442710756629ca5e4d1f00af0e8cef407170969dd00",
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
        3,
        "d14e10bbfa317af6c0c7cbe128e90d14ce6e031621f0036a435099545e35f4ca7e74907a27d260ea51ac8582c432523c",
    ),
    (
        7,
        "1cbf64e8765482d5bb254686212c3c66d50e121608896977c1a84a4e580676d6f83cdcf8cad9920a9e5e9939405cf731",
    ),
    (
        4,
        "add7e9dc27643d7fb6767ee595a76962b80562cd6cf0ec0c325a1ad71ab55b48361068e96c11beba243df16475bae339",
    ),
    (
        5,
        "36516c852c6299a6b8d249cd5f8f8cb29b522f738a52d770dac1e385c8cb2feb4cfbf50a71cefcc902ae7ad30927b66e",
    ),
    (
        6,
        "5e394a1f6629be9aeae84ab4c20f7ca2ed11c50380e3ebbf3ea63eea3c2a1fa3bf41f3fcb9c0702bec1670ca85ea824d",
    ),
    (
        8,
        "227f6c9faecd55c66ad5815672fd500398a501fd5b8be49f0abfd65e5837430cbd2f3f323b35667a3540f1180a7446ec",
    ),
    (
        9,
        "f90eb460e552091ed391a05cb52d3e7469f7a11726ad9de5b15ce98c9958f88b3ff86b9684787aaab74242dde2ceb7a0",
    ),
    (
        10,
        "d770f6f5ed26fd2a3a5726b01d8d795b77bc845a2303eb9ab15dba06951f725fff213ab7d9d1fd9d5bf7b3a914d9a08d",
    ),
    (
        11,
        "afc2a2d047792eeddfb716aade63a2b47a33884ba2948f83a48996b643d38b82a6be00425fb740f2c8c9c6f6fe4fcbb6",
    ),
    (
        12,
        "d1872314a04e752aa0cb243a94c6d2f904c10d4a72466fc650522f5fd8e46e6c99ed7754372076966b2dda9bb2e42dcc",
    ),
    (
        13,
        "e5b6ae73fe5f47a30cef49d60e5c04438e896a480ac77cac7b4a9f7f015360b8ec0821cd5ba0c708c81f9a1024e86329",
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
