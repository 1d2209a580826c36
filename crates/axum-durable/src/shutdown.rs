//! Graceful shutdown in the right order: HTTP first, then the runtime's drain.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use durable_core::{Runtime, ShutdownReport};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Completes on the first SIGTERM or Ctrl-C (SIGINT).
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

/// Serves `app` until SIGTERM or Ctrl-C, then shuts down in order:
///
/// 1. the HTTP server stops accepting; in-flight requests finish — and so finish storing the
///    tasks they spawned;
/// 2. the runtime stops claiming — after one last claim for tasks those requests committed
///    after its latest claim began, so what this instance acknowledged runs here — and waits
///    up to `grace` for running tasks;
/// 3. tasks still running are cancelled and handed back as `pending` in one statement, so
///    the next process (or another instance) starts them at once.
///
/// A second signal skips the rest of the waiting: requeue and return immediately. Keep
/// `grace` well under your orchestrator's kill timeout (Kubernetes: 30 s, Docker: 10 s).
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
pub async fn serve(
    listener: TcpListener,
    app: Router,
    runtime: Runtime,
    grace: Duration,
) -> std::io::Result<ShutdownReport> {
    serve_with_signal(listener, app, runtime, grace, shutdown_signal).await
}

/// [`serve`] with a custom signal: `signal()` is called for the first and for the second
/// (forcing) signal.
pub async fn serve_with_signal<F, Fut>(
    listener: TcpListener,
    app: Router,
    runtime: Runtime,
    grace: Duration,
    signal: F,
) -> std::io::Result<ShutdownReport>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let draining = CancellationToken::new();
    let forced = CancellationToken::new();
    let watcher = {
        let draining = draining.clone();
        let forced = forced.clone();
        let runtime = runtime.clone();
        tokio::spawn(async move {
            signal().await;
            tracing::info!("shutdown signal received: no new requests; draining");
            draining.cancel();
            signal().await;
            tracing::warn!("second shutdown signal: requeueing unfinished tasks now");
            forced.cancel();
            runtime.force_shutdown();
        })
    };
    let server =
        axum::serve(listener, app).with_graceful_shutdown(draining.clone().cancelled_owned());
    tokio::select! {
        result = server => result?,
        () = forced.cancelled() => tracing::warn!("HTTP drain abandoned by the second signal"),
    }
    let report = runtime.shutdown(grace).await;
    watcher.abort();
    Ok(report)
}
