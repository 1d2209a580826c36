//! What the two binaries of this example share: the configuration, the app's own table and
//! the background work itself, "send the order confirmation".
//!
//! Only `src/bin/raw.rs` (before: `tokio::spawn`) and `src/bin/durable.rs` (after:
//! `#[task]` + `Durable`) differ; read them side by side with
//! `diff src/bin/raw.rs src/bin/durable.rs`.

use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use tracing_subscriber::EnvFilter;

/// Settings, from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: the SQLite file, created if missing (default `sqlite://migrate.db`).
    pub database_url: String,
    /// `BIND`: the listen address (default `127.0.0.1:3001`).
    pub bind: String,
    /// `WORK_MS`: how long sending one confirmation takes (default 500).
    pub work: Duration,
    /// `LEASE_MS`, `durable` only: the tasks of a killed process run again about this long
    /// after its last heartbeat (default 2000).
    pub lease: Duration,
}

fn var<T: FromStr>(name: &str, default: T) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => raw
            .trim()
            .parse()
            .map_err(|e| format!("invalid {name}={raw:?}: {e}")),
        _ => Ok(default),
    }
}

impl Config {
    /// Reads `DATABASE_URL`, `BIND`, `WORK_MS` and `LEASE_MS`.
    pub fn from_env() -> Result<Self, String> {
        Ok(Self {
            database_url: var("DATABASE_URL", "sqlite://migrate.db".to_owned())?,
            bind: var("BIND", "127.0.0.1:3001".to_owned())?,
            work: Duration::from_millis(var("WORK_MS", 500)?),
            lease: Duration::from_millis(var("LEASE_MS", 2000)?),
        })
    }
}

/// Body of `POST /orders`: `{"id": "A-1"}`.
#[derive(Debug, Deserialize)]
pub struct Order {
    /// The order's id; one confirmation per id.
    pub id: String,
}

/// What the work needs: the database and the simulated send time.
#[derive(Debug, Clone)]
pub struct AppState {
    db: SqlitePool,
    work: Duration,
}

impl AppState {
    /// Creates the app's table `sent` on `db` if missing.
    pub async fn new(db: SqlitePool, config: &Config) -> Result<Self, sqlx::Error> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS sent (
                 order_id TEXT    PRIMARY KEY NOT NULL, -- one confirmation per order
                 sent_at  INTEGER NOT NULL DEFAULT (unixepoch())
             )",
        )
        .execute(&db)
        .await?;
        Ok(Self {
            db,
            work: config.work,
        })
    }
}

/// Opens the SQLite file at `url`, created if missing: WAL, one write connection (the way
/// `SqliteStore` opens it).
pub async fn connect(url: &str) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(10));
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
}

/// The background work: "sends" the confirmation of order `order_id` (takes `WORK_MS`),
/// then records it in `sent`.
///
/// Idempotent, as durable tasks must be (they run at least once): an order already in
/// `sent` is skipped, and the row's primary key absorbs two racing runs.
pub async fn send_confirmation_email(state: &AppState, order_id: &str) -> Result<(), sqlx::Error> {
    let already_sent: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sent WHERE order_id = ?)")
            .bind(order_id)
            .fetch_one(&state.db)
            .await?;
    if already_sent {
        tracing::info!(order_id, "confirmation already sent; nothing to do");
        return Ok(());
    }
    tracing::info!(order_id, "sending confirmation");
    tokio::time::sleep(state.work).await; // the simulated email API call
    sqlx::query("INSERT INTO sent (order_id) VALUES (?) ON CONFLICT (order_id) DO NOTHING")
        .bind(order_id)
        .execute(&state.db)
        .await?;
    tracing::info!(order_id, "confirmation sent");
    Ok(())
}

/// `GET /health`.
#[expect(clippy::unused_async, reason = "axum handlers are async functions")]
pub async fn health() -> &'static str {
    "ok"
}

/// Logs to stderr; `RUST_LOG` filters (default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
