//! Error answers of the admin router: JSON for the API, a small page for browsers, and never
//! internals (a store error is logged with an id; the answer shows only the id).

use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde_json::json;

use super::html;

/// An error answer: `status` with `message` (written for the user; no internals).
pub(crate) fn answer(api: bool, prefix: &str, status: StatusCode, message: &str) -> Response {
    if api {
        (status, Json(json!({ "error": message }))).into_response()
    } else {
        (status, Html(html::message_page(prefix, status, message))).into_response()
    }
}

pub(crate) fn unauthorized(api: bool, prefix: &str) -> Response {
    answer(
        api,
        prefix,
        StatusCode::UNAUTHORIZED,
        "Authentication required.",
    )
}

pub(crate) fn forbidden(api: bool, prefix: &str, message: &str) -> Response {
    answer(api, prefix, StatusCode::FORBIDDEN, message)
}

pub(crate) fn not_found(api: bool, prefix: &str) -> Response {
    answer(api, prefix, StatusCode::NOT_FOUND, "No such page or task.")
}

pub(crate) fn bad_request(api: bool, prefix: &str, message: &str) -> Response {
    answer(api, prefix, StatusCode::BAD_REQUEST, message)
}

/// A store failure: logged in full with an error id (target `durable::admin`); the answer
/// carries the id only.
pub(crate) fn internal(
    api: bool,
    prefix: &str,
    what: &str,
    error: &dyn std::fmt::Display,
) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let id = &id[..16];
    tracing::error!(target: "durable::admin", error_id = id, %error, "{what}");
    let message = format!("{what} failed (error id {id}).");
    let status = StatusCode::INTERNAL_SERVER_ERROR;
    if api {
        // The id as a field of its own too, for scripts.
        (status, Json(json!({ "error": message, "error_id": id }))).into_response()
    } else {
        (status, Html(html::message_page(prefix, status, &message))).into_response()
    }
}
