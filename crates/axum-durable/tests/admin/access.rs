//! Who gets in and who may act.

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use axum_durable::admin::{Admin, Authorize, BasicAuth, Principal, Refusal, Role, Users};
use axum_durable::TaskState;

use crate::support::{Harness, HOST};

pub(crate) async fn unauthenticated_requests_are_refused(h: Harness) {
    let api = h.get("/admin/api/tasks", "").await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED, "{}", api.body);
    assert!(api.json()["error"].is_string());
    let page = h.get("/admin/", "").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.headers[header::LOCATION], "/admin/login");
    let detail = h.get("/admin/tasks/not-even-an-id", "").await;
    assert_eq!(detail.headers[header::LOCATION], "/admin/login");
    // An action without a session: refused before anything else.
    let id = h.enqueue().await;
    let post = h
        .post_form(
            &format!("/admin/tasks/{id}/cancel"),
            "",
            &[("state", "pending"), ("attempts", "0")],
            &[],
        )
        .await;
    assert_eq!(post.status, StatusCode::SEE_OTHER);
    assert_eq!(h.state(id).await, Some(TaskState::Pending));
    // A forged session cookie is no session.
    let forged = h
        .get("/admin/api/tasks", "durable_admin_session=0123456789abcdef")
        .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
}

pub(crate) async fn a_wrong_password_is_refused(h: Harness) {
    let page = h.get("/admin/login", "").await;
    let csrf = page.cookie("durable_admin_csrf").expect("csrf cookie");
    let cookies = format!("durable_admin_csrf={csrf}");
    let reply = h
        .post_form(
            "/admin/login",
            &cookies,
            &[
                ("csrf", &csrf),
                ("username", "oncall"),
                ("password", "viewer-pw"),
            ],
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.set_cookie("durable_admin_session").is_none());
    assert!(
        reply.body.contains("Wrong user name or password"),
        "{}",
        reply.body
    );
    // A login form posted from another site is refused even with good credentials.
    let cross = h
        .post_form(
            "/admin/login",
            &cookies,
            &[
                ("csrf", &csrf),
                ("username", "oncall"),
                ("password", "oncall-pw"),
            ],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
}

pub(crate) async fn actions_need_an_operator_same_origin_and_the_token(h: Harness) {
    let id = h.enqueue().await;
    let path = format!("/admin/tasks/{id}/cancel");
    let operator = h.login("oncall", "oncall-pw").await;
    let viewer = h.login("viewer", "viewer-pw").await;
    let fields = |csrf: &str| {
        vec![
            ("csrf".to_owned(), csrf.to_owned()),
            ("state".to_owned(), "pending".to_owned()),
            ("attempts".to_owned(), "0".to_owned()),
        ]
    };
    let send = |cookies: String,
                fields: Vec<(String, String)>,
                extra: Vec<(&'static str, &'static str)>| {
        let h = &h;
        let path = path.clone();
        async move {
            let fields: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            h.post_form(&path, &cookies, &fields, &extra).await
        }
    };

    let read_only = send(viewer.cookies.clone(), fields(&viewer.csrf), vec![]).await;
    assert_eq!(
        read_only.status,
        StatusCode::FORBIDDEN,
        "{}",
        read_only.body
    );
    let cross_site = send(
        operator.cookies.clone(),
        fields(&operator.csrf),
        vec![("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
    let other_origin = send(
        operator.cookies.clone(),
        fields(&operator.csrf),
        vec![("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(other_origin.status, StatusCode::FORBIDDEN);
    let wrong_token = send(operator.cookies.clone(), fields(&"0".repeat(64)), vec![]).await;
    assert_eq!(wrong_token.status, StatusCode::FORBIDDEN);
    let no_token: Vec<(String, String)> = fields(&operator.csrf).into_iter().skip(1).collect();
    let missing = send(operator.cookies.clone(), no_token, vec![]).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert_eq!(
        h.state(id).await,
        Some(TaskState::Pending),
        "no refused action acted"
    );

    let done = send(
        operator.cookies.clone(),
        fields(&operator.csrf),
        vec![("sec-fetch-site", "same-origin")],
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.headers[header::LOCATION],
        format!("/admin/tasks/{id}?flash=cancel")
    );
    assert_eq!(h.state(id).await, Some(TaskState::Cancelled));
    let page = h
        .get(
            &format!("/admin/tasks/{id}?flash=cancel"),
            &operator.cookies,
        )
        .await;
    assert!(
        page.body
            .contains("id=\"task-state\" class=\"state task-state s-cancelled\""),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("id=\"cancel\""),
        "cancel no longer applies"
    );
}

pub(crate) async fn an_api_action_carries_what_was_seen(h: Harness) {
    let id = h.enqueue().await;
    let operator = h.login("oncall", "oncall-pw").await;
    let post = |body: &'static str| {
        Request::post(format!("/admin/api/tasks/{id}/cancel"))
            .header(header::HOST, HOST)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::COOKIE, &operator.cookies)
            .header("x-csrf-token", &operator.csrf)
            .body(Body::from(body))
            .expect("request")
    };
    let stale = h.send(post(r#"{"state":"pending","attempts":3}"#)).await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    assert_eq!(stale.json()["state"], "pending");
    assert_eq!(h.state(id).await, Some(TaskState::Pending));
    let missing = h.send(post("{}")).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    let done = h.send(post(r#"{"state":"pending","attempts":0}"#)).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.json()["outcome"], "done");
    assert_eq!(h.state(id).await, Some(TaskState::Cancelled));
    let again = h.send(post(r#"{"state":"pending","attempts":0}"#)).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.json()["state"], "cancelled");
}

pub(crate) async fn logout_ends_the_session(h: Harness) {
    let operator = h.login("oncall", "oncall-pw").await;
    assert_eq!(
        h.get("/admin/api/tasks", &operator.cookies).await.status,
        StatusCode::OK
    );
    let out = h
        .post_form(
            "/admin/logout",
            &operator.cookies,
            &[("csrf", &operator.csrf)],
            &[],
        )
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.headers[header::LOCATION], "/admin/login");
    assert_eq!(
        h.get("/admin/api/tasks", &operator.cookies).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// Basic authentication: browsers get a challenge, scripts send the header.
#[tokio::test]
async fn basic_auth_challenges_and_lets_users_in() {
    let t = axum_durable::testing::TestDurable::new(crate::support::registry())
        .await
        .expect("harness");
    let users = Users::new().user("script", "s3cret", Role::ReadOnly);
    let app = Router::new().nest_service(
        "/ops/admin",
        Admin::new(t.store())
            .authorize(BasicAuth::new(users))
            .into_router(),
    );
    let h = Harness { t, app };
    let page = h.get("/ops/admin/", "").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.headers[header::WWW_AUTHENTICATE]
        .to_str()
        .expect("ascii")
        .starts_with("Basic"));
    let request = |auth: &'static str| {
        Request::get("/ops/admin/api/tasks")
            .header(header::AUTHORIZATION, auth)
            .body(Body::empty())
            .expect("request")
    };
    // script:s3cret and script:wrong
    assert_eq!(
        h.send(request("Basic c2NyaXB0OnMzY3JldA==")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.send(request("Basic c2NyaXB0Ondyb25n")).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Read-only, whatever the token.
    let id = h.enqueue().await;
    let action = Request::post(format!("/ops/admin/api/tasks/{id}/cancel"))
        .header(header::AUTHORIZATION, "Basic c2NyaXB0OnMzY3JldA==")
        .header(
            header::COOKIE,
            format!("durable_admin_csrf={}", "a".repeat(64)),
        )
        .header("x-csrf-token", "a".repeat(64))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"state":"pending","attempts":0}"#))
        .expect("request");
    assert_eq!(h.send(action).await.status, StatusCode::FORBIDDEN);
    assert_eq!(h.state(id).await, Some(TaskState::Pending));
}

/// A custom authorizer's refusal is a 403.
#[tokio::test]
async fn custom_refusals() {
    #[derive(Debug)]
    struct NobodyOnSundays;
    impl Authorize for NobodyOnSundays {
        async fn authorize(&self, _parts: &Parts) -> Result<Principal, Refusal> {
            Err(Refusal::forbidden())
        }
    }
    let t = axum_durable::testing::TestDurable::new(crate::support::registry())
        .await
        .expect("harness");
    let closed = Router::new().nest_service(
        "/admin",
        Admin::new(t.store())
            .authorize(NobodyOnSundays)
            .into_router(),
    );
    let h = Harness { t, app: closed };
    assert_eq!(
        h.get("/admin/api/tasks", "").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(h.get("/admin/", "").await.status, StatusCode::FORBIDDEN);
}

/// The open router answers requests for a loopback host only. A page of another site whose
/// name is rebound to 127.0.0.1 (DNS rebinding) is same-origin for the browser: it could read
/// every task and act, with a CSRF token it set itself. Loopback requests are still
/// CSRF-checked.
#[tokio::test]
async fn the_open_router_answers_loopback_hosts_only() {
    let t = axum_durable::testing::TestDurable::new(crate::support::registry())
        .await
        .expect("harness");
    let open = Router::new().nest_service(
        "/admin",
        Admin::new(t.store())
            .allow_everyone_insecure_local_only()
            .into_router(),
    );
    let h = Harness { t, app: open };
    let id = h.enqueue().await;
    let token = "c".repeat(64);
    let read = |host: &str| {
        Request::get("/admin/api/tasks")
            .header(header::HOST, host)
            .body(Body::empty())
            .expect("request")
    };
    let cancel = |host: &str, csrf: &str| {
        Request::post(format!("/admin/api/tasks/{id}/cancel"))
            .header(header::HOST, host)
            .header(header::ORIGIN, format!("http://{host}"))
            .header("sec-fetch-site", "same-origin")
            .header(header::COOKIE, format!("durable_admin_csrf={csrf}"))
            .header("x-csrf-token", csrf)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"state":"pending","attempts":0}"#))
            .expect("request")
    };

    for rebound in [
        "evil.example:8080",
        "evil.example",
        "localhost.evil.example",
    ] {
        let listing = h.send(read(rebound)).await;
        assert_eq!(
            listing.status,
            StatusCode::FORBIDDEN,
            "{rebound}: {}",
            listing.body
        );
        assert!(!listing.body.contains(&id.to_string()));
        let acted = h.send(cancel(rebound, &token)).await;
        assert_eq!(
            acted.status,
            StatusCode::FORBIDDEN,
            "{rebound}: {}",
            acted.body
        );
    }
    assert_eq!(h.state(id).await, Some(TaskState::Pending));

    for local in [
        "localhost:8080",
        "LOCALHOST",
        "127.0.0.1:3000",
        "[::1]:8080",
    ] {
        let listing = h.send(read(local)).await;
        assert_eq!(listing.status, StatusCode::OK, "{local}: {}", listing.body);
    }
    // Still CSRF-checked on a loopback host.
    let no_cookie = Request::post(format!("/admin/api/tasks/{id}/cancel"))
        .header(header::HOST, "localhost:8080")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"state":"pending","attempts":0}"#))
        .expect("request");
    assert_eq!(h.send(no_cookie).await.status, StatusCode::FORBIDDEN);
    let done = h.send(cancel("localhost:8080", &token)).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(h.state(id).await, Some(TaskState::Cancelled));
}

/// Paths and methods off the routes reach nothing without a session, and a read-only user's
/// POST reaches no action whatever the path's spelling or an override header.
pub(crate) async fn path_and_method_tricks_reach_nothing(h: Harness) {
    let id = h.enqueue().await;
    let tricks = [
        "/admin//api/tasks".to_owned(),
        "/admin/api//tasks".to_owned(),
        "/admin/api/tasks/".to_owned(),
        "/admin/API/tasks".to_owned(),
        "/admin/api%2Ftasks".to_owned(),
        "/admin/./api/tasks".to_owned(),
        format!("/admin/api/tasks/{id}/"),
        format!("/admin/tasks/{id}/"),
        "/admin/login/../api/tasks".to_owned(),
    ];
    for method in ["GET", "HEAD", "OPTIONS"] {
        for path in &tricks {
            let request = Request::builder()
                .method(method)
                .uri(path.as_str())
                .header(header::HOST, HOST)
                .body(Body::empty())
                .expect("request");
            let reply = h.send(request).await;
            assert!(
                matches!(reply.status.as_u16(), 401 | 303),
                "{method} {path}: {} {}",
                reply.status,
                reply.body
            );
            assert!(!reply.body.contains(&id.to_string()), "{method} {path}");
        }
    }
    let viewer = h.login("viewer", "viewer-pw").await;
    let fields = [
        ("csrf", viewer.csrf.as_str()),
        ("state", "pending"),
        ("attempts", "0"),
    ];
    for path in [
        format!("/admin/tasks/{id}/cancel"),
        format!("/admin/tasks/{id}/cancel/"),
        format!("/admin//tasks/{id}/cancel"),
        format!("/admin/tasks/{id}?_method=POST"),
        "/admin/retry-failed".to_owned(),
    ] {
        let reply = h
            .post_form(
                &path,
                &viewer.cookies,
                &fields,
                &[("x-http-method-override", "POST")],
            )
            .await;
        assert!(
            matches!(reply.status.as_u16(), 403..=405),
            "{path}: {}",
            reply.status
        );
    }
    assert_eq!(h.state(id).await, Some(TaskState::Pending));
}
