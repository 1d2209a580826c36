//! [`LoginForm`]: a login page and sessions for browsers, over [`Users`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use http::request::Parts;
use http::{header, StatusCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::access::{Authorize, Principal, Refusal};
use super::cookies;
use super::guard::RequestCtx;
use super::html;
use super::state::Shared;
use super::users::{basic_credentials, Users};

/// Most sessions kept at once: a flood of logins cannot grow memory without bound (the
/// oldest session is dropped first).
const MAX_SESSIONS: usize = 10_000;

/// A login page (`GET`/`POST <prefix>/login`, `POST <prefix>/logout`) and the sessions it
/// starts, for [`Users`]: give it to [`Admin::login`](super::Admin::login).
///
/// A successful login sets a session cookie (random, HttpOnly, SameSite=Strict, scoped to
/// the admin path) and redirects to the overview; a browser without one is redirected to
/// the login page. API clients may send `Authorization: Basic` instead of a session.
///
/// Sessions live in this process's memory: they end when it restarts, and with several
/// instances behind a load balancer a session is known only to the instance that started it
/// (use sticky sessions, or [`BasicAuth`](super::BasicAuth)).
#[derive(Clone)]
pub struct LoginForm {
    inner: Arc<Inner>,
}

struct Inner {
    users: Users,
    ttl: Duration,
    /// Sessions by the SHA-256 of their token: the lookup's timing depends on the hash,
    /// never on how much of a guessed token matches.
    sessions: Mutex<HashMap<[u8; 32], Session>>,
}

#[derive(Clone)]
struct Session {
    principal: Principal,
    expires: Instant,
}

impl fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginForm")
            .field("users", &self.inner.users)
            .field("ttl", &self.inner.ttl)
            .finish_non_exhaustive()
    }
}

impl LoginForm {
    /// A login page for `users`; sessions last 8 hours.
    pub fn new(users: Users) -> Self {
        Self::with_ttl(users, Duration::from_secs(8 * 3600))
    }

    /// A login page for `users` whose sessions last `ttl`.
    pub fn with_ttl(users: Users, ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                users,
                ttl,
                sessions: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// Starts a session for `principal`; returns its token (the cookie's value).
    pub(crate) fn start(&self, principal: Principal) -> String {
        let token = cookies::random_token();
        let now = Instant::now();
        let mut sessions = lock(&self.inner.sessions);
        sessions.retain(|_, session| session.expires > now);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, session)| session.expires)
                .map(|(key, _)| *key)
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            hash(&token),
            Session {
                principal,
                expires: now + self.inner.ttl,
            },
        );
        token
    }

    /// Ends the session of `token`, if any.
    pub(crate) fn end(&self, token: &str) {
        lock(&self.inner.sessions).remove(&hash(token));
    }

    fn session(&self, token: &str) -> Option<Principal> {
        let sessions = lock(&self.inner.sessions);
        sessions
            .get(&hash(token))
            .filter(|session| session.expires > Instant::now())
            .map(|session| session.principal.clone())
    }
}

/// The session map, even if a thread panicked while holding it (the map stays consistent:
/// each change is one insert or remove).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Authorize for LoginForm {
    async fn authorize(&self, parts: &Parts) -> Result<Principal, Refusal> {
        if let Some(principal) =
            cookies::read(&parts.headers, cookies::SESSION).and_then(|token| self.session(token))
        {
            return Ok(principal);
        }
        basic_credentials(parts)
            .and_then(|(name, password)| self.inner.users.check(&name, &password))
            .ok_or_else(Refusal::unauthenticated)
    }
}

/// The login form's fields.
#[derive(Deserialize)]
pub(crate) struct Credentials {
    username: String,
    password: String,
}

/// `GET <prefix>/login`.
pub(crate) async fn page(Extension(ctx): Extension<RequestCtx>) -> Response {
    html::login_page(&ctx, false).into_response()
}

/// `POST <prefix>/login`: a session and a redirect to the overview, or the form again.
pub(crate) async fn submit(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<RequestCtx>,
    Form(credentials): Form<Credentials>,
) -> Response {
    let Some(login) = shared.login.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(principal) = login
        .inner
        .users
        .check(&credentials.username, &credentials.password)
    else {
        // A string field, written quoted and escaped: the name comes from anyone, and must
        // not start a log line of its own.
        tracing::warn!(target: "durable::admin", user = credentials.username.as_str(),
            "admin login refused");
        let mut response = html::login_page(&ctx, true).into_response();
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    };
    tracing::info!(target: "durable::admin", principal = %principal.name, "admin login");
    let token = login.start(principal);
    let mut response = Redirect::to(&format!("{}/", ctx.prefix)).into_response();
    if let Some(cookie) = cookies::set(
        cookies::SESSION,
        &token,
        &ctx.prefix,
        shared.secure_cookies,
        Some(login.ttl().as_secs()),
    ) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `POST <prefix>/logout`: ends the session and goes back to the login page.
pub(crate) async fn logout(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<RequestCtx>,
    parts: Parts,
) -> Response {
    if let (Some(login), Some(token)) = (
        shared.login.as_ref(),
        cookies::read(&parts.headers, cookies::SESSION),
    ) {
        login.end(token);
    }
    tracing::info!(target: "durable::admin", principal = %ctx.principal.name, "admin logout");
    let mut response = Redirect::to(&format!("{}/login", ctx.prefix)).into_response();
    if let Some(cookie) = cookies::set(
        cookies::SESSION,
        "",
        &ctx.prefix,
        shared.secure_cookies,
        Some(0),
    ) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}
