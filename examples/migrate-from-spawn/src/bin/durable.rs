//! AFTER: the order confirmation is a durable task. It is stored in SQLite before the 202
//! is sent, and runs at least once: after a crash, a deploy or a SIGKILL, the next process
//! picks it up again (once its lease, `LEASE_MS`, has expired).
//!
//! Run with
//!
//! ```sh
//! cargo run -p example-migrate-from-spawn --bin with-durable
//! curl -i -X POST localhost:3001/orders -H 'content-type: application/json' -d '{"id":"A-1"}'
//! ```
//!
//! Environment: `DATABASE_URL` (default `sqlite://migrate.db`), `BIND` (127.0.0.1:3001),
//! `WORK_MS` (500), `LEASE_MS` (2000), `RUST_LOG`.

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_durable::sqlite::SqliteStore;
use axum_durable::{task, Durable, DurableLayer, Registry, Runtime};
use shop::{AppState, Config, Order};

/// Sends the confirmation of order `order_id`.
#[task]
async fn send_confirmation(state: AppState, order_id: String) -> Result<(), sqlx::Error> {
    shop::send_confirmation_email(&state, &order_id).await
}

/// `POST /orders`: accepts the order once its confirmation task is stored.
async fn create_order(durable: Durable, Json(order): Json<Order>) -> StatusCode {
    durable.spawn(send_confirmation::task(order.id)); // stored before the 202 is sent
    StatusCode::ACCEPTED
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    shop::init_tracing();
    let config = Config::from_env()?;
    let store = SqliteStore::connect(&config.database_url).await?;
    store.migrate().await?;
    let state = AppState::new(store.writer_pool().clone(), &config).await?;
    let registry = Registry::new().register::<send_confirmation>(state);
    let runtime = Runtime::builder(store, registry)
        .lease(config.lease)
        .start();

    let app = Router::new()
        .route("/orders", post(create_order))
        .route("/health", get(shop::health))
        .layer(DurableLayer::new(runtime.client()));

    let listener = tokio::net::TcpListener::bind(&config.bind).await?;
    tracing::info!(address = %listener.local_addr()?, "{} listening", env!("CARGO_BIN_NAME"));
    axum_durable::serve(listener, app, runtime, std::time::Duration::from_secs(10)).await?;
    Ok(())
}
