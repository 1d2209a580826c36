//! `DurableLayer`: persists what a request spawned before its response leaves.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use durable_core::Client;
use http::{header, HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::backlog::Backlog;
use crate::error::{failure, is_transient, plain};
use crate::extract::Durable;
use crate::idempotency;
use crate::scope::Scope;

/// The W3C Trace Context request header.
const TRACEPARENT: &str = "traceparent";

type Predicate = Arc<dyn Fn(StatusCode) -> bool + Send + Sync>;

/// Layer that gives handlers a [`Durable`] handle and stores every task they
/// [`spawn`](Durable::spawn) — in one transaction, after the handler returns, **before the
/// response is sent**.
///
/// - Tasks are stored when the response status passes the predicate (default: 2xx, 3xx and
///   `101 Switching Protocols`, like a request transaction); otherwise they are discarded
///   with a debug log.
/// - If storing fails, the client gets `503 Service Unavailable` with `Retry-After` when the
///   failure is transient (database unreachable or busy) and `500` otherwise, instead of the
///   handler's response; the error is logged with an id the body shows, never in the body.
///   Nothing is acknowledged that is not stored.
/// - A streaming response body starts only after the write.
/// - A [`Durable`] handle that outlives its handler (cloned into `tokio::spawn`, an
///   `on_upgrade` callback, a streaming body) still stores what it spawns: after the
///   request's write, each spawn is enqueued on its own, with a warning, durable but no
///   longer tied to the response. If the response future is dropped before the handler
///   returns (the client hung up), what the handler had spawned is discarded with an error
///   log: nothing was acknowledged.
/// - The write is not cancellable by a client disconnect: it runs in the client's
///   group-commit writer task, so a request whose own rows committed never loses its tasks.
/// - When the [`Client`] belongs to a local [`Runtime`](durable_core::Runtime), tasks that
///   fit its free capacity are inserted already claimed and start at once.
/// - The request's W3C `traceparent` header, when valid, is stored with the tasks the
///   handler spawns or enqueues (while its future is polled), and each of their attempts
///   records it on its `durable.attempt` span (field `trace_parent`), on whatever instance
///   runs it.
///
/// # Examples
///
/// ```no_run
/// use axum::{routing::post, Router};
/// use axum_durable::core::store::Store;
/// use axum_durable::{sqlite::SqliteStore, DurableLayer, Registry, Runtime};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let store = SqliteStore::connect("sqlite://app.db").await?;
/// store.migrate().await?;
/// let runtime = Runtime::builder(store, Registry::new()).start();
/// let app: Router = Router::new()
///     .route("/signup", post(|| async { "ok" }))
///     .layer(DurableLayer::new(runtime.client()));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DurableLayer {
    client: Client,
    persist_when: Predicate,
    backlog: Option<Arc<Backlog>>,
}

impl fmt::Debug for DurableLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableLayer")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl DurableLayer {
    /// A layer storing through `client` (take it from [`Runtime::client`](durable_core::Runtime::client)
    /// to get local dispatch).
    pub fn new(client: Client) -> Self {
        Self {
            client,
            persist_when: Arc::new(|status: StatusCode| {
                status.is_success()
                    || status.is_redirection()
                    || status == StatusCode::SWITCHING_PROTOCOLS
            }),
            backlog: None,
        }
    }

    /// Sheds load: while more than `limit` tasks are due and `pending` (waiting for a worker),
    /// requests are answered `503 Service Unavailable` with `Retry-After` *before* the
    /// handler runs, so an overloaded service stops accepting work it cannot finish soon.
    /// Tasks scheduled for later and retries waiting out their backoff do not count. The
    /// count is refreshed in the background about once a second (or twenty times as long
    /// as the last count took, if longer: a count slowed down by a held vacuum horizon then
    /// takes at most a twentieth of the database's time, and is staler); the request path
    /// never waits for it.
    ///
    /// `Retry-After` is the time the backlog needs to drain back under the limit:
    /// `ceil((backlog - limit) / rate)` seconds, clamped to 1..=60, where `rate` is the
    /// backlog's decrease per second between refreshes (averaged, the newest weighing half).
    /// A backlog that is not shrinking gets 60; the first count, before any rate is known, 1.
    #[must_use]
    pub fn max_backlog(mut self, limit: u64) -> Self {
        self.backlog = Some(Backlog::new(limit, std::time::Duration::from_secs(1)));
        self
    }

    /// Decides from the response status whether the request's buffered tasks are stored.
    #[must_use]
    pub fn persist_when<F>(mut self, predicate: F) -> Self
    where
        F: Fn(StatusCode) -> bool + Send + Sync + 'static,
    {
        self.persist_when = Arc::new(predicate);
        self
    }
}

impl<S> Layer<S> for DurableLayer {
    type Service = DurableService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DurableService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service built by [`DurableLayer`].
#[derive(Clone)]
pub struct DurableService<S> {
    inner: S,
    layer: DurableLayer,
}

impl<S: fmt::Debug> fmt::Debug for DurableService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableService")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for DurableService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        if let Some(backlog) = &self.layer.backlog {
            if backlog.over_limit(&self.layer.client) {
                let mut busy = plain::<ResBody>(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Too many background tasks are waiting; try again later".to_owned(),
                );
                busy.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(backlog.retry_after_secs()),
                );
                return ResponseFuture {
                    inner: None,
                    scope: None,
                    trace_parent: None,
                    persist_when: Arc::clone(&self.layer.persist_when),
                    flush: Some(Box::pin(std::future::ready(busy))),
                };
            }
        }
        let scope = Arc::new(Scope::new(self.layer.client.clone()));
        // The request's W3C trace context: tasks the handler spawns carry it, and their
        // attempts record it, so they can be joined to this request's trace.
        let trace_parent = request
            .headers()
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .filter(|v| durable_core::trace::is_valid_trace_parent(v))
            .map(str::to_owned);
        request
            .extensions_mut()
            .insert(Durable::new(Arc::clone(&scope)));
        ResponseFuture {
            inner: Some(self.inner.call(request)),
            scope: Some(scope),
            trace_parent,
            persist_when: Arc::clone(&self.layer.persist_when),
            flush: None,
        }
    }
}

type Flush<B> = Pin<Box<dyn Future<Output = Response<B>> + Send>>;

pin_project! {
    /// Response future of [`DurableService`]: the handler's future, then the write.
    pub struct ResponseFuture<F, B> {
        #[pin]
        inner: Option<F>,
        scope: Option<Arc<Scope>>,
        trace_parent: Option<String>,
        persist_when: Predicate,
        flush: Option<Flush<B>>,
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("flushing", &self.flush.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: From<String> + Send + 'static,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Some(flush) = this.flush.as_mut() {
                return flush.as_mut().poll(cx).map(Ok);
            }
            let Some(inner) = this.inner.as_mut().as_pin_mut() else {
                unreachable!("a ResponseFuture without an inner future always has its answer")
            };
            let response = ready!(durable_core::trace::with_trace_parent(
                this.trace_parent.as_deref(),
                || inner.poll(cx)
            ))?;
            let Some(scope) = this.scope.take() else {
                return Poll::Ready(Ok(response));
            };
            *this.flush = Some(Box::pin(flush(
                scope,
                response,
                Arc::clone(this.persist_when),
            )));
        }
    }
}

/// Stores what the request buffered (with its idempotency record, if it holds a key), then
/// releases the response (or a 5xx instead).
async fn flush<B: From<String>>(
    scope: Arc<Scope>,
    response: Response<B>,
    persist_when: Predicate,
) -> Response<B> {
    let mut buffer = scope.take();
    let status = response.status();
    let persist = buffer.invalid.is_none() && persist_when(status);
    // The key's record rides with the tasks; a response that is not persisted releases the
    // key so a retry runs again (a record the handler committed itself is left: the
    // release only removes a key still running).
    let (key, record) = match buffer.key.take() {
        Some(key) if !persist || key.recorded_in_tx => {
            if !persist {
                idempotency::release(&scope.client, &key).await;
            }
            (None, None)
        }
        Some(mut key) => {
            let record = key.record.take();
            (Some(key), record)
        }
        None => (None, None),
    };
    if let Some(problem) = buffer.invalid {
        return failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "A background task could not be prepared, so the request was not accepted",
            &format_args!(
                "{problem}; discarded {} task(s) of the request",
                buffer.batch.len()
            ),
        );
    }
    if buffer.batch.is_empty() && record.is_none() {
        if let Some(key) = &key {
            idempotency::release(&scope.client, key).await;
        }
        if buffer.wrote_in_tx {
            scope.client.notify_committed();
        }
        return response;
    }
    if !persist {
        tracing::debug!(
            status = status.as_u16(),
            discarded = buffer.batch.len(),
            "response not persisted by the predicate; discarding the tasks this request spawned"
        );
        return response;
    }
    let n = buffer.batch.len();
    let written = match record {
        Some(record) => buffer.batch.commit_with_response(record).await,
        None => buffer.batch.commit().await,
    };
    match written {
        Ok(_) => {
            if buffer.wrote_in_tx {
                scope.client.notify_committed();
            }
            response
        }
        Err(error) => {
            if let Some(key) = &key {
                idempotency::release(&scope.client, key).await;
            }
            let status = if is_transient(&error) {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            failure(
                status,
                "Background tasks could not be stored, so the request was not accepted",
                &format_args!(
                    "{error}; {n} task(s), handler answered {}",
                    response.status()
                ),
            )
        }
    }
}
