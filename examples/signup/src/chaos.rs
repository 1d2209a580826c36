//! Failure injection for the whole-system failure-mode runner (`tests/src/bin/chaos.rs`):
//! two task types that never succeed, so the runner can check that failures stay visible
//! (`attempts`, `last_error`, a log line per attempt) and end as `failed` rows.
//!
//! Only active with `CHAOS_TASKS=1`; the default example neither registers nor routes them.
//!
//! - `POST /chaos/panic` → 202 `{task_id}`: `chaos_panic` panics in every attempt
//!   (3 attempts, 50 ms between them).
//! - `POST /chaos/hang` → 202 `{task_id}`: `chaos_hang` sleeps an hour, far past its 300 ms
//!   timeout (2 attempts, 50 ms between them).

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use axum_durable::{Backoff, Durable, Registry, Task, TaskContext, TaskError, TaskOptions};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Panics in every attempt.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChaosPanic {}

impl Task for ChaosPanic {
    const NAME: &'static str = "chaos_panic";
    type State = ();

    async fn run(self, cx: TaskContext<()>) -> Result<(), TaskError> {
        panic!("chaos_panic: simulated bug in attempt {}", cx.attempt());
    }

    fn options() -> TaskOptions {
        TaskOptions::default()
            .max_attempts(3)
            .backoff(Backoff::constant(Duration::from_millis(50)))
            .queue("chaos")
    }
}

/// Hangs far past its timeout in every attempt.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChaosHang {}

impl Task for ChaosHang {
    const NAME: &'static str = "chaos_hang";
    type State = ();

    async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(())
    }

    fn options() -> TaskOptions {
        TaskOptions::default()
            .max_attempts(2)
            .backoff(Backoff::constant(Duration::from_millis(50)))
            .timeout(Duration::from_millis(300))
            .queue("chaos")
    }
}

/// Registers the chaos task types.
pub(crate) fn register(registry: Registry) -> Registry {
    registry
        .register::<ChaosPanic>(())
        .register::<ChaosHang>(())
}

/// `POST /chaos/panic` and `POST /chaos/hang`.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/chaos/panic", post(spawn_panic))
        .route("/chaos/hang", post(spawn_hang))
}

fn accepted(task_id: axum_durable::TaskId) -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "task_id": task_id }))).into_response()
}

async fn spawn_panic(durable: Durable) -> Response {
    accepted(durable.spawn(ChaosPanic {}))
}

async fn spawn_hang(durable: Durable) -> Response {
    accepted(durable.spawn(ChaosHang {}))
}
