//! BEFORE: the order confirmation is `tokio::spawn`ed. It lives only in this process's
//! memory: a crash, a deploy or a SIGKILL between the 202 and the end of the work loses it,
//! and nothing ever retries it.
//!
//! Run with
//!
//! ```sh
//! cargo run -p example-migrate-from-spawn --bin raw
//! curl -i -X POST localhost:3001/orders -H 'content-type: application/json' -d '{"id":"A-1"}'
//! ```
//!
//! Environment: `DATABASE_URL` (default `sqlite://migrate.db`), `BIND` (127.0.0.1:3001),
//! `WORK_MS` (500), `RUST_LOG`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use shop::{AppState, Config, Order};

/// Sends the confirmation of order `order_id`.
async fn send_confirmation(state: AppState, order_id: String) -> Result<(), sqlx::Error> {
    shop::send_confirmation_email(&state, &order_id).await
}

/// `POST /orders`: accepts the order and confirms it in the background.
async fn create_order(State(state): State<AppState>, Json(order): Json<Order>) -> StatusCode {
    tokio::spawn(send_confirmation(state, order.id)); // in memory only: lost if the process dies
    StatusCode::ACCEPTED
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    shop::init_tracing();
    let config = Config::from_env()?;
    let db = shop::connect(&config.database_url).await?;
    let state = AppState::new(db, &config).await?;

    let app = Router::new()
        .route("/orders", post(create_order))
        .route("/health", get(shop::health))
        .with_state(state);

    let listener = tokio::net::TcpListener::bind(&config.bind).await?;
    tracing::info!(address = %listener.local_addr()?, "{} listening", env!("CARGO_BIN_NAME"));
    axum::serve(listener, app).await?;
    Ok(())
}
