//! Users with passwords and roles ([`Users`]), and HTTP Basic authentication over them
//! ([`BasicAuth`]).

use std::fmt;

use http::request::Parts;
use http::{header, HeaderValue};
use sha2::{Digest, Sha256};

use super::access::{Authorize, Principal, Refusal};

/// What a user may do in the admin router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Look only: counts, lists, task details.
    ReadOnly,
    /// Look and act: retry, cancel, delete, requeue.
    Actions,
}

/// Users with passwords and roles, checked by [`BasicAuth`] and [`LoginForm`](super::LoginForm).
///
/// Passwords are kept only as salted SHA-256 digests (the salt is random per process) and
/// compared in constant time, so a wrong password takes as long to refuse as an almost
/// right one; an unknown user is compared against a dummy digest for the same reason.
///
/// # Examples
///
/// ```
/// use axum_durable::admin::{Role, Users};
///
/// let users = Users::new()
///     .user("oncall", "correct horse battery staple", Role::Actions)
///     .user("support", "another long passphrase", Role::ReadOnly);
/// assert!(users.check("oncall", "correct horse battery staple").is_some_and(|p| p.can_act));
/// assert!(users.check("support", "another long passphrase").is_some_and(|p| !p.can_act));
/// assert!(users.check("oncall", "wrong").is_none());
/// ```
#[derive(Clone)]
pub struct Users {
    salt: [u8; 16],
    users: Vec<User>,
}

#[derive(Clone)]
struct User {
    name: String,
    digest: [u8; 32],
    role: Role,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: digests stay out of logs.
        let names: Vec<(&str, Role)> = self
            .users
            .iter()
            .map(|u| (u.name.as_str(), u.role))
            .collect();
        f.debug_struct("Users")
            .field("users", &names)
            .finish_non_exhaustive()
    }
}

impl Default for Users {
    fn default() -> Self {
        Self::new()
    }
}

impl Users {
    /// No users yet.
    pub fn new() -> Self {
        Self {
            salt: *uuid::Uuid::new_v4().as_bytes(),
            users: Vec::new(),
        }
    }

    /// Adds (or replaces) user `name` with `password` and `role`.
    #[must_use]
    pub fn user(mut self, name: impl Into<String>, password: &str, role: Role) -> Self {
        let name = name.into();
        let digest = self.digest(password);
        self.users.retain(|u| u.name != name);
        self.users.push(User { name, digest, role });
        self
    }

    /// Whether no user was added.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The principal for `name` if `password` is theirs.
    pub fn check(&self, name: &str, password: &str) -> Option<Principal> {
        let given = self.digest(password);
        let user = self.users.iter().find(|u| u.name == name);
        // Compare even for an unknown name, so timing does not tell which names exist.
        let expected = user.map_or([0xa5; 32], |u| u.digest);
        let matches = constant_time_eq(&given, &expected);
        match user {
            Some(user) if matches => Some(Principal {
                name: user.name.clone(),
                can_act: user.role == Role::Actions,
            }),
            _ => None,
        }
    }

    fn digest(&self, password: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.salt);
        hasher.update(password.as_bytes());
        hasher.finalize().into()
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HTTP Basic authentication against [`Users`]: browsers ask for the password themselves,
/// and scripts send `Authorization: Basic ...`. Use it over HTTPS only (the password travels
/// with every request).
///
/// # Examples
///
/// ```no_run
/// use axum_durable::admin::{Admin, BasicAuth, Role, Users};
/// # fn app(store: axum_durable::sqlite::SqliteStore) -> axum::Router {
/// let users = Users::new().user("oncall", "a long passphrase", Role::Actions);
/// let admin = Admin::new(store).authorize(BasicAuth::new(users)).into_router();
/// axum::Router::new().nest_service("/admin", admin)
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BasicAuth {
    users: Users,
}

impl BasicAuth {
    /// Basic authentication of `users`.
    pub fn new(users: Users) -> Self {
        Self { users }
    }
}

impl Authorize for BasicAuth {
    async fn authorize(&self, parts: &Parts) -> Result<Principal, Refusal> {
        basic_credentials(parts)
            .and_then(|(name, password)| self.users.check(&name, &password))
            .ok_or_else(|| {
                Refusal::unauthenticated().challenge(HeaderValue::from_static(
                    "Basic realm=\"admin\", charset=\"UTF-8\"",
                ))
            })
    }
}

/// The user name and password of an `Authorization: Basic` header.
pub(crate) fn basic_credentials(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (name, password) = decoded.split_once(':')?;
    Some((name.to_owned(), password.to_owned()))
}

/// Standard base64 (with or without padding); `None` on any other character.
fn base64_decode(input: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    let input = input.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    for chunk in input.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(
            base64_decode("b25jYWxsOnB3").as_deref(),
            Some(&b"oncall:pw"[..])
        );
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(base64_decode("YWJj").as_deref(), Some(&b"abc"[..]));
        assert_eq!(base64_decode("Y"), None);
        assert_eq!(base64_decode("Y!=="), None);
    }

    #[test]
    fn roles_and_wrong_passwords() {
        let users = Users::new()
            .user("a", "pw-a", Role::Actions)
            .user("r", "pw-r", Role::ReadOnly);
        assert_eq!(users.check("a", "pw-a"), Some(Principal::operator("a")));
        assert_eq!(users.check("r", "pw-r"), Some(Principal::viewer("r")));
        assert_eq!(users.check("a", "pw-r"), None);
        assert_eq!(users.check("nobody", "pw-a"), None);
        assert!(!format!("{users:?}").contains("digest"));
    }
}
