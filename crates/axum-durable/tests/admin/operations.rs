//! The actions that need the full admin store: retry, delete, retry every failed task of a
//! type, and the overview's counts and chart.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum_durable::TaskState;

use crate::support::{Harness, HOST};

/// Enqueues a task and runs it: it fails for good.
async fn failed_task(h: &Harness) -> axum_durable::TaskId {
    let id = h.enqueue().await;
    let report = h.t.run_until_idle().await;
    assert!(report.failed.iter().any(|task| task.id == id), "{report:?}");
    assert_eq!(h.state(id).await, Some(TaskState::Failed));
    id
}

pub(crate) async fn retry_and_delete_from_the_detail_page(h: Harness) {
    let id = failed_task(&h).await;
    let operator = h.login("oncall", "oncall-pw").await;
    let path = format!("/admin/tasks/{id}");

    let page = h.get(&path, &operator.cookies).await;
    assert!(page.body.contains("task-state s-failed"), "{}", page.body);
    assert!(page.body.contains("<button id=\"retry\""));
    assert!(page.body.contains("<button id=\"delete\""));
    assert!(!page.body.contains("<button id=\"cancel\""));
    assert!(
        page.body.contains("card declined &lt;b&gt;bold&lt;/b&gt;"),
        "error history escaped"
    );

    // A stale page: it showed attempt 0, the task has made 1.
    let stale = h
        .post_form(
            &format!("{path}/retry"),
            &operator.cookies,
            &[
                ("csrf", &operator.csrf),
                ("state", "failed"),
                ("attempts", "0"),
            ],
            &[],
        )
        .await;
    assert_eq!(
        stale.headers[header::LOCATION],
        format!("{path}?flash=conflict")
    );
    assert_eq!(h.state(id).await, Some(TaskState::Failed));

    let retried = h
        .post_form(
            &format!("{path}/retry"),
            &operator.cookies,
            &[
                ("csrf", &operator.csrf),
                ("state", "failed"),
                ("attempts", "1"),
            ],
            &[],
        )
        .await;
    assert_eq!(retried.status, StatusCode::SEE_OTHER, "{}", retried.body);
    assert_eq!(
        retried.headers[header::LOCATION],
        format!("{path}?flash=retry")
    );
    assert_eq!(h.state(id).await, Some(TaskState::Pending));
    let page = h
        .get(&format!("{path}?flash=retry"), &operator.cookies)
        .await;
    assert!(
        page.body
            .contains("id=\"task-state\" class=\"state task-state s-pending\">pending<"),
        "{}",
        page.body
    );

    let attempts =
        h.t.store()
            .get(id)
            .await
            .expect("get")
            .expect("row")
            .attempts
            .to_string();
    let deleted = h
        .post_form(
            &format!("{path}/delete"),
            &operator.cookies,
            &[
                ("csrf", &operator.csrf),
                ("state", "pending"),
                ("attempts", &attempts),
            ],
            &[],
        )
        .await;
    assert_eq!(
        deleted.headers[header::LOCATION],
        format!("{path}?flash=delete")
    );
    assert_eq!(h.state(id).await, None);
    let gone = h
        .get(&format!("{path}?flash=delete"), &operator.cookies)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

pub(crate) async fn retry_failed_of_a_type(h: Harness) {
    let first = failed_task(&h).await;
    let second = failed_task(&h).await;
    let operator = h.login("oncall", "oncall-pw").await;
    let list = h.get("/admin/tasks?state=failed", &operator.cookies).await;
    assert!(
        list.body.contains("<button id=\"retry-failed\""),
        "{}",
        list.body
    );
    let request = Request::post("/admin/api/retry-failed")
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::COOKIE, &operator.cookies)
        .header("x-csrf-token", &operator.csrf)
        .body(Body::from(r#"{"name":"admin_charge"}"#))
        .expect("request");
    let reply = h.send(request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["retried"], 2);
    assert_eq!(h.state(first).await, Some(TaskState::Pending));
    assert_eq!(h.state(second).await, Some(TaskState::Pending));
}

pub(crate) async fn the_overview_counts_and_charts(h: Harness) {
    failed_task(&h).await;
    h.enqueue().await;
    let viewer = h.login("viewer", "viewer-pw").await;
    let stats = h.get("/admin/api/stats", &viewer.cookies).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
    let stats = stats.json();
    assert_eq!(stats["states"]["failed"]["value"], 1);
    assert_eq!(stats["states"]["pending"]["value"], 1);
    assert!(stats["states"]["pending"]["kind"].is_string());
    for path in ["/admin/", "/admin"] {
        let page = h.get(path, &viewer.cookies).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        assert!(page.body.contains("id=\"nav-failed\""));
        assert!(page.body.contains("<svg id=\"throughput-chart\""));
        assert!(page.body.contains("id=\"count-failed\""));
    }
    let throughput = h.get("/admin/api/throughput", &viewer.cookies).await;
    assert_eq!(throughput.status, StatusCode::OK, "{}", throughput.body);
    assert!(throughput.json()["buckets"].is_array());
}

/// The form of a failed list filtered by queue retries that queue's failures, and leads back
/// to the same list (the queue kept), saying how many.
pub(crate) async fn retry_failed_form_keeps_the_queue(h: Harness) {
    let id = failed_task(&h).await;
    let operator = h.login("oncall", "oncall-pw").await;
    let list = h
        .get("/admin/tasks?state=failed&queue=default", &operator.cookies)
        .await;
    assert!(
        list.body.contains("name=\"queue\" value=\"default\""),
        "{}",
        list.body
    );
    assert!(
        list.body.contains("in queue default"),
        "the button says which failures it retries: {}",
        list.body
    );
    let other = h
        .post_form(
            "/admin/retry-failed",
            &operator.cookies,
            &[("csrf", &operator.csrf), ("name", ""), ("queue", "other")],
            &[],
        )
        .await;
    assert_eq!(other.status, StatusCode::SEE_OTHER, "{}", other.body);
    assert_eq!(
        other.headers[header::LOCATION],
        "/admin/tasks?state=failed&retried=0&queue=other"
    );
    assert_eq!(h.state(id).await, Some(TaskState::Failed));
    let done = h
        .post_form(
            "/admin/retry-failed",
            &operator.cookies,
            &[("csrf", &operator.csrf), ("name", ""), ("queue", "default")],
            &[],
        )
        .await;
    assert_eq!(
        done.headers[header::LOCATION],
        "/admin/tasks?state=failed&retried=1&queue=default"
    );
    assert_eq!(h.state(id).await, Some(TaskState::Pending));
}
