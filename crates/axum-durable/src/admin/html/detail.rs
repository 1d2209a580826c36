//! One task's page, with its action buttons, and the form actions behind them.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use durable_core::store::{Seen, StepRecord, TaskRecord};
use durable_core::{TaskId, TaskState};
use http::StatusCode;
use serde::Deserialize;

use super::{escape, maybe_time, page, state_badge, time};
use crate::admin::actions::{self, Action, Done};
use crate::admin::guard::RequestCtx;
use crate::admin::problem;
use crate::admin::redact;
use crate::admin::state::Shared;
use crate::admin::view::sorted_steps;

/// The notice after an action, by code (fixed texts: nothing from the request is echoed).
fn flash(code: &str) -> Option<(&'static str, bool)> {
    Some(match code {
        "retry" => ("Retried: the task is pending again.", false),
        "cancel" => ("Cancelled.", false),
        "cancel-requested" => ("Cancellation requested: the running attempt is being stopped.", false),
        "delete" => ("Deleted.", false),
        "requeue" => ("Requeued: the task is pending again.", false),
        "conflict" => ("Nothing done: the task changed since the page was shown, or the action does not apply to it. Here it is as it is now.", true),
        "key-held" => ("Nothing done: another live task holds this task's unique key.", true),
        "not-found" => ("Nothing done: no such task.", true),
        _ => return None,
    })
}

/// The detail page's query.
#[derive(Debug, Deserialize)]
pub(crate) struct DetailQuery {
    flash: Option<String>,
}

/// `GET <prefix>/tasks/{id}`.
pub(crate) async fn detail(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(id): Path<String>,
    Query(query): Query<DetailQuery>,
) -> Response {
    let notice = query
        .flash
        .as_deref()
        .and_then(flash)
        .map_or_else(String::new, |(text, bad)| {
            let class = if bad { "flash bad" } else { "flash" };
            format!("<div class=\"{class}\" id=\"flash\">{text}</div>")
        });
    let Ok(id) = id.parse::<TaskId>() else {
        return problem::not_found(false, &ctx.prefix);
    };
    let task = match shared.store.get(id).await {
        Ok(Some(task)) => task,
        Ok(None) => {
            let body = format!("<h1>Task <code>{id}</code></h1>{notice}<p>No such task: it was never stored, or it was deleted or pruned.</p>");
            let mut response = page(&ctx, "Task not found", "", &body).into_response();
            *response.status_mut() = StatusCode::NOT_FOUND;
            return response;
        }
        Err(error) => return problem::internal(false, &ctx.prefix, "Reading a task", &error),
    };
    let steps = match shared.store.steps(id).await {
        Ok(steps) => steps,
        Err(error) => {
            return problem::internal(false, &ctx.prefix, "Reading a task's steps", &error)
        }
    };
    let mut body = format!(
        "<h1>Task <code>{id}</code> {}</h1>{notice}",
        state_badge(task.state, " id=\"task-state\"")
    );
    if ctx.principal.can_act {
        body.push_str(&buttons(&ctx, &task));
    }
    body.push_str(&fields(&task));
    let payload = redact::payload(shared.redact.as_ref(), &task.name, &task.payload);
    let pretty = serde_json::to_string_pretty(&payload).unwrap_or_default();
    let _ = write!(
        body,
        "<h2>Payload</h2><pre id=\"payload\">{}</pre>",
        escape(&pretty)
    );
    body.push_str(&errors(&task));
    body.push_str(&steps_table(&shared, &task, &steps));
    page(&ctx, &format!("Task {id}"), "", &body).into_response()
}

/// A POST form per action that applies, carrying the state and attempts shown.
fn buttons(ctx: &RequestCtx, task: &TaskRecord) -> String {
    let mut html = String::from("<div class=\"actions\">");
    for action in Action::ALL {
        if !action.applies(task) {
            continue;
        }
        let (label, class) = match action {
            Action::Retry => ("Retry", "primary"),
            Action::Cancel => ("Cancel", "danger"),
            Action::Delete => ("Delete", "danger"),
            Action::Requeue => ("Requeue", ""),
        };
        let _ = write!(
            html,
            "<form method=\"post\" action=\"{p}/tasks/{id}/{a}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"state\" value=\"{state}\"><input type=\"hidden\" name=\"attempts\" value=\"{attempts}\">\
             <button id=\"{a}\" class=\"{class}\" type=\"submit\">{label}</button></form>",
            p = escape(&ctx.prefix),
            id = task.id,
            a = action.as_str(),
            csrf = escape(&ctx.csrf),
            state = task.state.as_str(),
            attempts = task.attempts,
        );
    }
    html.push_str("</div>");
    html
}

fn fields(task: &TaskRecord) -> String {
    // Stores keep the last owner after the attempt ends: say which it is.
    let lease = match task.lease_owner {
        Some(owner) if task.state == TaskState::Processing => {
            format!("{owner} until {}", maybe_time(task.lease_expires_at))
        }
        Some(owner) => format!("{owner} (last attempt)"),
        None => "—".to_owned(),
    };
    let rows = [
        ("Task type", escape(&task.name)),
        ("Queue", escape(&task.queue)),
        ("Priority", task.priority.to_string()),
        (
            "Attempts",
            format!("{} of {}", task.attempts, task.max_attempts),
        ),
        ("Requeues", task.requeues.to_string()),
        (
            "Unique key",
            escape(task.unique_key.as_deref().unwrap_or("—")),
        ),
        ("Run at", time(task.run_at)),
        ("Lease owner", lease),
        ("Started", maybe_time(task.started_at)),
        ("Cancel requested", maybe_time(task.cancel_requested_at)),
        ("Created", time(task.created_at)),
        ("Updated", time(task.updated_at)),
        ("Finished", maybe_time(task.finished_at)),
        (
            "Last error",
            escape(task.last_error.as_deref().unwrap_or("—")),
        ),
    ];
    let mut html = String::from("<div class=\"panel\"><dl id=\"task-fields\">");
    for (label, value) in rows {
        let _ = write!(html, "<dt>{label}</dt><dd>{value}</dd>");
    }
    html.push_str("</dl></div>");
    html
}

fn errors(task: &TaskRecord) -> String {
    let mut html = String::from(
        "<h2>Error history</h2><div class=\"panel\"><table id=\"errors\"><thead><tr><th>Attempt</th>\
         <th>At</th><th>Worker</th><th>Error</th></tr></thead><tbody>",
    );
    for error in &task.errors {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td class=\"err\">{}</td></tr>",
            error.attempt,
            time(error.at),
            error
                .worker
                .map_or_else(|| "—".to_owned(), |w| w.to_string()),
            escape(&error.message)
        );
    }
    if task.errors.is_empty() {
        html.push_str("<tr><td colspan=\"4\" class=\"muted\">No failed attempt.</td></tr>");
    }
    html.push_str("</tbody></table></div>");
    html
}

fn steps_table(shared: &Shared, task: &TaskRecord, steps: &[StepRecord]) -> String {
    let mut html = String::from(
        "<h2>Steps</h2><div class=\"panel\"><table id=\"steps\"><thead><tr><th>Step</th><th>Attempt</th>\
         <th>Output</th></tr></thead><tbody>",
    );
    for step in sorted_steps(steps) {
        let output =
            redact::step_output(shared.redact.as_ref(), &task.name, &step.name, &step.output);
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            escape(&step.name),
            step.attempt,
            escape(&output.to_string())
        );
    }
    if steps.is_empty() {
        html.push_str("<tr><td colspan=\"3\" class=\"muted\">No finished step.</td></tr>");
    }
    html.push_str("</tbody></table></div>");
    html
}

/// The form of an action: the task as it was shown.
#[derive(Debug, Deserialize)]
pub(crate) struct SeenForm {
    state: TaskState,
    attempts: u32,
}

/// `POST <prefix>/tasks/{id}/{action}`: the action, then back to the task's page with a
/// notice of what happened.
pub(crate) async fn act(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((id, action)): Path<(String, String)>,
    form: Result<Form<SeenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (Ok(id), Some(action)) = (id.parse::<TaskId>(), Action::parse(&action)) else {
        return problem::not_found(false, &ctx.prefix);
    };
    let Ok(Form(seen)) = form else {
        return problem::bad_request(
            false,
            &ctx.prefix,
            "The form lacks the task's state and attempts.",
        );
    };
    let seen = Seen::new(seen.state, seen.attempts);
    let code = match actions::perform(&shared, &ctx.principal, action, id, seen).await {
        Ok(Done::Applied { requested: true }) => "cancel-requested",
        Ok(Done::Applied { requested: false }) => action.as_str(),
        Ok(Done::Conflict { .. }) => "conflict",
        Ok(Done::KeyHeld { .. }) => "key-held",
        Ok(Done::NotFound) => "not-found",
        Err(error) => return problem::internal(false, &ctx.prefix, "The action", &error),
    };
    Redirect::to(&format!("{}/tasks/{id}?flash={code}", ctx.prefix)).into_response()
}
