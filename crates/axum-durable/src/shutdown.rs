//! Graceful shutdown in the right order, within one grace budget: stop claiming and stop
//! accepting, drain HTTP up to its own deadline, drain tasks, hand back the rest.

use std::convert::Infallible;
use std::fmt::Debug;
use std::future::{Future, IntoFuture};
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use axum::serve::{IncomingStream, Listener};
use durable_core::runtime::ShutdownReport;
use durable_core::Runtime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::inflight::{MakeCounted, Open};

/// Completes on the next SIGTERM or Ctrl-C (SIGINT) delivered after the call.
///
/// # Panics
///
/// If the signal handlers cannot be installed (no Tokio runtime with signals enabled).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c()
            .await
            .expect("failed to install the Ctrl-C handler");
    };
    #[cfg(unix)]
    let terminate = async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("failed to install the SIGTERM handler")
            .recv()
            .await;
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Serves `make_service` on `listener` (whatever [`axum::serve()`] accepts: a `Router`, a
/// `Router::into_make_service_with_connect_info::<SocketAddr>()`, a `TcpListener` or a
/// `UnixListener`) until SIGTERM or Ctrl-C, then shuts down in order, **within `grace`**
/// counted from the signal:
///
/// 1. the runtime stops claiming and [`Runtime::stopping`] fires (end streams and loops on
///    it); the HTTP server stops accepting, and in-flight requests finish — and so finish
///    storing the tasks they spawned — for at most half the grace: requests still open then
///    are cut, and their number logged (a response still streaming — one that ignored
///    `stopping` — ends with an error, which closes its connection; a handler still running
///    is dropped and answered `503` with `connection: close`);
/// 2. the runtime makes one last claim for tasks this instance acknowledged after its
///    latest claim began, and waits for running tasks;
/// 3. tasks still running are cancelled and handed back as `pending` in one statement, so
///    the next process (or another instance) starts them at once.
///
/// A second signal ends every wait: the HTTP drain stops, running tasks are cancelled and
/// handed back at once. Keep `grace` under your orchestrator's kill timeout (Kubernetes:
/// 30 s, Docker: 10 s) by a margin for process exit. If the server fails, the runtime is
/// still shut down before the error is returned.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(app: axum::Router, runtime: axum_durable::Runtime) -> std::io::Result<()> {
/// use std::time::Duration;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// let report = axum_durable::serve(listener, app, runtime, Duration::from_secs(10)).await?;
/// tracing::info!(?report, "stopped");
/// # Ok(()) }
/// ```
pub async fn serve<L, M, S>(
    listener: L,
    make_service: M,
    runtime: Runtime,
    grace: Duration,
) -> std::io::Result<ShutdownReport>
where
    L: Listener,
    L::Addr: Debug,
    M: for<'a> Service<IncomingStream<'a, L>, Error = Infallible, Response = S> + Send + 'static,
    for<'a> <M as Service<IncomingStream<'a, L>>>::Future: Send,
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    serve_with_signals(
        listener,
        make_service,
        runtime,
        grace,
        shutdown_signal(),
        shutdown_signal,
    )
    .await
}

/// [`serve`] with your own signals: `drain` starts the shutdown; `force()` is called once
/// the drain has begun, and its future ends every wait when it completes.
///
/// Because `force` is only called after `drain` completed, a signal source that creates a
/// listener on each call sees only later signals; a level-triggered source — a token
/// already cancelled — must still be a separate one (two tokens, or an `mpsc` receiver).
///
/// # Examples
///
/// ```no_run
/// # async fn demo(app: axum::Router, runtime: axum_durable::Runtime) -> std::io::Result<()> {
/// use std::time::Duration;
/// use tokio_util::sync::CancellationToken;
///
/// let (drain, force) = (CancellationToken::new(), CancellationToken::new());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// let report = axum_durable::serve_with_signals(
///     listener,
///     app,
///     runtime,
///     Duration::from_secs(10),
///     drain.clone().cancelled_owned(),
///     move || force.cancelled_owned(),
/// )
/// .await?;
/// # Ok(()) }
/// ```
pub async fn serve_with_signals<L, M, S, D, F, Fut>(
    listener: L,
    make_service: M,
    runtime: Runtime,
    grace: Duration,
    drain: D,
    force: F,
) -> std::io::Result<ShutdownReport>
where
    L: Listener,
    L::Addr: Debug,
    M: for<'a> Service<IncomingStream<'a, L>, Error = Infallible, Response = S> + Send + 'static,
    for<'a> <M as Service<IncomingStream<'a, L>>>::Future: Send,
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    D: Future<Output = ()>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let open = Open::default();
    let counted = MakeCounted {
        inner: make_service,
        open: open.clone(),
    };
    let draining = CancellationToken::new();
    let server = axum::serve(listener, counted)
        .with_graceful_shutdown(draining.clone().cancelled_owned())
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => {
            // The server ended without a signal: still hand the work back.
            tracing::error!(?result, "HTTP server stopped without a shutdown signal; shutting the runtime down");
            let report = runtime.shutdown(grace).await;
            return result.map(|()| report);
        }
        () = drain => {}
    }
    let deadline = Instant::now() + grace;
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutdown signal received: no new requests or claims; draining"
    );
    runtime.begin_shutdown();
    draining.cancel();
    let force = force();
    tokio::pin!(force);
    let mut forced = false;
    let mut outcome = Ok(());
    tokio::select! {
        result = &mut server => outcome = result,
        () = tokio::time::sleep_until(Instant::now() + grace / 2) => {
            tracing::warn!(open_requests = open.get(),
                "HTTP drain deadline reached (half the grace); closing the connections still open");
            open.cut();
        }
        () = &mut force => {
            tracing::warn!(open_requests = open.get(),
                "second shutdown signal: HTTP drain abandoned; handing unfinished tasks back now");
            open.cut();
            forced = true;
            runtime.force_shutdown();
        }
    }
    let shutdown = runtime.shutdown(deadline.saturating_duration_since(Instant::now()));
    tokio::pin!(shutdown);
    let report = loop {
        tokio::select! {
            report = &mut shutdown => break report,
            () = &mut force, if !forced => {
                tracing::warn!("second shutdown signal: handing unfinished tasks back now");
                forced = true;
                runtime.force_shutdown();
            }
        }
    };
    outcome.map(|()| report)
}
