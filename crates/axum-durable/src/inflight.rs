//! Counting open requests (a streaming response counts until its body ends), so a drain cut
//! short by its deadline can say what it cut — and cutting them: at the deadline, a request
//! still in its handler is answered `503` and a response body still streaming ends with an
//! error, which closes its connection.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tower::Service;

/// The requests whose response has not been fully sent, and the signal that cuts them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Open {
    count: Arc<AtomicUsize>,
    cut: CancellationToken,
}

impl Open {
    pub(crate) fn get(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Ends every open request now, and any opened later: the HTTP drain's deadline.
    /// `axum::serve` runs each connection on a task of its own, which would otherwise go on
    /// serving (a stream that ignores shutdown) until the process exits.
    pub(crate) fn cut(&self) {
        self.cut.cancel();
    }

    fn enter(&self) -> Guard {
        self.count.fetch_add(1, Ordering::SeqCst);
        Guard(self.clone())
    }
}

/// One open request; dropped with its response body (or its future, if never answered).
#[derive(Debug)]
struct Guard(Open);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The answer to a request whose handler was still running at the drain deadline: its work
/// may or may not be stored, like a connection cut, and the client may retry elsewhere.
fn cut_response() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONNECTION, "close")],
        "shutting down",
    )
        .into_response()
}

/// Wraps a make-service so that every service it makes counts its open requests. The
/// connection stream is handed through untouched, so `ConnectInfo` keeps working.
#[derive(Debug, Clone)]
pub(crate) struct MakeCounted<M> {
    pub(crate) inner: M,
    pub(crate) open: Open,
}

impl<M, T, S> Service<T> for MakeCounted<M>
where
    M: Service<T, Response = S, Error = Infallible>,
{
    type Response = Counted<S>;
    type Error = Infallible;
    type Future = Making<M::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, target: T) -> Self::Future {
        Making {
            inner: self.inner.call(target),
            open: Some(self.open.clone()),
        }
    }
}

pin_project! {
    /// The make-service's future, wrapping the service it makes.
    pub(crate) struct Making<F> {
        #[pin]
        inner: F,
        open: Option<Open>,
    }
}

impl<F, S> Future for Making<F>
where
    F: Future<Output = Result<S, Infallible>>,
{
    type Output = Result<Counted<S>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = std::task::ready!(this.inner.poll(cx))?;
        let open = this.open.take().unwrap_or_default();
        Poll::Ready(Ok(Counted { inner, open }))
    }
}

/// A service that counts its open requests.
#[derive(Debug, Clone)]
pub(crate) struct Counted<S> {
    inner: S,
    open: Open,
}

impl<S> Service<Request> for Counted<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let guard = self.open.enter();
        let cut = self.open.cut.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = tokio::select! {
                biased;
                response = answer => response?,
                () = cut.clone().cancelled_owned() => return Ok(cut_response()),
            };
            Ok(response.map(|body| {
                Body::new(CountedBody {
                    inner: body,
                    cut: Box::pin(cut.cancelled_owned()),
                    _guard: guard,
                })
            }))
        })
    }
}

pin_project! {
    /// A response body that keeps its request counted until it ends or is dropped, and fails
    /// (closing its connection) once the drain deadline cuts it.
    struct CountedBody {
        #[pin]
        inner: Body,
        cut: Pin<Box<WaitForCancellationFutureOwned>>,
        _guard: Guard,
    }
}

impl HttpBody for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        if this.cut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(
                "response cut: the HTTP drain deadline of the shutdown passed",
            ))));
        }
        this.inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
