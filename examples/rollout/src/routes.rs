//! HTTP handlers: `POST /work` spawns tasks, `GET /stream` is a long-lived server-sent-event
//! stream, `GET /health` answers once the process is ready.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_durable::{CancellationToken, Durable, EnqueueOptions};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;

use crate::config::Version;
use crate::tasks::{v1, v2};

/// What the handlers share.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) version: Version,
    /// `work` duration when the request names none.
    pub(crate) task_ms: u64,
    /// `Runtime::stopping()`: fires when shutdown begins.
    pub(crate) stopping: CancellationToken,
}

/// Body of `POST /work`.
#[derive(Debug, Deserialize)]
pub(crate) struct WorkBody {
    seq: i64,
    /// How long the `work` runs (default `TASK_MS`).
    ms: Option<u64>,
    /// Run the tasks this long from now, not at once: whichever instance is up then claims
    /// them, so a task stored by one release may be run by the other.
    delay_ms: Option<u64>,
}

/// Spawns `work` (version 2: with its `tag`, plus an `audit`); 202 with the task ids once
/// they are stored.
pub(crate) async fn work(
    State(app): State<AppState>,
    durable: Durable,
    Json(body): Json<WorkBody>,
) -> Response {
    let ms = body.ms.unwrap_or(app.task_ms);
    let options = || match body.delay_ms {
        Some(ms) if ms > 0 => EnqueueOptions::new().delay(Duration::from_millis(ms)),
        _ => EnqueueOptions::new(),
    };
    let spawned = match app.version {
        Version::V1 => durable
            .try_spawn_with(v1::Work { seq: body.seq, ms }, options())
            .map(|id| vec![id]),
        Version::V2 => durable
            .try_spawn_with(
                v2::Work {
                    seq: body.seq,
                    ms,
                    tag: Some(format!("v2-{}", body.seq)),
                },
                options(),
            )
            .and_then(|work| {
                let audit = durable.try_spawn_with(v2::Audit { seq: body.seq }, options())?;
                Ok(vec![work, audit])
            }),
    };
    match spawned {
        Ok(ids) => (
            StatusCode::ACCEPTED,
            Json(json!({ "task_ids": ids, "version": app.version.number() })),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "work could not be spawned");
            (
                error.status(),
                Json(json!({ "error": "the work could not be stored" })),
            )
                .into_response()
        }
    }
}

/// Query of `GET /stream`.
#[derive(Debug, Deserialize)]
pub(crate) struct StreamQuery {
    /// Keep streaming through a shutdown (a misbehaving stream, cut by the HTTP drain
    /// deadline) instead of ending when it begins.
    #[serde(default)]
    ignore_stop: bool,
}

/// A `tick` event every 100 ms. Ends when shutdown begins, unless `?ignore_stop=true`.
pub(crate) async fn stream(
    State(app): State<AppState>,
    Query(query): Query<StreamQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stopping = (!query.ignore_stop).then_some(app.stopping);
    let ticks = futures_util::stream::unfold((0_u64, stopping), |(n, stopping)| async move {
        let tick = tokio::time::sleep(Duration::from_millis(100));
        match &stopping {
            Some(token) => tokio::select! {
                () = tick => {}
                () = token.cancelled() => return None,
            },
            None => tick.await,
        }
        let event = Event::default().event("tick").data(n.to_string());
        Some((Ok(event), (n + 1, stopping)))
    });
    Sse::new(ticks)
}

/// Liveness, with the release.
pub(crate) async fn health(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "version": app.version.number() }))
}
