//! The state every admin route shares: the store, who gets in, and the display settings.

use std::fmt;
use std::sync::Arc;

use durable_core::store::{AdminStore, StepStore};
use http::request::Parts;

use super::access::{DynAuthorize, Principal, Refusal};
use super::login::LoginForm;
use super::redact::Redactor;

/// What the admin router reads and acts on: rows, counts and steps.
pub(crate) trait Backend: AdminStore + StepStore {}

impl<T: AdminStore + StepStore> Backend for T {}

/// Who gets in.
pub(crate) enum AccessRule {
    /// An [`Authorize`](super::Authorize) decides.
    Authorizer(Arc<dyn DynAuthorize>),
    /// Everyone, as an operator (`allow_everyone_insecure_local_only`).
    Everyone,
}

impl AccessRule {
    pub(crate) async fn authorize(&self, parts: &Parts) -> Result<Principal, Refusal> {
        match self {
            AccessRule::Authorizer(authorizer) => authorizer.authorize_dyn(parts).await,
            AccessRule::Everyone if loopback_host(parts) => {
                Ok(Principal::operator("anyone (insecure, local only)"))
            }
            AccessRule::Everyone => {
                tracing::warn!(target: "durable::admin",
                    host = ?parts.headers.get(http::header::HOST),
                    "admin request refused: the open router answers requests for localhost only");
                Err(Refusal::forbidden())
            }
        }
    }
}

/// Whether the request names a loopback host (`localhost`, `127.0.0.1`, `[::1]`, any port),
/// or none (a request made in-process). The open router answers only these: a site whose
/// name resolves to 127.0.0.1 (DNS rebinding) is same-origin to the browser, so without this
/// its pages could read every task, and act with a CSRF token they set themselves.
fn loopback_host(parts: &Parts) -> bool {
    let host = match parts.headers.get(http::header::HOST) {
        Some(value) => value.to_str().ok(),
        None => match parts.uri.authority() {
            Some(authority) => Some(authority.as_str()),
            None => return true,
        },
    };
    let Some(host) = host.and_then(|h| h.parse::<http::uri::Authority>().ok()) else {
        return false;
    };
    let name = host.host();
    name.eq_ignore_ascii_case("localhost")
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl fmt::Debug for AccessRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccessRule::Authorizer(_) => "Authorizer",
            AccessRule::Everyone => "Everyone",
        })
    }
}

/// The state of every admin route.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Backend>,
    pub(crate) access: AccessRule,
    pub(crate) login: Option<LoginForm>,
    pub(crate) redact: Option<Redactor>,
    pub(crate) page_size: u32,
    pub(crate) secure_cookies: bool,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("store", &self.store)
            .field("access", &self.access)
            .field("login", &self.login)
            .field("redact", &self.redact.is_some())
            .field("page_size", &self.page_size)
            .field("secure_cookies", &self.secure_cookies)
            .finish()
    }
}
