//! The routes of the admin router, each behind the guard.

use std::sync::Arc;

use axum::extract::{Extension, Request};
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use super::guard::{self, RequestCtx};
use super::state::Shared;
use super::{api, html, login, problem};

/// The router: pages, API, login; every route behind the guard.
pub(crate) fn build(shared: Shared) -> Router {
    let login = shared.login.is_some();
    let shared = Arc::new(shared);
    let mut router = Router::new()
        .route("/", get(html::overview))
        .route("/tasks", get(html::list))
        .route("/tasks/{id}", get(html::detail))
        .route("/tasks/{id}/{action}", post(html::act))
        .route("/retry-failed", post(html::retry_failed))
        .route("/api/stats", get(api::stats))
        .route("/api/throughput", get(api::throughput))
        .route("/api/tasks", get(api::list))
        .route("/api/tasks/{id}", get(api::get))
        .route("/api/tasks/{id}/{action}", post(api::act))
        .route("/api/retry-failed", post(api::retry_failed))
        .route("/api/requeue-stuck", post(api::requeue_stuck));
    if login {
        router = router
            .route("/login", get(login::page).post(login::submit))
            .route("/logout", post(login::logout));
    }
    router
        .fallback(not_found)
        .layer(from_fn_with_state(shared.clone(), guard::guard))
        .with_state(shared)
}

async fn not_found(Extension(ctx): Extension<RequestCtx>, request: Request) -> Response {
    let api = request.uri().path().starts_with("/api/");
    problem::not_found(api, &ctx.prefix)
}
