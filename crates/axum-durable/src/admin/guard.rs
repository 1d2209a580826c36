//! The middleware in front of every admin route: who the request comes from, whether a POST
//! is same-origin and carries the CSRF token, and whether its principal may act.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, OriginalUri, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use http::request::Parts;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use serde::Deserialize;

use super::access::{Principal, Refusal};
use super::cookies;
use super::problem;
use super::state::Shared;
use super::users::constant_time_eq;

/// Largest form body an action reads (its fields are a token, a state and a count).
const MAX_FORM: usize = 64 * 1024;

/// The header API clients send the CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// What the guard established about a request, for the handlers.
#[derive(Debug, Clone)]
pub(crate) struct RequestCtx {
    /// Who sent it (on the login page: nobody yet).
    pub(crate) principal: Principal,
    /// The CSRF token to put in forms.
    pub(crate) csrf: String,
    /// The path the admin router is nested under (`/admin`), for links and redirects.
    pub(crate) prefix: String,
    /// Whether a login form (and so a logout button) is in use.
    pub(crate) login: bool,
}

#[derive(Deserialize)]
struct CsrfField {
    csrf: String,
}

pub(crate) async fn guard(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let prefix = prefix(&parts);
    let api = path == "/api" || path.starts_with("/api/");
    let login_route = shared.login.is_some() && path == "/login";
    let (csrf, new_csrf) = match cookies::read(&parts.headers, cookies::CSRF) {
        Some(token) if token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()) => {
            (token.to_owned(), false)
        }
        _ => (cookies::random_token(), true),
    };

    let principal = if login_route {
        Principal::viewer("")
    } else {
        match shared.access.authorize(&parts).await {
            Ok(principal) => principal,
            Err(refusal) => return secured(refuse(&shared, &refusal, api, &prefix)),
        }
    };

    let mut body = body;
    if parts.method == Method::POST {
        let who = principal.name.as_str();
        if !same_origin(&parts) {
            tracing::warn!(target: "durable::admin", principal = %who, path = %path,
                origin = ?parts.headers.get(header::ORIGIN),
                sec_fetch_site = ?parts.headers.get("sec-fetch-site"),
                "admin request refused: cross-site");
            return secured(problem::forbidden(
                api,
                &prefix,
                "Cross-site request refused.",
            ));
        }
        let (given, rebuilt) = submitted_token(&parts, body).await;
        body = rebuilt;
        let valid = !new_csrf
            && given.is_some_and(|given| constant_time_eq(given.as_bytes(), csrf.as_bytes()));
        if !valid {
            tracing::warn!(target: "durable::admin", principal = %who, path = %path,
                "admin request refused: missing or wrong CSRF token");
            return secured(problem::forbidden(
                api,
                &prefix,
                "Missing or expired form token: reload the page and try again.",
            ));
        }
        if !login_route && path != "/logout" && !principal.can_act {
            tracing::warn!(target: "durable::admin", principal = %who, path = %path,
                "admin action refused: read-only user");
            return secured(problem::forbidden(
                api,
                &prefix,
                "Your account is read-only.",
            ));
        }
    }

    parts.extensions.insert(RequestCtx {
        principal,
        csrf: csrf.clone(),
        prefix: prefix.clone(),
        login: shared.login.is_some(),
    });
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if new_csrf {
        if let Some(cookie) =
            cookies::set(cookies::CSRF, &csrf, &prefix, shared.secure_cookies, None)
        {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    secured(response)
}

/// The answer to a refused request: a 401 (with the challenge) or a redirect to the login
/// page for a browser, a 401 for an API client, a 403 when forbidden.
fn refuse(shared: &Shared, refusal: &Refusal, api: bool, prefix: &str) -> Response {
    if refusal.forbidden {
        return problem::forbidden(api, prefix, "You may not use this page.");
    }
    if !api && shared.login.is_some() {
        return Redirect::to(&format!("{prefix}/login")).into_response();
    }
    let mut response = problem::unauthorized(api, prefix);
    if let Some(challenge) = &refusal.challenge {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge.clone());
    }
    response
}

/// The CSRF token a POST carries: its `X-CSRF-Token` header, or the `csrf` field of its
/// form (read here, then handed on to the handler).
async fn submitted_token(parts: &Parts, body: Body) -> (Option<String>, Body) {
    if let Some(token) = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        return (Some(token.to_owned()), body);
    }
    let form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return (None, body);
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
        return (None, Body::empty());
    };
    let probe = Request::builder()
        .method(Method::POST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(bytes.clone()));
    let token = match probe {
        Ok(probe) => Form::<CsrfField>::from_request(probe, &())
            .await
            .ok()
            .map(|Form(field)| field.csrf),
        Err(_) => None,
    };
    (token, Body::from(bytes))
}

/// Whether a POST comes from a page of this origin, as far as the browser says: a
/// `Sec-Fetch-Site` other than `same-origin` (or `none`: typed by the user), or an `Origin`
/// naming another host, is cross-site. Clients that send neither (scripts) pass; they still
/// need the CSRF token.
fn same_origin(parts: &Parts) -> bool {
    let headers = &parts.headers;
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return false;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(origin_host) = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"))
        .map(|(_, host)| host.trim_end_matches('/'))
    else {
        return false; // `null` (sandboxed, file://) or malformed
    };
    let host = |name: HeaderName| header_str(headers, name);
    [
        host(header::HOST),
        host(HeaderName::from_static("x-forwarded-host")),
        parts.uri.authority().map(http::uri::Authority::as_str),
    ]
    .into_iter()
    .flatten()
    .any(|host| host.eq_ignore_ascii_case(origin_host))
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The path the admin router is nested under: the original path minus the path the router
/// sees (`/admin/tasks/1` seen as `/tasks/1` gives `/admin`).
fn prefix(parts: &Parts) -> String {
    let inner = parts.uri.path();
    let original = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(inner, |uri| uri.0.path());
    let prefix = original.strip_suffix(inner).unwrap_or_else(|| {
        // `/admin` reaches the router as `/`.
        if inner == "/" {
            original
        } else {
            ""
        }
    });
    prefix.trim_end_matches('/').to_owned()
}

/// Headers every admin response carries: never cached (it shows live data and tokens),
/// never framed, no script or outside resource allowed (the pages need none).
fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let defaults = [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ];
    for (name, value) in defaults {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
}
