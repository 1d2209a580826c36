//! # axum-durable
//!
//! Durable background work for Axum. Replace
//!
//! ```ignore
//! tokio::spawn(send_welcome_email(user_id)); // lost on crash, deploy or panic
//! ```
//!
//! with
//!
//! ```ignore
//! durable.spawn(SendWelcomeEmail { user_id }); // stored before the response is sent
//! ```
//!
//! and the task is **saved to the database before the response is sent**, then runs through
//! explicit states (`pending -> processing -> completed | failed`), is retried with backoff,
//! survives crashes (leases renewed by heartbeats) and, on shutdown, is drained and handed
//! back as `pending`. Persist → queue → process → track.
//!
//! The pieces:
//! - [`Durable`], the extractor handlers spawn with ([`spawn`](Durable::spawn),
//!   [`spawn_in`](Durable::spawn_in) for the handler's own transaction,
//!   [`spawn_volatile`](Durable::spawn_volatile) for work that may be lost);
//! - [`DurableLayer`], which stores a request's tasks before its response leaves;
//! - [`serve`], graceful shutdown in the right order;
//! - re-exported from `durable-core`: [`Task`], [`Registry`], [`Runtime`]...; from
//!   `durable-sqlx`: [`sqlite::SqliteStore`] (embedded default) and, with the `postgres`
//!   feature, `postgres::PostgresStore`.
//!
//! ## Example
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{routing::post, Router};
//! use axum_durable::{sqlite::SqliteStore, Durable, DurableLayer, Registry, Runtime, Store};
//! use axum_durable::{Task, TaskContext, TaskError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct SendWelcomeEmail { user_id: i64 }
//!
//! impl Task for SendWelcomeEmail {
//!     const NAME: &'static str = "send_welcome_email";
//!     type State = ();
//!     async fn run(self, cx: TaskContext<()>) -> Result<(), TaskError> {
//!         // idempotent: cx.id() is a good idempotency key for the email API
//!         Ok(())
//!     }
//! }
//!
//! async fn signup(durable: Durable) -> &'static str {
//!     durable.spawn(SendWelcomeEmail { user_id: 1 });
//!     "welcome!" // sent only once the task is stored
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let store = SqliteStore::connect("sqlite://app.db").await?;
//!     store.migrate().await?;
//!     let registry = Registry::new().register::<SendWelcomeEmail>(());
//!     let runtime = Runtime::builder(store, registry).start();
//!     let app = Router::new()
//!         .route("/signup", post(signup))
//!         .layer(DurableLayer::new(runtime.client()));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum_durable::serve(listener, app, runtime, Duration::from_secs(10)).await?;
//!     Ok(())
//! }
//! ```
//!
//! ## Guarantees
//!
//! A `2xx` answer means the tasks the request spawned are committed. Execution is at least
//! once: write tasks to be idempotent. See the repository's `docs/` for the reliability
//! model and the PostgreSQL guide for several instances.

mod backlog;
mod error;
mod extract;
mod inflight;
mod layer;
mod scope;
mod shutdown;

pub use error::Error;
pub use extract::{Durable, MissingDurableLayer};
pub use layer::{DurableLayer, DurableService, ResponseFuture};
pub use shutdown::{serve, serve_with_signals, shutdown_signal};

pub use durable_core::{
    Backoff, CancellationToken, Client, EnqueueOptions, Registry, Runtime, RuntimeBuilder,
    RuntimeStats, ShutdownReport, StateCounts, Store, Task, TaskContext, TaskError, TaskId,
    TaskOptions, TaskRecord, TaskState,
};

/// Turns an `async fn(state, args...)` into a [`Task`]: see the `durable-macros` crate.
///
/// ```
/// use axum_durable::task;
///
/// #[derive(Clone)]
/// struct AppState;
///
/// /// Sends the welcome email.
/// #[task(max_attempts = 10, timeout = "30s")]
/// async fn send_welcome_email(state: AppState, user_id: i64) -> Result<(), std::io::Error> {
///     let _ = (state, user_id);
///     Ok(())
/// }
///
/// // Call site: `durable.spawn(send_welcome_email::task(42))`;
/// // registration: `Registry::new().register::<send_welcome_email>(AppState)`.
/// let task = send_welcome_email::task(42);
/// assert_eq!(task.user_id, 42);
/// ```
pub use durable_macros::task;

/// The core crate, for everything not re-exported at the top level.
pub use durable_core as core;
/// The sqlx stores crate.
pub use durable_sqlx as stores;
pub use durable_sqlx::{enqueue_in, DetachedCommit, EnqueueConnection, TransactionSource};

/// SQLite store: the embedded default.
#[cfg(feature = "sqlite")]
pub mod sqlite {
    pub use durable_sqlx::sqlite::{Durability, SqliteStore, SqliteStoreBuilder};
}

/// PostgreSQL store: many application instances on one database.
#[cfg(feature = "postgres")]
pub mod postgres {
    pub use durable_sqlx::postgres::{PostgresStore, PostgresStoreBuilder};
}
