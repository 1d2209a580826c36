//! The service of the [`Idempotency`](super::Idempotency) layer.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use durable_core::store::{KeyClaim, KeyTake};
use futures_util::future::Either;
use http::{Request, StatusCode};
use tower::Service;

use super::capture::{capture, replay, Held};
use super::key::{fingerprint, key_hash, parse, problem};
use super::{Settings, PURGE_BATCH, PURGE_EVERY};
use crate::extract::Durable;

/// The service built by [`Idempotency`](super::Idempotency).
#[derive(Clone)]
pub struct IdempotentService<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for IdempotentService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotentService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> IdempotentService<S> {
    pub(super) fn new(inner: S, settings: Arc<Settings>) -> Self {
        Self { inner, settings }
    }
}

/// The future of a request with a key.
type Keyed = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> Service<Request<Body>> for IdempotentService<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, Keyed>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if !request.headers().contains_key(&self.settings.header) {
            // No key: untouched, no allocation, no database round trip.
            return Either::Left(self.inner.call(request));
        }
        // The ready service answers this request; a fresh clone waits for the next one.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Either::Right(Box::pin(keyed(inner, Arc::clone(&self.settings), request)))
    }
}

/// A request carrying a key: take the key, then run the handler, replay, or refuse.
async fn keyed<S>(
    mut inner: S,
    settings: Arc<Settings>,
    request: Request<Body>,
) -> Result<Response, Infallible>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    let (parts, body) = request.into_parts();
    let Some(key) = parts.headers.get(&settings.header).and_then(parse) else {
        return Ok(problem(
            StatusCode::BAD_REQUEST,
            "The idempotency key must be 1 to 255 printable ASCII characters",
        ));
    };
    let Some(durable) = parts.extensions.get::<Durable>().cloned() else {
        tracing::error!(
            "the Idempotency layer needs a DurableLayer around it: add `.layer(DurableLayer::new(client))` after `.layer(Idempotency::new())`"
        );
        return Ok(problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server is misconfigured",
        ));
    };
    let scope = settings.scope.as_ref().and_then(|scope| scope(&parts));
    let key_hash = key_hash(&parts, scope.as_deref(), key);
    let Ok(body) = axum::body::to_bytes(body, settings.max_request_body).await else {
        // Over the limit, or the body failed while read: no fingerprint, no run.
        return Ok(problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is too large to be made idempotent",
        ));
    };
    let token = uuid::Uuid::new_v4().simple().to_string();
    let take = KeyTake::new(&key_hash, fingerprint(&body), &token)
        .lock_for(settings.lock_for)
        .keep_for(settings.keep_for);
    let client = durable.client().clone();
    match client.take_key(&take).await {
        Ok(KeyClaim::Taken) => {}
        Ok(KeyClaim::Running) => {
            return Ok(problem(
                StatusCode::CONFLICT,
                "A request with this idempotency key is still being processed; retry later",
            ))
        }
        Ok(KeyClaim::Mismatch) => {
            return Ok(problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "This idempotency key was used with a different request body",
            ))
        }
        Ok(KeyClaim::Completed(stored)) => return Ok(replay(stored)),
        Err(error) => return Ok(crate::Error::from(error).into_response()),
        Ok(_) => {
            return Ok(problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The idempotency key could not be taken",
            ))
        }
    }
    purge_now_and_then(&settings, &client);
    durable.hold_key(Held {
        key_hash,
        token,
        settings: Arc::clone(&settings),
        record: None,
        recorded_in_tx: false,
    });
    let response = inner
        .call(Request::from_parts(parts, Body::from(body)))
        .await?;
    if durable.key_recorded_in_tx() {
        return Ok(response);
    }
    let (response, stored) = capture(&settings, response).await;
    durable.set_key_record(stored);
    Ok(response)
}

/// Removes expired keys in the background, at most once per [`PURGE_EVERY`] per layer: the
/// requests that take keys are what keeps the table bounded.
fn purge_now_and_then(settings: &Settings, client: &durable_core::Client) {
    {
        let mut last = settings
            .last_purge
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < PURGE_EVERY) {
            return;
        }
        *last = Some(Instant::now());
    }
    let client = client.clone();
    tokio::spawn(async move {
        match client.purge_keys(PURGE_BATCH).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "expired idempotency keys removed"),
            Err(error) => tracing::warn!(%error, "could not remove expired idempotency keys"),
        }
    });
}
