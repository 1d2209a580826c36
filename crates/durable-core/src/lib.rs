//! # durable-core
//!
//! The task model, storage contract and worker runtime of **axum-durable**: background work
//! that is **saved before it is acknowledged** and then runs through explicit states
//!
//! ```text
//! pending -> processing -> completed | failed        (processing -> pending on retry/requeue,
//!                                                     pending -> cancelled)
//! ```
//!
//! with retries and backoff, leases renewed by heartbeats (a crashed process's tasks are
//! claimed again within about one lease), fenced writes (a stale worker cannot overwrite the
//! new holder's result), and a shutdown that drains on a tokio-util [`TaskTracker`] and then
//! hands unfinished tasks back as `pending`.
//!
//! This crate has no HTTP or database dependency. `durable-sqlx` provides the SQLite and
//! PostgreSQL [`Store`](store::Store)s; `axum-durable` the Axum extractor and layer.
//!
//! ## Example
//!
//! ```no_run
//! use durable_core::store::Store;
//! use durable_core::{Registry, Runtime, Task, TaskContext, TaskError};
//! use serde::{Deserialize, Serialize};
//! use std::time::Duration;
//!
//! #[derive(Serialize, Deserialize)]
//! struct SendWelcomeEmail { user_id: i64 }
//!
//! impl Task for SendWelcomeEmail {
//!     const NAME: &'static str = "send_welcome_email";
//!     type State = ();
//!     async fn run(self, cx: TaskContext<()>) -> Result<(), TaskError> {
//!         // Idempotent: use cx.id() as the idempotency key of the email API.
//!         println!("sending to user {} (attempt {})", self.user_id, cx.attempt());
//!         Ok(())
//!     }
//! }
//!
//! # async fn demo(store: impl Store) -> durable_core::Result<()> {
//! store.migrate().await?;
//! let registry = Registry::new().register::<SendWelcomeEmail>(());
//! let runtime = Runtime::builder(store, registry).start();
//! let id = runtime.client().enqueue(SendWelcomeEmail { user_id: 7 }).await?;
//! println!("stored task {id}");
//! runtime.shutdown(Duration::from_secs(10)).await;
//! # Ok(()) }
//! ```
//!
//! ## Guarantees
//!
//! Execution is **at least once**. A task runs again if its process dies mid-run, if it
//! stalls past its lease while another worker takes it over, or if a shutdown's grace period
//! ends before it finishes. Write tasks to be idempotent: key external calls by
//! [`TaskContext::id`], use unique constraints, check "already done" first.
//!
//! [`TaskTracker`]: tokio_util::task::TaskTracker

pub mod client;
mod context;
mod error;
mod ids;
mod names;
pub mod periodic;
mod registry;
mod retry;
pub mod runtime;
mod state;
mod steps;
pub mod store;
mod task;
pub mod trace;
pub mod unique;
mod writer;

pub use client::{Client, EnqueueOptions};
pub use context::{CancelReason, TaskContext};
pub use error::{Error, Result, TaskError};
pub use ids::{TaskId, WorkerId};
pub use registry::Registry;
pub use retry::Backoff;
pub use runtime::Runtime;
pub use state::{ParseTaskStateError, TaskState};
pub use task::{Task, TaskOptions};
pub use unique::UniqueKey;

/// Re-exported for tasks observing cancellation and for shutdown wiring.
pub use tokio_util::sync::CancellationToken;
