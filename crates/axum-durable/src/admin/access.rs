//! Who may see the admin pages and who may act: [`Authorize`], [`Principal`], [`Refusal`].

use std::future::Future;

use futures_util::future::BoxFuture;
use http::request::Parts;
use http::HeaderValue;

/// Decides who a request comes from: the one access decision the admin router needs before
/// it can be built.
///
/// Called for every admin request, before any handler, with the request's head (headers,
/// URI, extensions). Answer a [`Principal`] to let the request in, or a [`Refusal`]: an
/// unauthenticated browser is sent to the login page (with [`LoginForm`](super::LoginForm))
/// or shown a 401, an API client gets a 401 (with the refusal's challenge header, if any),
/// and a forbidden request a 403. Whatever the principal, actions (POST) also need a
/// principal that [`can_act`](Principal::can_act) and pass the CSRF checks.
///
/// # Examples
///
/// Trusting an authenticating proxy in front of the service, which sets `X-Forwarded-User`
/// (only safe when nothing else can reach the service):
///
/// ```
/// use axum_durable::admin::{Authorize, Principal, Refusal};
/// use http::request::Parts;
///
/// #[derive(Debug)]
/// struct ProxyUser;
///
/// impl Authorize for ProxyUser {
///     async fn authorize(&self, parts: &Parts) -> Result<Principal, Refusal> {
///         let user = parts
///             .headers
///             .get("x-forwarded-user")
///             .and_then(|value| value.to_str().ok())
///             .ok_or_else(Refusal::unauthenticated)?;
///         Ok(if user == "oncall" {
///             Principal::operator(user)
///         } else {
///             Principal::viewer(user)
///         })
///     }
/// }
/// ```
pub trait Authorize: Send + Sync + 'static {
    /// The principal the request comes from, or why it is refused.
    fn authorize(&self, parts: &Parts) -> impl Future<Output = Result<Principal, Refusal>> + Send;
}

/// Who a request comes from, as an [`Authorize`] decided: a name for the logs and whether
/// they may act (retry, cancel, delete, requeue) or only look.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Principal {
    /// The name written in the log of each action.
    pub name: String,
    /// Whether actions are allowed; read-only otherwise.
    pub can_act: bool,
}

impl Principal {
    /// A principal that may look but not act.
    pub fn viewer(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            can_act: false,
        }
    }

    /// A principal that may look and act.
    pub fn operator(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            can_act: true,
        }
    }
}

/// Why [`Authorize`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub(crate) forbidden: bool,
    pub(crate) challenge: Option<HeaderValue>,
}

impl Refusal {
    /// No (valid) credentials: answered 401, or a redirect to the login page.
    pub fn unauthenticated() -> Self {
        Self {
            forbidden: false,
            challenge: None,
        }
    }

    /// Known, but not allowed in: answered 403.
    pub fn forbidden() -> Self {
        Self {
            forbidden: true,
            challenge: None,
        }
    }

    /// The `WWW-Authenticate` header sent with a 401 (`Basic realm="admin"` makes browsers
    /// ask for a password).
    #[must_use]
    pub fn challenge(mut self, value: HeaderValue) -> Self {
        self.challenge = Some(value);
        self
    }
}

/// [`Authorize`] as a trait object: its future boxed.
pub(crate) trait DynAuthorize: Send + Sync + 'static {
    fn authorize_dyn<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a, Result<Principal, Refusal>>;
}

impl<A: Authorize> DynAuthorize for A {
    fn authorize_dyn<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a, Result<Principal, Refusal>> {
        Box::pin(self.authorize(parts))
    }
}
