//! A service in two releases on one database, for the rolling-deploy test
//! (`tests/tests/rollout.rs`): `SERVICE_VERSION=1` or `2` picks the release, and the two
//! differ exactly as a typical upgrade does:
//!
//! - version 2 adds a task type (`audit`), which version 1 does not register: its instances
//!   leave those tasks `pending` for a version 2 instance;
//! - version 2 adds a field with a default to the existing `work` task (`tag`): each release
//!   decodes the other's payloads;
//! - version 2 adds a migration of the application's table (a nullable column), and version
//!   1 still starts against it: its migrator ships only its own migrations and ignores newer
//!   ones.
//!
//! Routes: `POST /work {"seq": n, "ms": optional, "delay_ms": optional}` → 202
//! `{"task_ids": [...], "version": v}`;
//! `GET /stream[?ignore_stop=true]` server-sent events, ending when shutdown begins unless
//! told to ignore it; `GET /health`.
//!
//! Environment: `SERVICE_VERSION` (1), `DATABASE_URL` (`sqlite://rollout.db`; `postgres://...`
//! works too), `BIND` (127.0.0.1:3000), `SHUTDOWN_GRACE_MS` (5000), `LEASE_MS` (30000),
//! `TASK_MS` (200), `WORKER_CONCURRENCY` (64), `RUST_LOG`.

mod config;
mod db;
mod routes;
mod tasks;

use axum::routing::{get, post};
use axum::Router;
use axum_durable::{DurableLayer, Registry, Runtime};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, Version};
use crate::db::Db;
use crate::routes::AppState;
use crate::tasks::{v1, v2, Worker};

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(error) = run().await {
        tracing::error!(%error, "example-rollout failed");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    let version = config.version;
    let db = Db::connect(&config.database_url).await?;
    db.migrate(version).await?;

    let worker = Worker {
        db: db.clone(),
        version,
    };
    let registry = match version {
        Version::V1 => Registry::new().register::<v1::Work>(worker),
        Version::V2 => Registry::new()
            .register::<v2::Work>(worker.clone())
            .register::<v2::Audit>(worker),
    };
    let runtime = Runtime::builder(db.store(), registry)
        .concurrency(config.concurrency)
        .lease(config.lease)
        .start();

    let state = AppState {
        version,
        task_ms: config.task_ms,
        stopping: runtime.stopping(),
    };
    let app = Router::new()
        .route("/work", post(routes::work))
        .route("/stream", get(routes::stream))
        .route("/health", get(routes::health))
        .with_state(state)
        .layer(DurableLayer::new(runtime.client()));

    let listener = tokio::net::TcpListener::bind(&config.bind).await?;
    tracing::info!(
        address = %listener.local_addr()?,
        version = version.number(),
        "example-rollout listening"
    );
    let report = axum_durable::serve(listener, app, runtime, config.shutdown_grace).await?;
    tracing::info!(
        version = version.number(),
        finished = report.finished,
        requeued = report.requeued,
        not_handed_back = report.not_handed_back,
        drained = report.drained,
        "example-rollout stopped"
    );
    Ok(())
}
