//! # durable-testkit
//!
//! Test support shared by the tests and benchmarks of the axum-durable workspace (not
//! published):
//!
//! - [`SqliteFile`]: a fresh SQLite database path in a temporary directory of its own.
//! - [`PgSchema`]: a fresh PostgreSQL schema, one per test, dropped when dropped.
//! - [`PgDatabase`]: a fresh PostgreSQL database, for tests that need a whole database (its
//!   statistics, `ALTER DATABASE`, processes of their own), dropped when dropped.
//! - [`database_url`]: the PostgreSQL server of the tests, from [`URL_VAR`]
//!   (`DURABLE_TEST_DATABASE_URL`); tests skip without it, except in CI.
//! - [`percentile`]: nearest-rank percentiles of sorted samples.
//!
//! Every helper panics on failure where a test would (`expect`), except where a caller needs
//! the error (the benchmarks): those return `Result`.

mod percentile;
mod postgres;
mod sqlite;

pub use percentile::percentile;
pub use postgres::{database_url, with_database, PgDatabase, PgSchema, URL_VAR};
pub use sqlite::SqliteFile;
