//! Counting open requests (a streaming response counts until its body ends), so a drain cut
//! short by its deadline can say what it cut.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::response::Response;
use pin_project_lite::pin_project;
use tower::Service;

/// The number of requests whose response has not been fully sent.
#[derive(Debug, Clone, Default)]
pub(crate) struct Open(Arc<AtomicUsize>);

impl Open {
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn enter(&self) -> Guard {
        self.0.fetch_add(1, Ordering::SeqCst);
        Guard(self.clone())
    }
}

/// One open request; dropped with its response body (or its future, if never answered).
#[derive(Debug)]
struct Guard(Open);

impl Drop for Guard {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::SeqCst);
    }
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
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| {
                Body::new(CountedBody {
                    inner: body,
                    _guard: guard,
                })
            }))
        })
    }
}

pin_project! {
    /// A response body that keeps its request counted until it ends or is dropped.
    struct CountedBody {
        #[pin]
        inner: Body,
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
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
