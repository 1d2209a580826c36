//! # durable-sqlx
//!
//! [`Store`](durable_core::store::Store) implementations on sqlx for **axum-durable**:
//!
//! - [`sqlite::SqliteStore`] (feature `sqlite`, default): the embedded default, one file,
//!   no server. Bundled SQLite, no system library.
//! - `postgres::PostgresStore` (feature `postgres`): many application instances on one
//!   database, woken across instances by `LISTEN/NOTIFY`.
//!
//! Both embed their migrations (`sqlx::migrate!`) and record them in their own table,
//! `_durable_migrations`, so they never collide with the application's `_sqlx_migrations`.
//! `migrate()` is safe to call from every instance at startup, also during a rolling deploy:
//! an older build starts against a newer schema whose migrations declare compatibility with
//! it, and fails with [`Error::IncompatibleSchema`] otherwise (see `docs/UPGRADING.md`).
//!
//! Tasks can be enqueued inside the application's own transaction with [`enqueue_in`]: the
//! task exists only if that transaction commits. A task's own writes commit with its
//! completion in the same way: [`complete_in`] (and [`step_in`] for a step's), fenced, so an
//! attempt that lost its lease cannot commit them.
//!
//! ```no_run
//! # #[cfg(feature = "sqlite")]
//! # async fn demo(client: durable_core::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use durable_core::store::Store;
//! use durable_core::Task;
//! use durable_sqlx::sqlite::SqliteStore;
//!
//! let store = SqliteStore::connect("sqlite://app.db").await?;
//! store.migrate().await?;
//! let mut tx = store.begin().await?;
//! sqlx::query("INSERT INTO users (email) VALUES ('a@example.com')").execute(&mut *tx).await?;
//! # #[derive(serde::Serialize, serde::Deserialize)] struct Welcome;
//! # impl Task for Welcome { const NAME: &'static str = "w"; type State = ();
//! #   async fn run(self, _: durable_core::TaskContext<()>) -> Result<(), durable_core::TaskError> { Ok(()) } }
//! durable_sqlx::enqueue_in(&mut *tx, &client, Welcome).await?;
//! tx.commit().await?; // user row and task commit together
//! client.notify_committed(); // start it now instead of at the next poll
//! # Ok(()) }
//! ```

// Without a store feature only the connection traits remain (for a store of the
// application's own); the helpers the two stores share are then unused.
#![cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(dead_code, unused_macros)
)]

#[macro_use]
mod sql_messages;
#[macro_use]
mod unique;
mod admin;
mod attempt;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod clock;
mod enqueue;
mod error;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod migrate;
mod respond;
mod util;

#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(feature = "postgres")]
pub mod postgres;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod testing;

pub use attempt::{complete_in, step_in, AttemptConnection};

pub use enqueue::{
    enqueue_in, enqueue_in_with, BoxFuture, DetachedCommit, EnqueueConnection, TransactionSource,
};
pub use error::{Error, Result};
pub use respond::ResponseConnection;

/// The table the stores record their applied migrations in.
pub const MIGRATIONS_TABLE: &str = "_durable_migrations";

/// Re-export of the sqlx version the stores are built on.
pub use sqlx;
