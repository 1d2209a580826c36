//! Idempotent HTTP requests: a retried `POST` gets the first answer instead of running twice.
//!
//! [`Idempotency`] is a tower layer that reads the `Idempotency-Key` request header (IETF
//! httpapi draft "The Idempotency-Key HTTP Header Field"). Placed inside a
//! [`DurableLayer`](crate::DurableLayer), per router or per route:
//!
//! - the first request with a key takes it (committed before the handler runs) and runs;
//! - its response is recorded **in the same transaction as the tasks it spawned** (or, with
//!   [`Durable::respond_in`](crate::Durable::respond_in), in the handler's own transaction);
//! - a retry with the same key gets the recorded response without running the handler, marked
//!   by an `Idempotent-Replayed: true` header;
//! - a retry while the first is still running gets `409 Conflict`; the same key with a
//!   different body `422 Unprocessable Content`; a malformed key `400`; a body over the
//!   limit `413`.
//!
//! Requests without the header pass through untouched.

mod capture;
mod key;
mod respond;
mod service;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::request::Parts;
use http::HeaderName;

pub use service::IdempotentService;

pub(crate) use capture::{release, release_detached, Held};

/// Derives a key's scope from the request (for instance the authenticated user), so two
/// users' equal keys never meet.
type ScopeFn = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// Layer making requests with an `Idempotency-Key` header idempotent. Needs a
/// [`DurableLayer`](crate::DurableLayer) around it (added after it, so outside).
///
/// Which responses are recorded, and so replayed: those for which the `DurableLayer` stores
/// the request's tasks (its [`persist_when`](crate::DurableLayer::persist_when) predicate,
/// by default `2xx`, `3xx` and `101`), once the record committed with those tasks. Any other
/// answer — a `4xx` or `5xx` from the handler, a failed task write — releases the key, so a
/// retry runs the handler again.
///
/// A response body is recorded when its size is known and at most
/// [`max_response_body`](Self::max_response_body) (JSON and other buffered bodies); a
/// streaming or larger body is not: its replay has the status and headers, an empty body
/// and `Idempotent-Body-Omitted: true`.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
///
/// use axum::{routing::post, Router};
/// use axum_durable::{Client, DurableLayer, Idempotency};
///
/// # fn app(client: Client) -> Router {
/// Router::new()
///     .route("/signup", post(|| async { "created" }))
///     .layer(Idempotency::new().keep_for(Duration::from_secs(24 * 3600)))
///     .layer(DurableLayer::new(client)) // outside the idempotency layer
/// # }
/// ```
#[derive(Clone)]
pub struct Idempotency {
    settings: Settings,
}

/// The layer's settings, shared by its services.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) header: HeaderName,
    pub(crate) keep_for: Duration,
    pub(crate) lock_for: Duration,
    pub(crate) stored_headers: Vec<HeaderName>,
    pub(crate) max_request_body: usize,
    pub(crate) max_response_body: usize,
    pub(crate) scope: Option<ScopeFn>,
    /// When expired keys were last purged (a purge runs at most once per [`PURGE_EVERY`]).
    pub(crate) last_purge: Arc<Mutex<Option<Instant>>>,
}

/// How often a layer removes expired keys, in the background of a request that took one.
pub(crate) const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Most expired keys one purge removes.
pub(crate) const PURGE_BATCH: u32 = 500;

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.settings;
        f.debug_struct("Idempotency")
            .field("header", &s.header)
            .field("keep_for", &s.keep_for)
            .field("lock_for", &s.lock_for)
            .field("stored_headers", &s.stored_headers)
            .field("max_request_body", &s.max_request_body)
            .field("max_response_body", &s.max_response_body)
            .field("scoped", &s.scope.is_some())
            .finish()
    }
}

impl Default for Idempotency {
    fn default() -> Self {
        Self::new()
    }
}

impl Idempotency {
    /// The defaults: header `Idempotency-Key`, keys kept 24 hours, a lock of 60 seconds,
    /// `content-type` and `location` recorded, request bodies up to 1 MiB, response bodies up
    /// to 64 KiB, no scope.
    pub fn new() -> Self {
        Self {
            settings: Settings {
                header: HeaderName::from_static("idempotency-key"),
                keep_for: Duration::from_secs(24 * 3600),
                lock_for: Duration::from_secs(60),
                stored_headers: vec![http::header::CONTENT_TYPE, http::header::LOCATION],
                max_request_body: 1024 * 1024,
                max_response_body: 64 * 1024,
                scope: None,
                last_purge: Arc::new(Mutex::new(None)),
            },
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(&mut self.settings);
        self
    }

    /// The request header carrying the key.
    #[must_use]
    pub fn header(self, name: HeaderName) -> Self {
        self.with(|s| s.header = name)
    }

    /// How long a key and its recorded response are kept (from the record's commit); a
    /// request with an expired key runs as new.
    #[must_use]
    pub fn keep_for(self, keep_for: Duration) -> Self {
        self.with(|s| s.keep_for = keep_for)
    }

    /// How long a key stays locked by a request that has not recorded its response: a
    /// retry meanwhile gets `409`; after it, a retry (with the same body) takes the key over
    /// and runs — the first request is presumed dead (its process crashed before the
    /// record committed). Keep it above your slowest handler: a first request still running
    /// past it could run beside its retry.
    #[must_use]
    pub fn lock_for(self, lock_for: Duration) -> Self {
        self.with(|s| s.lock_for = lock_for)
    }

    /// The response headers recorded and replayed (default `content-type`, `location`).
    #[must_use]
    pub fn stored_headers(self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        let names = names.into_iter().collect();
        self.with(|s| s.stored_headers = names)
    }

    /// Largest request body buffered to fingerprint the request; a larger one is answered
    /// `413 Content Too Large` (only requests that carry a key are buffered).
    #[must_use]
    pub fn max_request_body(self, bytes: usize) -> Self {
        self.with(|s| s.max_request_body = bytes)
    }

    /// Largest response body recorded for replay; see the type's docs for larger ones.
    #[must_use]
    pub fn max_response_body(self, bytes: usize) -> Self {
        self.with(|s| s.max_response_body = bytes)
    }

    /// Scopes keys by what `scope` derives from the request (say the authenticated user
    /// from a header or an extension), on top of the method and path.
    #[must_use]
    pub fn scope<F>(self, scope: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        let scope: ScopeFn = Arc::new(scope);
        self.with(|s| s.scope = Some(scope))
    }
}

impl<S> tower::Layer<S> for Idempotency {
    type Service = IdempotentService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IdempotentService::new(inner, Arc::new(self.settings.clone()))
    }
}
