//! The overview and the list pages, and the form that retries every failed task of a type.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Extension, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::Utc;
use durable_core::store::{ListQuery, RetryFailed, TaskRecord, MAX_LIST_LIMIT};
use durable_core::TaskState;
use serde::Deserialize;

use super::{chart, escape, page, state_badge, time};
use crate::admin::actions;
use crate::admin::api::HOUR;
use crate::admin::guard::RequestCtx;
use crate::admin::problem;
use crate::admin::query::{percent_encode, ListParams};
use crate::admin::state::Shared;

/// Failures the overview lists.
const LATEST_FAILURES: u32 = 10;

/// Rows of tasks: `tr.task` with `data-id`, a link to the task, its state in `.task-state`.
fn task_rows(prefix: &str, tasks: &[TaskRecord]) -> String {
    let p = escape(prefix);
    let mut rows = String::new();
    for task in tasks {
        let error = task.last_error.as_deref().unwrap_or("");
        let _ = write!(
            rows,
            "<tr class=\"task\" data-id=\"{id}\"><td><a href=\"{p}/tasks/{id}\"><code>{id}</code></a></td>\
             <td>{state}</td><td>{name}</td><td>{queue}</td><td>{attempts}/{max}</td><td>{created}</td>\
             <td class=\"err\">{error}</td></tr>",
            id = task.id,
            state = state_badge(task.state, ""),
            name = escape(&task.name),
            queue = escape(&task.queue),
            attempts = task.attempts,
            max = task.max_attempts,
            created = time(task.created_at),
            error = escape(error),
        );
    }
    if tasks.is_empty() {
        rows.push_str("<tr><td colspan=\"7\" class=\"muted\">No tasks.</td></tr>");
    }
    format!(
        "<div class=\"panel\"><table id=\"tasks\"><thead><tr><th>Task</th><th>State</th>\
         <th>Task type</th><th>Queue</th><th>Attempts</th><th>Created</th><th>Last error</th></tr>\
         </thead><tbody>{rows}</tbody></table></div>"
    )
}

/// `GET <prefix>/`: counts, the chart of the last hour, queues and the latest failures.
pub(crate) async fn overview(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<RequestCtx>,
) -> Response {
    let now = Utc::now();
    let since = now - HOUR;
    let failures = ListQuery::new(LATEST_FAILURES)
        .state(TaskState::Failed)
        .newest_first();
    let (stats, throughput, failed) = tokio::join!(
        shared.store.stats(),
        shared.store.throughput(since),
        shared.store.list(&failures),
    );
    let (stats, throughput, failed) = match (stats, throughput, failed) {
        (Ok(stats), Ok(throughput), Ok(failed)) => (stats, throughput, failed),
        (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => {
            return problem::internal(false, &ctx.prefix, "Reading the overview", &error)
        }
    };
    let p = escape(&ctx.prefix);
    let mut body = String::from("<h1>Overview</h1><div class=\"cards\" id=\"state-counts\">");
    for (state, count) in &stats.states {
        let _ = write!(
            body,
            "<a class=\"card\" id=\"count-{s}\" href=\"{p}/tasks?state={s}\"><div class=\"l\">{s}</div>\
             <div class=\"n\">{count}</div><div class=\"k\">{kind}</div></a>",
            s = state.as_str(),
            kind = count.kind().replace('_', " "),
        );
    }
    let _ = write!(
        body,
        "<div class=\"card\" id=\"count-due\"><div class=\"l\">due now</div><div class=\"n\">{}</div>\
         <div class=\"k\">{}</div></div></div>",
        stats.due,
        stats.due.kind().replace('_', " ")
    );
    let _ = write!(
        body,
        "<h2>Last hour</h2><div class=\"panel\">{}</div>",
        chart::svg(now, &throughput)
    );
    body.push_str("<h2>Queues</h2><div class=\"panel\"><table id=\"queues\"><thead><tr><th>Queue</th><th>Pending</th><th>Processing</th></tr></thead><tbody>");
    for queue in &stats.queues {
        let q = percent_encode(&queue.queue);
        let _ = write!(
            body,
            "<tr><td>{name}</td><td><a href=\"{p}/tasks?state=pending&amp;queue={q}\">{}</a></td>\
             <td><a href=\"{p}/tasks?state=processing&amp;queue={q}\">{}</a></td></tr>",
            queue.pending,
            queue.processing,
            name = escape(&queue.queue),
        );
    }
    if stats.queues.is_empty() {
        body.push_str("<tr><td colspan=\"3\" class=\"muted\">No live work.</td></tr>");
    }
    body.push_str("</tbody></table></div>");
    let _ = write!(
        body,
        "<h2>Latest failures <a href=\"{p}/tasks?state=failed\" class=\"muted\">all</a></h2>{}",
        task_rows(&ctx.prefix, &failed.tasks)
    );
    page(&ctx, "Overview", "nav-overview", &body).into_response()
}

/// The list page's query: filters plus a notice after a bulk retry.
#[derive(Debug, Deserialize)]
pub(crate) struct ListPage {
    #[serde(flatten)]
    filters: ListParams,
    retried: Option<u64>,
}

/// `GET <prefix>/tasks`: one page of tasks, with filters.
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<RequestCtx>,
    query: Result<Query<ListPage>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(ListPage { filters, retried })) = query else {
        return problem::bad_request(false, &ctx.prefix, "Malformed query string.");
    };
    let store_query = match filters.to_query(shared.page_size, shared.redact.is_none()) {
        Ok(query) => query,
        Err(message) => return problem::bad_request(false, &ctx.prefix, &message),
    };
    let page_rows = match shared.store.list(&store_query).await {
        Ok(page) => page,
        Err(error) => return problem::internal(false, &ctx.prefix, "Listing tasks", &error),
    };
    let p = escape(&ctx.prefix);
    let state = filters.state();
    let title = state.map_or_else(
        || "All tasks".to_owned(),
        |s| format!("{} tasks", capitalize(s)),
    );
    let mut body = format!("<h1>{}</h1>", escape(&title));
    if let Some(n) = retried {
        let _ = write!(
            body,
            "<div class=\"flash\" id=\"flash\">{n} failed task(s) put back to pending.</div>"
        );
    }
    body.push_str(&filter_form(&ctx.prefix, &filters, shared.redact.is_none()));
    if state == Some("failed") && ctx.principal.can_act {
        let name = filters.name().unwrap_or("");
        let mut what = if name.is_empty() {
            "all task types".to_owned()
        } else {
            escape(name)
        };
        if let Some(queue) = filters.queue() {
            let _ = write!(what, " in queue {}", escape(queue));
        }
        let _ = write!(
            body,
            "<form class=\"actions\" method=\"post\" action=\"{p}/retry-failed\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"name\" value=\"{n}\">\
             <input type=\"hidden\" name=\"queue\" value=\"{q}\">\
             <button id=\"retry-failed\" class=\"primary\" type=\"submit\">Retry failed tasks of {what} (up to {MAX_LIST_LIMIT})</button></form>",
            csrf = escape(&ctx.csrf),
            n = escape(name),
            q = escape(filters.queue().unwrap_or("")),
        );
    }
    body.push_str(&task_rows(&ctx.prefix, &page_rows.tasks));
    if let Some(next) = page_rows.next {
        let qs = filters.query_string();
        let sep = if qs.is_empty() { "" } else { "&amp;" };
        let _ = write!(
            body,
            "<p><a id=\"next-page\" href=\"{p}/tasks?{}{sep}after={next}\">Next page →</a></p>",
            escape(&qs)
        );
    }
    let current = match state {
        Some("failed") => "nav-failed",
        Some("processing") => "nav-processing",
        Some("pending") => "nav-pending",
        _ => "nav-tasks",
    };
    page(&ctx, &title, current, &body).into_response()
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// The filters, as a GET form that reloads the list.
fn filter_form(prefix: &str, filters: &ListParams, search: bool) -> String {
    let mut states = String::from("<option value=\"\">any</option>");
    for state in TaskState::ALL {
        let selected = if filters.state() == Some(state.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(states, "<option{selected}>{}</option>", state.as_str());
    }
    let field = |label: &str, name: &str, value: Option<&str>, placeholder: &str| {
        format!(
            "<label>{label}<input name=\"{name}\" value=\"{}\" placeholder=\"{placeholder}\"></label>",
            escape(value.unwrap_or(""))
        )
    };
    let search = if search {
        field("Payload contains", "search", filters.search(), "text")
    } else {
        String::new()
    };
    let oldest = if filters.oldest_first() {
        " selected"
    } else {
        ""
    };
    format!(
        "<form class=\"filters\" method=\"get\" action=\"{p}/tasks\"><label>State<select name=\"state\">{states}</select></label>\
         {name}{queue}{from}{until}{search}<label>Order<select name=\"order\"><option value=\"newest\">newest first</option>\
         <option value=\"oldest\"{oldest}>oldest first</option></select></label><button type=\"submit\">Filter</button></form>",
        p = escape(prefix),
        name = field("Task type", "name", filters.name(), "send_email"),
        queue = field("Queue", "queue", filters.queue(), "default"),
        from = field("Created from (UTC)", "from", filters.from(), "2026-01-31T12:00"),
        until = field("Created before (UTC)", "until", filters.until(), "2026-01-31T13:00"),
    )
}

/// The form of `POST <prefix>/retry-failed`.
#[derive(Debug, Deserialize)]
pub(crate) struct RetryFailedForm {
    name: Option<String>,
    queue: Option<String>,
}

/// `POST <prefix>/retry-failed`: retries failed tasks (of a type, of a queue), then back to
/// the failed list of that type and queue, with how many.
pub(crate) async fn retry_failed(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<RequestCtx>,
    Form(form): Form<RetryFailedForm>,
) -> Response {
    let name = form.name.filter(|s| !s.trim().is_empty());
    let queue = form.queue.filter(|s| !s.trim().is_empty());
    let mut which = RetryFailed::new(MAX_LIST_LIMIT);
    if let Some(name) = &name {
        which = which.name(name.trim());
    }
    if let Some(queue) = &queue {
        which = which.queue(queue.trim());
    }
    match actions::retry_failed(&shared, &ctx.principal, &which).await {
        Ok(n) => {
            let mut to = format!("{}/tasks?state=failed&retried={n}", ctx.prefix);
            // Back to the list the form was on: its task type and queue.
            if let Some(name) = &name {
                let _ = write!(to, "&name={}", percent_encode(name.trim()));
            }
            if let Some(queue) = &queue {
                let _ = write!(to, "&queue={}", percent_encode(queue.trim()));
            }
            Redirect::to(&to).into_response()
        }
        Err(error) => problem::internal(false, &ctx.prefix, "Retrying failed tasks", &error),
    }
}
