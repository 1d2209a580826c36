//! Test helpers for handlers and tasks (feature `testing`; add it to your dev-dependencies).
//!
//! [`TestDurable`] builds what a service runs on — a store (a temporary SQLite file, or a
//! fresh PostgreSQL schema), a [`Client`] and its [`DurableLayer`] — for a test to:
//!
//! - call a handler or router (`tower::ServiceExt::oneshot`) with [`layer`](TestDurable::layer);
//! - check what it spawned: [`assert_spawned`](TestDurable::assert_spawned) (panics with
//!   every stored task of that type when none matches), [`spawned`](TestDurable::spawned);
//! - run the due tasks inline, with the tasks they spawn, until nothing due is left:
//!   [`run_until_idle`](TestDurable::run_until_idle), which reports what completed,
//!   failed for good, or waits for a retry;
//! - move the store's time forward with its [`clock`](TestDurable::clock): delays end,
//!   retries waiting out their backoff become due, leases expire.
//!
//! Nothing runs between those calls: tasks are stored by the handler and run only inside
//! `run_until_idle`, so a test sees each step.
//!
//! # Examples
//!
//! A handler that spawns an email task; the email provider fails once.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use axum::{body::Body, http::Request, http::StatusCode, routing::post, Router};
//! use axum_durable::testing::TestDurable;
//! use axum_durable::{Backoff, Durable, Registry, Task, TaskContext, TaskError, TaskOptions};
//! use serde::{Deserialize, Serialize};
//! use tower::ServiceExt as _;
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct SendWelcomeEmail {
//!     email: String,
//! }
//!
//! impl Task for SendWelcomeEmail {
//!     const NAME: &'static str = "doc_send_welcome_email";
//!     type State = Arc<AtomicU32>; // attempts made, standing in for an email API
//!
//!     async fn run(self, cx: TaskContext<Self::State>) -> Result<(), TaskError> {
//!         if cx.state().fetch_add(1, Ordering::SeqCst) == 0 {
//!             return Err(TaskError::retryable("the email provider timed out"));
//!         }
//!         Ok(())
//!     }
//!
//!     fn options() -> TaskOptions {
//!         // Ten minutes between attempts, exactly (no jitter).
//!         TaskOptions::default().backoff(Backoff::constant(Duration::from_secs(600)).jitter(0.0))
//!     }
//! }
//!
//! async fn signup(durable: Durable) -> StatusCode {
//!     durable.spawn(SendWelcomeEmail { email: "ada@example.com".into() });
//!     StatusCode::CREATED
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let calls = Arc::new(AtomicU32::new(0));
//! let registry = Registry::new().register::<SendWelcomeEmail>(calls.clone());
//! let t = TestDurable::new(registry).await.expect("test store");
//! let app = Router::new().route("/signup", post(signup)).layer(t.layer());
//!
//! let response = app
//!     .oneshot(Request::post("/signup").body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(response.status(), StatusCode::CREATED);
//! t.assert_spawned(&SendWelcomeEmail { email: "ada@example.com".into() }).await;
//!
//! let first = t.run_until_idle().await; // the first attempt fails: a retry is scheduled
//! assert_eq!(first.retrying.len(), 1);
//! t.clock().advance(Duration::from_secs(600)).await.unwrap(); // the retry is due
//! let second = t.run_until_idle().await;
//! assert_eq!(second.completed.len(), 1);
//! assert_eq!(calls.load(Ordering::SeqCst), 2);
//! # }
//! ```

mod run;
mod spawned;
mod temp;

use std::sync::Arc;
use std::time::Duration;

use durable_core::store::Store;
use durable_core::{Client, Registry};
use durable_sqlx::testing::TestClock;

use crate::{DurableLayer, Error};
pub use run::RunReport;

/// A store, client and layer for testing handlers and tasks. See the [module
/// documentation](self).
#[derive(Debug)]
pub struct TestDurable {
    backend: Backend,
    registry: Registry,
    client: Client,
    clock: TestClock,
    idle_timeout: Duration,
    /// Removes the temporary SQLite file when the harness is dropped.
    file: Option<temp::TempFile>,
}

/// The store, concretely: a runtime is started on it for each `run_until_idle`.
#[derive(Debug, Clone)]
enum Backend {
    #[cfg(feature = "sqlite")]
    Sqlite(durable_sqlx::sqlite::SqliteStore),
    #[cfg(feature = "postgres")]
    Postgres(durable_sqlx::postgres::PostgresStore),
}

impl Backend {
    fn store(&self) -> Arc<dyn Store> {
        match self {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(store) => Arc::new(store.clone()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(store) => Arc::new(store.clone()),
        }
    }
}

/// How long [`TestDurable::run_until_idle`] waits for nothing due to be left, by default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

impl TestDurable {
    /// A harness on a new temporary SQLite file (removed when the harness is dropped),
    /// running the tasks of `registry`.
    ///
    /// # Errors
    ///
    /// The file could not be created or migrated.
    #[cfg(feature = "sqlite")]
    pub async fn new(registry: Registry) -> Result<Self, Error> {
        let file = temp::TempFile::new();
        let store = durable_sqlx::sqlite::SqliteStore::connect(file.url()).await?;
        let mut harness = Self::with_sqlite(store, registry).await?;
        harness.file = Some(file);
        Ok(harness)
    }

    /// A harness on `store` (migrated here), for a test that opens its own file.
    ///
    /// # Errors
    ///
    /// Migrating the store failed.
    #[cfg(feature = "sqlite")]
    pub async fn with_sqlite(
        store: durable_sqlx::sqlite::SqliteStore,
        registry: Registry,
    ) -> Result<Self, Error> {
        store.migrate().await?;
        let clock = store.test_clock();
        Ok(Self::assemble(Backend::Sqlite(store), registry, clock))
    }

    /// A harness on a new schema (`durable_test_` and a random suffix) of the PostgreSQL
    /// database at `url`. The schema is left in place: point `url` at a database for tests.
    ///
    /// # Errors
    ///
    /// Connecting, creating the schema or migrating failed.
    #[cfg(feature = "postgres")]
    pub async fn postgres(url: &str, registry: Registry) -> Result<Self, Error> {
        let schema = format!("durable_test_{}", uuid::Uuid::new_v4().simple());
        let store = durable_sqlx::postgres::PostgresStore::builder(url)
            .schema(schema)
            .max_connections(8)
            .connect()
            .await?;
        Self::with_postgres(store, registry).await
    }

    /// A harness on `store` (migrated here). Its [`clock`](Self::clock) moves the time of
    /// the store's whole schema: give each test a schema of its own.
    ///
    /// # Errors
    ///
    /// Migrating the store failed.
    #[cfg(feature = "postgres")]
    pub async fn with_postgres(
        store: durable_sqlx::postgres::PostgresStore,
        registry: Registry,
    ) -> Result<Self, Error> {
        store.migrate().await?;
        let clock = store.test_clock();
        Ok(Self::assemble(Backend::Postgres(store), registry, clock))
    }

    fn assemble(backend: Backend, registry: Registry, clock: TestClock) -> Self {
        let client = Client::builder(backend.store()).build();
        Self {
            backend,
            registry,
            client,
            clock,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            file: None,
        }
    }

    /// How long [`run_until_idle`](Self::run_until_idle) waits before it panics (default
    /// [`DEFAULT_IDLE_TIMEOUT`]).
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The client handlers' tasks are stored through (not attached to a runtime: nothing
    /// runs until [`run_until_idle`](Self::run_until_idle)).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The layer to put on the router under test.
    pub fn layer(&self) -> DurableLayer {
        DurableLayer::new(self.client.clone())
    }

    /// The clock of the store: [`advance`](TestClock::advance) moves its time forward.
    pub fn clock(&self) -> &TestClock {
        &self.clock
    }

    /// The store, for reading rows ([`AdminStore`](durable_core::store::AdminStore)).
    pub fn store(&self) -> Arc<dyn Store> {
        self.backend.store()
    }

    /// The SQLite store, when the harness runs on one (for the application's own tables).
    #[cfg(feature = "sqlite")]
    pub fn sqlite(&self) -> Option<&durable_sqlx::sqlite::SqliteStore> {
        match &self.backend {
            Backend::Sqlite(store) => Some(store),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => None,
        }
    }

    /// The PostgreSQL store, when the harness runs on one.
    #[cfg(feature = "postgres")]
    pub fn postgres_store(&self) -> Option<&durable_sqlx::postgres::PostgresStore> {
        match &self.backend {
            Backend::Postgres(store) => Some(store),
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(_) => None,
        }
    }
}
