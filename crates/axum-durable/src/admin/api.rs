//! The JSON API: `GET api/stats`, `api/throughput`, `api/tasks`, `api/tasks/{id}`, and the
//! actions (`POST`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use durable_core::store::{RetryFailed, Seen, StuckQuery};
use durable_core::{TaskId, TaskState};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::actions::{self, Action, Done};
use super::guard::RequestCtx;
use super::problem;
use super::query::ListParams;
use super::state::Shared;
use super::view;

type Ctx = Extension<RequestCtx>;

/// The last hour, as the overview shows it.
pub(crate) const HOUR: Duration = Duration::from_secs(3600);

pub(crate) async fn stats(State(shared): State<Arc<Shared>>, Extension(ctx): Ctx) -> Response {
    match shared.store.stats().await {
        Ok(stats) => Json(view::stats(&stats)).into_response(),
        Err(error) => problem::internal(true, &ctx.prefix, "Reading counts", &error),
    }
}

pub(crate) async fn throughput(State(shared): State<Arc<Shared>>, Extension(ctx): Ctx) -> Response {
    let since = Utc::now() - HOUR;
    match shared.store.throughput(since).await {
        Ok(buckets) => Json(view::throughput(since, &buckets)).into_response(),
        Err(error) => problem::internal(true, &ctx.prefix, "Reading throughput", &error),
    }
}

pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Ctx,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(params)) = params else {
        return problem::bad_request(true, &ctx.prefix, "Malformed query string.");
    };
    let query = match params.to_query(shared.page_size, shared.redact.is_none()) {
        Ok(query) => query,
        Err(message) => return problem::bad_request(true, &ctx.prefix, &message),
    };
    match shared.store.list(&query).await {
        Ok(page) => {
            let tasks: Vec<_> = page.tasks.iter().map(view::summary).collect();
            Json(json!({ "tasks": tasks, "next": page.next })).into_response()
        }
        Err(error) => problem::internal(true, &ctx.prefix, "Listing tasks", &error),
    }
}

pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Ctx,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<TaskId>() else {
        return problem::not_found(true, &ctx.prefix);
    };
    let task = match shared.store.get(id).await {
        Ok(Some(task)) => task,
        Ok(None) => return problem::not_found(true, &ctx.prefix),
        Err(error) => return problem::internal(true, &ctx.prefix, "Reading a task", &error),
    };
    match shared.store.steps(id).await {
        Ok(steps) => Json(view::record(&task, &steps, shared.redact.as_ref())).into_response(),
        Err(error) => problem::internal(true, &ctx.prefix, "Reading a task's steps", &error),
    }
}

/// The body of an action: the task as the operator saw it.
#[derive(Debug, Deserialize)]
pub(crate) struct SeenBody {
    state: TaskState,
    attempts: u32,
}

pub(crate) async fn act(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Ctx,
    Path((id, action)): Path<(String, String)>,
    body: Result<Json<SeenBody>, JsonRejection>,
) -> Response {
    let (Ok(id), Some(action)) = (id.parse::<TaskId>(), Action::parse(&action)) else {
        return problem::not_found(true, &ctx.prefix);
    };
    let Ok(Json(seen)) = body else {
        return problem::bad_request(
            true,
            &ctx.prefix,
            "The body must be the task as seen: {\"state\": \"failed\", \"attempts\": 3}.",
        );
    };
    let seen = Seen::new(seen.state, seen.attempts);
    match actions::perform(&shared, &ctx.principal, action, id, seen).await {
        Ok(done) => done_response(&ctx, action, id, &done),
        Err(error) => problem::internal(true, &ctx.prefix, "The action", &error),
    }
}

fn done_response(ctx: &RequestCtx, action: Action, id: TaskId, done: &Done) -> Response {
    let body = json!({ "task_id": id, "action": action.as_str(), "outcome": done.label() });
    match done {
        Done::Applied { .. } => Json(body).into_response(),
        Done::NotFound => problem::not_found(true, &ctx.prefix),
        Done::Conflict { state, attempts } => (
            StatusCode::CONFLICT,
            Json(json!({
                "error": "the task is not in a state this action applies to, or changed since it was seen",
                "outcome": done.label(),
                "state": state,
                "attempts": attempts,
            })),
        )
            .into_response(),
        Done::KeyHeld { holder } => (
            StatusCode::CONFLICT,
            Json(json!({
                "error": "another live task holds this task's unique key",
                "outcome": done.label(),
                "holder": holder,
            })),
        )
            .into_response(),
    }
}

/// The body of `POST api/retry-failed`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RetryFailedBody {
    name: Option<String>,
    queue: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn retry_failed(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Ctx,
    body: Result<Json<RetryFailedBody>, JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return problem::bad_request(true, &ctx.prefix, "Malformed body.");
    };
    let mut which = RetryFailed::new(body.limit.unwrap_or(shared.page_size));
    if let Some(name) = body.name {
        which = which.name(name);
    }
    if let Some(queue) = body.queue {
        which = which.queue(queue);
    }
    match actions::retry_failed(&shared, &ctx.principal, &which).await {
        Ok(n) => Json(json!({ "retried": n })).into_response(),
        Err(error) => problem::internal(true, &ctx.prefix, "Retrying failed tasks", &error),
    }
}

/// The body of `POST api/requeue-stuck`.
#[derive(Debug, Deserialize)]
pub(crate) struct RequeueStuckBody {
    /// Attempts running for longer than this; 0: only expired leases.
    running_for_secs: u64,
    name: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn requeue_stuck(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Ctx,
    body: Result<Json<RequeueStuckBody>, JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return problem::bad_request(true, &ctx.prefix, "The body needs `running_for_secs`.");
    };
    let mut which = StuckQuery::new(
        Duration::from_secs(body.running_for_secs),
        body.limit.unwrap_or(shared.page_size),
    );
    if let Some(name) = body.name {
        which = which.name(name);
    }
    match actions::requeue_stuck(&shared, &ctx.principal, &which).await {
        Ok(n) => Json(json!({ "requeued": n })).into_response(),
        Err(error) => problem::internal(true, &ctx.prefix, "Requeueing stuck tasks", &error),
    }
}
