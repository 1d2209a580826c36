//! The admin router's two cookies: the session (with [`LoginForm`](super::LoginForm)) and
//! the CSRF token (double-submit: the cookie and a form field or header must match).

use std::fmt::Write as _;

use http::{header, HeaderMap, HeaderValue};

/// The session cookie's name.
pub(crate) const SESSION: &str = "durable_admin_session";
/// The CSRF cookie's name.
pub(crate) const CSRF: &str = "durable_admin_csrf";

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn read<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// A random token of 244 bits, in hex (two v4 UUIDs: the OS random generator).
pub(crate) fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Strict always (no script reads them and no
/// other site sends them), `Secure` when configured, scoped to the admin router's path.
/// `max_age` zero deletes the cookie.
pub(crate) fn set(
    name: &str,
    value: &str,
    path: &str,
    secure: bool,
    max_age: Option<u64>,
) -> Option<HeaderValue> {
    let path = if path.is_empty() { "/" } else { path };
    let mut cookie = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict");
    if secure {
        cookie.push_str("; Secure");
    }
    if let Some(age) = max_age {
        let _ = write!(cookie, "; Max-Age={age}");
    }
    HeaderValue::from_str(&cookie).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_cookie_among_several_headers() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; durable_admin_csrf=xyz"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(read(&headers, CSRF), Some("xyz"));
        assert_eq!(read(&headers, "b"), Some("2"));
        assert_eq!(read(&headers, SESSION), None);
    }
}
