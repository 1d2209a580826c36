//! What the pages and the API show: redacted payloads, escaped text, the list contract.

use axum::http::StatusCode;

use crate::support::{Harness, SCRIPT, SECRET_CARD};

pub(crate) async fn payloads_are_redacted_and_escaped(h: Harness) {
    let id = h.enqueue().await;
    let viewer = h.login("viewer", "viewer-pw").await;

    let page = h.get(&format!("/admin/tasks/{id}"), &viewer.cookies).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains(SECRET_CARD), "redacted in HTML");
    assert!(
        !page.body.contains(SCRIPT),
        "escaped in HTML: {}",
        page.body
    );
    assert!(
        page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"task-state\""));
    assert!(
        !page.body.contains("<button id=\"cancel\""),
        "a viewer gets no buttons"
    );
    assert_eq!(
        page.headers["content-security-policy"]
            .to_str()
            .expect("ascii")
            .split(';')
            .next(),
        Some("default-src 'none'")
    );

    let api = h
        .get(&format!("/admin/api/tasks/{id}"), &viewer.cookies)
        .await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.body);
    assert!(!api.body.contains(SECRET_CARD), "redacted in JSON");
    let task = api.json();
    assert_eq!(task["payload"]["card"], "***");
    assert_eq!(task["payload"]["note"], SCRIPT);
    assert_eq!(task["state"], "pending");
    assert_eq!(task["steps"], serde_json::json!([]));

    // Searching payloads would tell what the hook hides.
    let search = h.get("/admin/api/tasks?search=4242", &viewer.cookies).await;
    assert_eq!(search.status, StatusCode::BAD_REQUEST);
    let operator = h.login("oncall", "oncall-pw").await;
    let page = h
        .get(&format!("/admin/tasks/{id}"), &operator.cookies)
        .await;
    assert!(page.body.contains("<button id=\"cancel\""), "{}", page.body);
    assert!(
        !page.body.contains("<button id=\"retry\""),
        "retry does not apply to a pending task"
    );
}

pub(crate) async fn lists_follow_the_contract(h: Harness) {
    let first = h.enqueue().await;
    let second = h.enqueue().await;
    let viewer = h.login("viewer", "viewer-pw").await;

    let page = h.get("/admin/tasks?state=pending", &viewer.cookies).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for id in [first, second] {
        assert!(
            page.body
                .contains(&format!("<tr class=\"task\" data-id=\"{id}\">")),
            "{}",
            page.body
        );
        assert!(page.body.contains(&format!("href=\"/admin/tasks/{id}\"")));
    }
    assert!(page.body.contains("task-state s-pending"));
    assert!(page
        .body
        .contains("id=\"nav-failed\" href=\"/admin/tasks?state=failed\""));

    // Keyset pages through the API: one task per page, newest first.
    let one = h
        .get("/admin/api/tasks?state=pending&limit=1", &viewer.cookies)
        .await
        .json();
    assert_eq!(one["tasks"][0]["id"], second.to_string());
    let next = one["next"].as_str().expect("a next page");
    let two = h
        .get(
            &format!("/admin/api/tasks?state=pending&limit=1&after={next}"),
            &viewer.cookies,
        )
        .await
        .json();
    assert_eq!(two["tasks"][0]["id"], first.to_string());
    let none = h
        .get("/admin/api/tasks?state=failed", &viewer.cookies)
        .await
        .json();
    assert_eq!(none["tasks"], serde_json::json!([]));
    let bad = h.get("/admin/api/tasks?state=done", &viewer.cookies).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}
