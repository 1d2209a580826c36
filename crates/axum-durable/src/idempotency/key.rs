//! The key of a request: checked, hashed with what scopes it, and the body's fingerprint;
//! and the problem answers of the idempotency layer.

use axum::body::Body;
use axum::response::Response;
use http::request::Parts;
use http::{header, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

/// Longest key accepted: the draft leaves the length to the server; 255 characters keeps
/// room for UUIDs and prefixed ids while bounding what is hashed.
pub(crate) const MAX_KEY_LEN: usize = 255;

/// The header's value as a key: 1 to [`MAX_KEY_LEN`] printable ASCII characters (the draft
/// makes it a structured-field string; its surrounding quotes are accepted and removed).
pub(crate) fn parse(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?.trim();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    let valid = !text.is_empty()
        && text.len() <= MAX_KEY_LEN
        && text.bytes().all(|b| (0x20..0x7f).contains(&b));
    valid.then_some(text)
}

/// Hex SHA-256 of the fields, each length-prefixed so that no two lists hash alike.
fn hash(fields: &[&[u8]]) -> String {
    let mut digest = Sha256::new();
    for field in fields {
        digest.update((field.len() as u64).to_be_bytes());
        digest.update(field);
    }
    hex(&digest.finalize())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// What identifies a key: method, path, the scope (if any) and the key itself.
pub(crate) fn key_hash(parts: &Parts, scope: Option<&str>, key: &str) -> String {
    let scoped: &[u8] = if scope.is_some() { b"1" } else { b"0" };
    hash(&[
        parts.method.as_str().as_bytes(),
        parts.uri.path().as_bytes(),
        scoped,
        scope.map_or(&b""[..], str::as_bytes),
        key.as_bytes(),
    ])
}

/// The request's fingerprint: its body's hash.
pub(crate) fn fingerprint(body: &[u8]) -> String {
    hash(&[body])
}

/// An `application/problem+json` answer (RFC 9457) with a fixed title and detail: no
/// internals, no echo of the client's input.
pub(crate) fn problem(status: StatusCode, detail: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        r#"{{"type":"about:blank","title":"{title}","status":{},"detail":"{detail}"}}"#,
        status.as_u16()
    );
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii_up_to_the_limit() {
        let ok = HeaderValue::from_static("\"8e03978e-40d5-43e8-bc93-6894a57f9324\"");
        assert_eq!(parse(&ok), Some("8e03978e-40d5-43e8-bc93-6894a57f9324"));
        assert_eq!(parse(&HeaderValue::from_static("abc")), Some("abc"));
        assert_eq!(parse(&HeaderValue::from_static("")), None);
        assert_eq!(parse(&HeaderValue::from_static("\"\"")), None);
        let long = HeaderValue::from_str(&"k".repeat(MAX_KEY_LEN + 1)).expect("header");
        assert_eq!(parse(&long), None);
        let max = HeaderValue::from_str(&"k".repeat(MAX_KEY_LEN)).expect("header");
        assert!(parse(&max).is_some());
        let binary = HeaderValue::from_bytes(b"k\xffk").expect("header");
        assert_eq!(parse(&binary), None);
    }

    #[test]
    fn the_hash_tells_method_path_scope_and_key_apart() {
        let parts = |method: &str, path: &str| {
            let (parts, ()) = http::Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .expect("request")
                .into_parts();
            parts
        };
        let base = key_hash(&parts("POST", "/signup"), None, "k");
        assert_eq!(base, key_hash(&parts("POST", "/signup?x=1"), None, "k"));
        assert_ne!(base, key_hash(&parts("PUT", "/signup"), None, "k"));
        assert_ne!(base, key_hash(&parts("POST", "/invite"), None, "k"));
        assert_ne!(base, key_hash(&parts("POST", "/signup"), Some("ada"), "k"));
        assert_ne!(base, key_hash(&parts("POST", "/signup"), Some(""), "k"));
        assert_ne!(base, key_hash(&parts("POST", "/signup"), None, "k2"));
        assert_eq!(base.len(), 64);
        assert_ne!(fingerprint(b"a"), fingerprint(b"b"));
    }
}
