//! Durable background work for [Axum](https://docs.rs/axum).
//!
//! A handler that does `tokio::spawn(send_welcome_email(id))` loses that work when the
//! process crashes, restarts or is redeployed, and nobody finds out. With axum-durable the
//! handler spawns a [`Task`] instead: it is **stored in the database before the response is
//! sent**, then runs through explicit states (`pending -> processing -> completed | failed`),
//! is retried with backoff, is taken over by another worker when its process dies, and on
//! shutdown is drained or handed back as `pending`.
//!
//! # High-level features
//!
//! - Spawn from handlers with the [`Durable`] extractor, as easily as with `tokio::spawn`.
//! - A `2xx` answer means the request's tasks are committed ([`DurableLayer`]).
//! - Tasks are plain serializable structs ([`Task`]) or `async fn`s ([`task`] macro).
//! - Idempotent requests: a retry with the same `Idempotency-Key` gets the first answer,
//!   recorded with the request's tasks ([`Idempotency`]).
//! - Graceful shutdown in the right order ([`serve`]).
//! - SQLite embedded by default; PostgreSQL for many instances on one database.
//! - An admin JSON API and dashboard for operators, safe by default (feature `admin`).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use axum::{http::StatusCode, routing::post, Router};
//! use axum_durable::sqlite::SqliteStore;
//! use axum_durable::{Durable, DurableLayer, Registry, Runtime, Task, TaskContext, TaskError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct SendWelcomeEmail {
//!     user_id: i64,
//! }
//!
//! impl Task for SendWelcomeEmail {
//!     const NAME: &'static str = "send_welcome_email";
//!     type State = ();
//!
//!     async fn run(self, cx: TaskContext<()>) -> Result<(), TaskError> {
//!         // Runs at least once: cx.id() is a good idempotency key for the email API.
//!         println!("welcome, user {} (task {})", self.user_id, cx.id());
//!         Ok(())
//!     }
//! }
//!
//! async fn signup(durable: Durable) -> StatusCode {
//!     durable.spawn(SendWelcomeEmail { user_id: 1 }); // was: tokio::spawn(...)
//!     StatusCode::CREATED // sent only once the task is stored
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
//! # The extractor
//!
//! [`Durable`] is the handler's handle. [`spawn`](Durable::spawn) is the drop-in replacement
//! for `tokio::spawn`: synchronous, it checks and buffers the task and returns its
//! [`TaskId`] at once; the layer stores it when the handler returns.
//! [`spawn_at`](Durable::spawn_at), [`spawn_after`](Durable::spawn_after) and
//! [`spawn_with`](Durable::spawn_with) schedule it or override its options;
//! [`try_spawn`](Durable::try_spawn) reports a task that cannot be stored instead of failing
//! the request. [`enqueue`](Durable::enqueue) stores a task right away, whatever the response.
//! [`begin`](Durable::begin), [`spawn_in`](Durable::spawn_in) and
//! [`commit`](Durable::commit) write tasks in the handler's own transaction, so they commit
//! with its rows or not at all. [`spawn_volatile`](Durable::spawn_volatile) runs work that may
//! be lost (metrics, cache warm-ups) tracked by the runtime, so shutdown still waits for it.
//!
//! Without the layer, extraction fails with a `500` ([`MissingDurableLayer`]);
//! `Option<Durable>` makes it optional.
//!
//! # The layer
//!
//! [`DurableLayer`] stores every task a request spawned in one transaction, after the
//! handler returns and **before the response is sent**. Concurrent requests share that
//! transaction (group commit). If the write fails, the client gets `503` with `Retry-After`
//! when the failure is transient and `500` otherwise, never the handler's `2xx`. By default
//! tasks are stored for `2xx`, `3xx` and `101` answers and discarded otherwise
//! ([`persist_when`](DurableLayer::persist_when) changes that);
//! [`max_backlog`](DurableLayer::max_backlog) sheds load while too many tasks wait. Take the
//! layer's [`Client`] from [`Runtime::client`] and the tasks that fit the runtime's free
//! capacity start at once, without a poll.
//!
//! # Tasks
//!
//! A [`Task`] is a serializable value stored as JSON under a stable
//! [`NAME`](Task::NAME), the [`State`](Task::State) it receives at run time (pools, HTTP
//! clients) and `async fn run`. [`Task::options`] sets its [`TaskOptions`]: attempts
//! (default 20), [`Backoff`], timeout (default 5 min), queue and priority. An error returned
//! from `run`, a timeout or a panic is a failed attempt, retried after the backoff until the
//! last one leaves the task `failed`; [`TaskError::permanent`] fails it at once. The
//! [`TaskContext`] gives the task's id, its attempt number and a cancellation signal for
//! shutdown. The [`task`] macro turns an `async fn(state, args...)` into a task type.
//!
//! # The runtime
//!
//! [`Runtime::builder(store, registry)`](Runtime::builder) starts the workers for the task
//! types of a [`Registry`]: they claim due tasks, run them under a global (and optional
//! per-queue) concurrency limit, renew their leases with heartbeats, record each outcome and
//! prune old rows. [`Runtime::client`] enqueues; [`Runtime::settings`] shows the effective
//! settings, defaults filled in; [`Runtime::stats`] counts outcomes. A [`Client`] of its own
//! ([`Client::new`]) enqueues without a runtime, for instance from a script. What is not
//! re-exported here, such as [`Batch`](crate::core::client::Batch) (tasks of several types
//! in one transaction) and [`Settings`](crate::core::runtime::Settings), is in
//! [`core`].
//!
//! # Serving and shutdown
//!
//! [`serve`] runs the router until SIGTERM or Ctrl-C, then shuts down within one grace
//! period: the runtime stops claiming and [`Runtime::stopping`] fires; the server stops
//! accepting and in-flight requests finish storing their tasks (for at most half the grace);
//! the runtime runs what its last requests stored and waits for running tasks; what is still
//! running is handed back as `pending`. A second signal ends every wait.
//! [`serve_with_signals`] takes your own signals; [`shutdown_signal`] is the one `serve`
//! uses. Without `serve`, call [`Runtime::shutdown`] after the server stopped.
//!
//! # Stores
//!
//! [`sqlite::SqliteStore`] keeps tasks in one SQLite file, no server needed;
//! `postgres::PostgresStore` lets many instances share one PostgreSQL database, woken across
//! instances by `LISTEN/NOTIFY`. Both have `connect`, `migrate` (embedded migrations, recorded
//! in `_durable_migrations` beside your own) and `begin` for transactions that mix your rows
//! and tasks. A store is cheap to clone, and `Arc<S>` of a store is a store too. Reading rows
//! and counts on a concrete store needs the [`AdminStore`](crate::core::store::AdminStore)
//! trait in scope; another database is supported by implementing the traits of
//! [`core::store`].
//!
//! # Feature flags
//!
//! | Name | Description | Default? |
//! |---|---|---|
//! | `sqlite` | [`sqlite::SqliteStore`], on a bundled SQLite | Yes |
//! | `postgres` | `postgres::PostgresStore` | No |
//! | `admin` | `admin`: the admin JSON API and dashboard | No |
//! | `testing` | `testing`: the test harness | No |
//!
//! # Guarantees
//!
//! - A `2xx` (or `3xx`, `101`) answer from behind [`DurableLayer`] means the tasks the
//!   request spawned are committed; a failed write never answers `2xx`.
//! - Execution is **at least once**. A task runs again if its process dies mid-run, if it
//!   stalls past its lease while another worker takes it over, or if a shutdown's grace
//!   period ends before it finishes. Write tasks to be idempotent: key external calls by
//!   [`TaskContext::id`], use unique constraints.
//! - A worker that lost its lease cannot overwrite the result of the one that took over.
//! - Not promised: exactly-once side effects outside your database, ordering between tasks,
//!   or a start at `run_at` to the millisecond.
//!
//! The repository's `docs/RELIABILITY.md` details the model; `docs/POSTGRES.md` covers
//! several instances on one database.

#[cfg(feature = "admin")]
pub mod admin;
mod backlog;
mod error;
mod extract;
mod idempotency;
mod inflight;
mod layer;
mod scope;
mod shutdown;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::Error;
pub use extract::{Durable, MissingDurableLayer};
pub use idempotency::{Idempotency, IdempotentService};
pub use layer::{DurableLayer, DurableService, ResponseFuture};
pub use shutdown::{serve, serve_with_signals, shutdown_signal};

pub use durable_core::store::CancelOutcome;
pub use durable_core::{
    Backoff, CancelReason, CancellationToken, Client, EnqueueOptions, Registry, Runtime, Task,
    TaskContext, TaskError, TaskId, TaskOptions, TaskState, UniqueKey,
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

/// Periodic tasks: [`periodic::Schedule`], [`periodic::Periodic`], [`periodic::CatchUp`].
pub use durable_core::periodic;
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

/// What the code generated by `#[task]` names, so that an application needs no dependency
/// but `axum-durable`. Not a public API: it changes with `durable-macros`.
#[doc(hidden)]
pub mod __private {
    pub use durable_core;
    pub use serde;
}

// The README's examples, compiled (and, unless `no_run`, run) as doctests: a snippet that
// stops compiling against the API fails the tests. Its "Testing your handlers" section uses
// the `testing` feature, so they are compiled with it (`--all-features`, as CI runs them).
#[cfg(all(doctest, feature = "testing"))]
#[doc = include_str!("../../../README.md")]
mod readme {}
