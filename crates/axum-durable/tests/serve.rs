//! `serve`: one grace budget for the whole shutdown, separate drain and force signals, and
//! whatever `axum::serve` accepts — over real sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use axum_durable::core::store::AdminStore as _;
use axum_durable::sqlite::SqliteStore;
use axum_durable::{
    serve_with_signals, Durable, DurableLayer, Registry, Runtime, Task, TaskContext, TaskError,
    TaskState,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Serialize, Deserialize)]
struct Sleep {
    ms: u64,
}

impl Task for Sleep {
    const NAME: &'static str = "sleep";
    type State = ();
    async fn run(self, cx: TaskContext<()>) -> Result<(), TaskError> {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(self.ms)) => Ok(()),
            () = cx.cancelled() => Err(TaskError::retryable("stopped")),
        }
    }
}

struct Fixture {
    file: durable_testkit::SqliteFile,
    store: SqliteStore,
    runtime: Runtime,
}

async fn fixture() -> Fixture {
    let file = durable_testkit::SqliteFile::new();
    let store = SqliteStore::connect(file.path_string())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let runtime = Runtime::builder(store.clone(), Registry::new().register::<Sleep>(()))
        .poll_interval(Duration::from_millis(50))
        .cancel_grace(Duration::from_millis(50))
        .start();
    Fixture {
        file,
        store,
        runtime,
    }
}

/// Sends one HTTP/1.1 request and reads the status line (and, with `whole`, the body to
/// the end of the connection).
async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    method: &str,
    path: &str,
    whole: bool,
) -> (u16, String, S) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).to_string();
        if n == 0 || (!whole && text.contains("\r\n\r\n")) {
            let status = text
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
            return (status, body, stream);
        }
    }
}

async fn tcp() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

/// An endless stream that ignores `stopping` cannot hold the shutdown past its grace; the
/// runtime stops claiming and `stopping()` fires when draining starts, not after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_drain_has_a_deadline_inside_the_grace() {
    let fx = fixture().await;
    let app = Router::new().route(
        "/stream",
        get(|| async {
            let ticks = futures_util::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Some((Ok::<_, std::io::Error>("tick\n"), ()))
            });
            Body::from_stream(ticks)
        }),
    );
    let (listener, addr) = tcp().await;
    let (drain, force) = (CancellationToken::new(), CancellationToken::new());
    let grace = Duration::from_secs(1);
    let server = tokio::spawn(serve_with_signals(
        listener,
        app,
        fx.runtime.clone(),
        grace,
        drain.clone().cancelled_owned(),
        move || force.cancelled_owned(),
    ));
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (status, _, _stream) = request(stream, "GET", "/stream", false).await;
    assert_eq!(status, 200);
    let stopping = fx.runtime.stopping();
    let started = Instant::now();
    drain.cancel();
    tokio::time::timeout(Duration::from_millis(200), stopping.cancelled())
        .await
        .expect("stopping() fires when draining starts");
    // A task enqueued by another process once a claim in flight at the signal has had
    // time to finish is not claimed here any more.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let other = axum_durable::Client::new(fx.store.clone());
    let id = other.enqueue(Sleep { ms: 1 }).await.expect("enqueue");
    let report = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve returned within its grace")
        .expect("join")
        .expect("serve");
    let took = started.elapsed();
    assert!(took < grace + Duration::from_millis(300), "took {took:?}");
    assert!(report.drained);
    let row = fx.store.get(id).await.expect("get").expect("row");
    assert_eq!(
        row.state,
        TaskState::Pending,
        "not claimed after draining began"
    );
}

/// Reads `stream` until the server closes or resets the connection: when, and the first
/// bytes read.
async fn closed_at<S: AsyncRead + Unpin>(mut stream: S) -> (Instant, String) {
    let mut buf = [0u8; 4096];
    let mut first = String::new();
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return (Instant::now(), first),
            Ok(n) if first.is_empty() => first = String::from_utf8_lossy(&buf[..n]).into_owned(),
            Ok(_) => {}
        }
    }
}

/// Connections still open at the HTTP drain deadline (half the grace) are closed then — a
/// stream that ignores `stopping`, a handler that never answers — not when the process
/// exits: the runtime's drain goes on until the end of the grace here (a task longer than
/// it), and the connections must not stream on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_open_at_the_http_deadline_are_closed_then() {
    let fx = fixture().await;
    fx.runtime
        .client()
        .enqueue(Sleep { ms: 60_000 })
        .await
        .expect("enqueue");
    while fx.runtime.running() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let app = Router::new()
        .route(
            "/stream",
            get(|| async {
                let ticks = futures_util::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Some((Ok::<_, std::io::Error>("tick\n"), ()))
                });
                Body::from_stream(ticks)
            }),
        )
        .route("/hang", get(std::future::pending::<()>));
    let (listener, addr) = tcp().await;
    let (drain, force) = (CancellationToken::new(), CancellationToken::new());
    let grace = Duration::from_secs(2);
    let server = tokio::spawn(serve_with_signals(
        listener,
        app,
        fx.runtime.clone(),
        grace,
        drain.clone().cancelled_owned(),
        move || force.cancelled_owned(),
    ));
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (status, _, stream) = request(stream, "GET", "/stream", false).await;
    assert_eq!(status, 200);
    let mut hang = tokio::net::TcpStream::connect(addr).await.expect("connect");
    hang.write_all(b"GET /hang HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await; // the request is in its handler
    let started = Instant::now();
    drain.cancel();
    let stream_closed = tokio::spawn(closed_at(stream));
    let hang_closed = tokio::spawn(closed_at(hang));
    let limit = grace / 2 + Duration::from_millis(300);
    for (what, closed) in [
        ("the stream", stream_closed),
        ("the hanging request", hang_closed),
    ] {
        let (at, first) = tokio::time::timeout(grace * 2, closed)
            .await
            .unwrap_or_else(|_| panic!("{what} was still open {:?} after the signal", grace * 2))
            .expect("join");
        let after = at - started;
        assert!(
            after <= limit,
            "{what} was closed {after:?} after the signal, past the HTTP deadline ({:?})",
            grace / 2
        );
        if what == "the hanging request" {
            assert!(first.starts_with("HTTP/1.1 503"), "answered {first:?}");
        }
    }
    let report = server.await.expect("join").expect("serve");
    assert!(
        started.elapsed() <= grace + Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    // Stopped, not finished: handed back, or — on a machine too busy to commit within the
    // requeue's reserve (a tenth of the runtime's half of the grace) — left to its lease.
    assert_eq!((report.finished, report.drained), (0, false), "{report:?}");
    assert_eq!(
        report.requeued + report.not_handed_back as u64,
        1,
        "{report:?}"
    );
}

async fn slow_signup(durable: Durable) -> StatusCode {
    tokio::time::sleep(Duration::from_millis(300)).await;
    durable.spawn(Sleep { ms: 1 });
    StatusCode::CREATED
}

/// A drain signal that stays complete (a cancelled token) does not force the shutdown: an
/// in-flight request finishes and stores its task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_level_triggered_drain_signal_does_not_force() {
    let fx = fixture().await;
    let app = Router::new()
        .route("/signup", post(slow_signup))
        .layer(DurableLayer::new(fx.runtime.client()));
    let (listener, addr) = tcp().await;
    let (drain, force) = (CancellationToken::new(), CancellationToken::new());
    let server = tokio::spawn(serve_with_signals(
        listener,
        app,
        fx.runtime.clone(),
        Duration::from_secs(5),
        drain.clone().cancelled_owned(),
        move || force.cancelled_owned(),
    ));
    let call = tokio::spawn(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        request(stream, "POST", "/signup", true).await.0
    });
    tokio::time::sleep(Duration::from_millis(100)).await; // the request is in its handler
    drain.cancel();
    assert_eq!(
        call.await.expect("join"),
        201,
        "the in-flight request finished"
    );
    let report = server.await.expect("join").expect("serve");
    assert_eq!(report.requeued, 0, "{report:?}");
    let counts = fx.store.counts().await.expect("counts");
    assert_eq!(counts.completed, 1, "{counts:?}");
}

/// The force signal ends every wait: running tasks are handed back at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_force_signal_hands_back_at_once() {
    let fx = fixture().await;
    let id = fx
        .runtime
        .client()
        .enqueue(Sleep { ms: 60_000 })
        .await
        .expect("enqueue");
    while fx.runtime.running() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (listener, _) = tcp().await;
    let (drain, force) = (CancellationToken::new(), CancellationToken::new());
    let forcing = force.clone();
    let server = tokio::spawn(serve_with_signals(
        listener,
        Router::new(),
        fx.runtime.clone(),
        Duration::from_secs(30),
        drain.clone().cancelled_owned(),
        move || force.cancelled_owned(),
    ));
    drain.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    forcing.cancel();
    let report = server.await.expect("join").expect("serve");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.requeued, 1, "{report:?}");
    let row = fx.store.get(id).await.expect("get").expect("row");
    assert_eq!((row.state, row.attempts), (TaskState::Pending, 0));
}

/// `ConnectInfo` works through `serve`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_info_is_served() {
    let fx = fixture().await;
    let app = Router::new().route(
        "/who",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
    );
    let (listener, addr) = tcp().await;
    let drain = CancellationToken::new();
    let server = tokio::spawn(serve_with_signals(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
        fx.runtime.clone(),
        Duration::from_secs(1),
        drain.clone().cancelled_owned(),
        std::future::pending::<()>,
    ));
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (status, body, _) = request(stream, "GET", "/who", true).await;
    assert_eq!((status, body.as_str()), (200, "127.0.0.1"));
    drain.cancel();
    server.await.expect("join").expect("serve");
}

/// A Unix domain socket works through `serve`.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_sockets_are_served() {
    let fx = fixture().await;
    let path = fx.file.dir().join("app.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    let drain = Arc::new(CancellationToken::new());
    let server = tokio::spawn(serve_with_signals(
        listener,
        Router::new().route("/", get(|| async { "over a unix socket" })),
        fx.runtime.clone(),
        Duration::from_secs(1),
        drain.as_ref().clone().cancelled_owned(),
        std::future::pending::<()>,
    ));
    let stream = tokio::net::UnixStream::connect(&path)
        .await
        .expect("connect");
    let (status, body, _) = request(stream, "GET", "/", true).await;
    assert_eq!((status, body.as_str()), (200, "over a unix socket"));
    drain.cancel();
    server.await.expect("join").expect("serve");
}
