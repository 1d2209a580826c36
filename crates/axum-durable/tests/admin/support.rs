//! An admin router over a real store, and requests as a browser sends them.

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use axum_durable::admin::{Admin, LoginForm, Role, Users};
use axum_durable::core::store::AdminStore as _;
use axum_durable::testing::TestDurable;
use axum_durable::{Registry, Task, TaskContext, TaskError, TaskId, TaskOptions, TaskState};
use http_body_util::BodyExt as _;
use serde::{Deserialize, Serialize};
use tower::ServiceExt as _;

pub(crate) const HOST: &str = "admin.test";
pub(crate) const ORIGIN: &str = "http://admin.test";
pub(crate) const SECRET_CARD: &str = "4242-SECRET-CARD";
pub(crate) const SCRIPT: &str = "<script>alert(1)</script>";

/// A task that always fails for good, with a payload worth redacting and escaping.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Charge {
    pub(crate) card: String,
    pub(crate) note: String,
}

impl Task for Charge {
    const NAME: &'static str = "admin_charge";
    type State = ();
    async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
        Err(TaskError::permanent("card declined <b>bold</b>"))
    }
    fn options() -> TaskOptions {
        TaskOptions::default().max_attempts(1)
    }
}

pub(crate) fn charge() -> Charge {
    Charge {
        card: SECRET_CARD.into(),
        note: SCRIPT.into(),
    }
}

pub(crate) fn registry() -> Registry {
    Registry::new().register::<Charge>(())
}

/// A store and the admin router nested at `/admin` with a login form: `oncall` may act,
/// `viewer` may only look; card numbers are redacted.
pub(crate) struct Harness {
    pub(crate) t: TestDurable,
    pub(crate) app: Router,
}

impl Harness {
    pub(crate) fn new(t: TestDurable) -> Self {
        let users = Users::new()
            .user("oncall", "oncall-pw", Role::Actions)
            .user("viewer", "viewer-pw", Role::ReadOnly);
        let admin = Admin::new(t.store())
            .login(LoginForm::new(users))
            .redact(|task_type, payload| {
                if task_type == Charge::NAME {
                    payload["card"] = "***".into();
                }
            })
            .into_router();
        let app = Router::new().nest_service("/admin", admin);
        Self { t, app }
    }

    pub(crate) async fn enqueue(&self) -> TaskId {
        self.t.client().enqueue(charge()).await.expect("enqueue")
    }

    pub(crate) async fn state(&self, id: TaskId) -> Option<TaskState> {
        self.t
            .store()
            .get(id)
            .await
            .expect("get")
            .map(|task| task.state)
    }

    pub(crate) async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// A GET with `cookies`, as a same-origin browser sends it.
    pub(crate) async fn get(&self, path: &str, cookies: &str) -> Reply {
        let mut request = Request::get(path).header(header::HOST, HOST);
        if !cookies.is_empty() {
            request = request.header(header::COOKIE, cookies);
        }
        self.send(request.body(Body::empty()).expect("request"))
            .await
    }

    /// A form POST of `fields` from a page of the admin (same origin) with `cookies`, plus
    /// `extra` headers.
    pub(crate) async fn post_form(
        &self,
        path: &str,
        cookies: &str,
        fields: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> Reply {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let mut request = Request::post(path)
            .header(header::HOST, HOST)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, cookies);
        let mut origin = true;
        for (name, value) in extra {
            origin &= !name.eq_ignore_ascii_case("origin");
            request = request.header(*name, *value);
        }
        if origin {
            request = request.header(header::ORIGIN, ORIGIN);
        }
        self.send(request.body(Body::from(body.join("&"))).expect("request"))
            .await
    }

    /// Logs in through the form; the session's cookies and CSRF token.
    pub(crate) async fn login(&self, user: &str, password: &str) -> Session {
        let page = self.get("/admin/login", "").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("name=\"username\""), "{}", page.body);
        let csrf = page.cookie("durable_admin_csrf").expect("csrf cookie");
        let cookies = format!("durable_admin_csrf={csrf}");
        let reply = self
            .post_form(
                "/admin/login",
                &cookies,
                &[("csrf", &csrf), ("username", user), ("password", password)],
                &[("sec-fetch-site", "same-origin")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
        assert_eq!(reply.headers[header::LOCATION], "/admin/");
        let set = reply
            .set_cookie("durable_admin_session")
            .expect("session cookie");
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        let session = reply.cookie("durable_admin_session").expect("session");
        Session {
            cookies: format!("{cookies}; durable_admin_session={session}"),
            csrf,
        }
    }
}

/// A logged-in browser: its cookies and the CSRF token its pages carry.
pub(crate) struct Session {
    pub(crate) cookies: String,
    pub(crate) csrf: String,
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Reply {
    /// The whole `Set-Cookie` header for cookie `name`.
    pub(crate) fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// The value a `Set-Cookie` gives cookie `name`.
    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        let set = self.set_cookie(name)?;
        let pair = set.split(';').next()?;
        pair.split_once('=').map(|(_, value)| value.to_owned())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
