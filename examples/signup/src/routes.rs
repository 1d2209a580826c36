//! HTTP handlers.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_durable::{CancelOutcome, Durable, TaskId};
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::db::{Db, SignupError};
use crate::email::SendWelcomeEmail;
use crate::object::Object;

/// Body of `POST /signup` and `POST /invite`, read through [`Object`] so that only a JSON
/// object is accepted.
#[derive(Debug, Deserialize)]
pub(crate) struct EmailBody {
    email: String,
}

/// Longest address a mail server accepts (RFC 5321 path limit). Checked on `/signup`, whose
/// email goes into the indexed `users.email`; `/invite` leaves oversized input to the task
/// payload limit, which `try_spawn` reports (a `422`).
const MAX_EMAIL_LEN: usize = 254;

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The body of both endpoints: a JSON object with an `email`.
type Body = Result<Json<Object<EmailBody>>, JsonRejection>;

/// Validates the body: a JSON object with a non-blank `email` (kept exactly as submitted).
/// The error is the status and message of the problem response.
fn email_of(body: Body) -> Result<String, (StatusCode, String)> {
    let Json(Object(body)) =
        body.map_err(|rejection| (rejection.status(), rejection.body_text()))?;
    if body.email.trim().is_empty() {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            "`email` must not be blank".to_owned(),
        ));
    }
    Ok(body.email)
}

/// Test hook (`CRASH_AFTER_SIGNUP_COMMIT=1`): abort after a signup commits, before its
/// response is sent.
pub(crate) static CRASH_AFTER_SIGNUP_COMMIT: AtomicBool = AtomicBool::new(false);

/// Creates the user and its welcome-email task in one transaction; 201 once both are stored.
/// Under the `Idempotency` layer the 201 is recorded in that same transaction, so a retry
/// with the same key gets it back even if the process died before answering.
pub(crate) async fn signup(State(db): State<Db>, durable: Durable, body: Body) -> Response {
    let email = match email_of(body) {
        Ok(email) => email,
        Err((status, message)) => return problem(status, message),
    };
    if email.len() > MAX_EMAIL_LEN {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`email` must be at most {MAX_EMAIL_LEN} bytes"),
        );
    }
    let created = |user_id: i64, task_id: TaskId| {
        (
            StatusCode::CREATED,
            Json(json!({ "user_id": user_id, "task_id": task_id })),
        )
    };
    match db.signup(&durable, &email, created).await {
        Ok(response) => {
            if CRASH_AFTER_SIGNUP_COMMIT.load(Ordering::Relaxed) {
                tracing::warn!("CRASH_AFTER_SIGNUP_COMMIT: aborting after the commit");
                std::process::abort();
            }
            response
        }
        Err(SignupError::Duplicate) => problem(
            StatusCode::CONFLICT,
            format!("`{email}` is already registered"),
        ),
        Err(SignupError::Storage(error)) => error.into_response(),
    }
}

/// How long `GET /tasks/{id}` waits for a task to finish before answering with its current
/// state.
const TASK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// `GET /tasks/{id}`: a task's state, once final — waiting up to [`TASK_WAIT`] for it (a long
/// poll), else as it is then. The state, attempts and last error only: the payload holds the
/// user's address.
pub(crate) async fn task(durable: Durable, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<TaskId>() else {
        return problem(StatusCode::BAD_REQUEST, "not a task id");
    };
    let client = durable.client();
    let found = match tokio::time::timeout(TASK_WAIT, client.wait(id)).await {
        Ok(Err(axum_durable::core::Error::UnknownTask { .. })) => None,
        Ok(result) => Some(result),
        Err(_still_running) => client.get(id).await.transpose(),
    };
    match found {
        None => problem(StatusCode::NOT_FOUND, "no such task"),
        Some(Err(error)) => axum_durable::Error::from(error).into_response(),
        Some(Ok(task)) => Json(json!({
            "task_id": task.id,
            "state": task.state.as_str(),
            "attempts": task.attempts,
            "last_error": task.last_error,
        }))
        .into_response(),
    }
}

/// `POST /tasks/{id}/cancel`: cancels a task. A pending one is cancelled at once (`200`,
/// `"cancelled"`); a running one is asked to stop (`202`, `"requested"`: `GET /tasks/{id}`
/// reports how it ended — `cancelled`, or `completed` if the email went out first); a
/// finished one is left as it is (`409`).
pub(crate) async fn cancel(durable: Durable, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<TaskId>() else {
        return problem(StatusCode::BAD_REQUEST, "not a task id");
    };
    let (status, outcome) = match durable.client().cancel(id).await {
        Ok(CancelOutcome::Cancelled) => (StatusCode::OK, "cancelled"),
        Ok(CancelOutcome::Requested) => (StatusCode::ACCEPTED, "requested"),
        Ok(CancelOutcome::AlreadyFinished) => (StatusCode::CONFLICT, "already_finished"),
        Ok(CancelOutcome::NotFound) => return problem(StatusCode::NOT_FOUND, "no such task"),
        Ok(other) => {
            tracing::warn!(task_id = %id, outcome = ?other, "unexpected cancel outcome");
            (StatusCode::OK, "unknown")
        }
        Err(error) => return axum_durable::Error::from(error).into_response(),
    };
    (status, Json(json!({ "task_id": id, "outcome": outcome }))).into_response()
}

/// Spawns the email task with the buffered `try_spawn`: stored by the layer before the 202.
pub(crate) async fn invite(durable: Durable, body: Body) -> Response {
    let email = match email_of(body) {
        Ok(email) => email,
        Err((status, message)) => return problem(status, message),
    };
    match durable.try_spawn(SendWelcomeEmail { email }) {
        Ok(task_id) => (StatusCode::ACCEPTED, Json(json!({ "task_id": task_id }))).into_response(),
        Err(error) => unstorable(error),
    }
}

/// The answer for a task `try_spawn` could not prepare. Its payload is the client's input, so
/// a payload over the limit is the client's problem (`422`, saying which limit, without the
/// task's name or the library's wording); anything else is ours, logged and answered with
/// the library's status.
fn unstorable(error: axum_durable::Error) -> Response {
    match error {
        axum_durable::Error::Enqueue(axum_durable::core::Error::PayloadTooLarge {
            size,
            limit,
            ..
        }) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "`email` is too long: the invitation would be {size} bytes, over the limit \
                 of {limit} bytes"
            ),
        ),
        other => {
            tracing::error!(error = %other, "invite task could not be prepared");
            problem(other.status(), "the invitation could not be stored")
        }
    }
}

/// Liveness.
pub(crate) async fn health() -> &'static str {
    "ok"
}
