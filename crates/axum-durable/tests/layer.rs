//! Handler-level tests of the layer and extractor, on real SQLite files.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use axum_durable::core::store::{AdminStore as _, StateCounts};
use axum_durable::sqlite::SqliteStore;
use axum_durable::{
    Durable, DurableLayer, Registry, Runtime, Task, TaskContext, TaskError, TaskId, TaskState,
};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use sqlx::Connection as _;
use tower::ServiceExt;

#[derive(Debug, Serialize, Deserialize)]
struct Note {
    text: String,
}

impl Task for Note {
    const NAME: &'static str = "note";
    type State = ();
    async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
        Ok(())
    }
}

struct Fixture {
    _file: durable_testkit::SqliteFile,
    store: SqliteStore,
    client: axum_durable::Client,
}

async fn fixture() -> Fixture {
    let file = durable_testkit::SqliteFile::new();
    let store = SqliteStore::connect(file.path_string())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE)")
        .execute(store.writer_pool())
        .await
        .expect("users");
    // A client with no runtime: rows stay pending, which is what these tests inspect.
    let client = axum_durable::Client::new(store.clone());
    Fixture {
        _file: file,
        store,
        client,
    }
}

async fn body_text(response: axum::response::Response) -> String {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf8")
}

fn post_req(uri: &str) -> Request<Body> {
    Request::post(uri).body(Body::empty()).expect("request")
}

async fn counts(store: &SqliteStore) -> StateCounts {
    store.counts().await.expect("counts")
}

#[tokio::test]
async fn spawned_task_is_stored_before_the_response() {
    let fx = fixture().await;
    let app = Router::new()
        .route(
            "/",
            post(|durable: Durable| async move {
                durable.spawn(Note { text: "hi".into() }).to_string()
            }),
        )
        .layer(DurableLayer::new(fx.client.clone()));
    let response = app.oneshot(post_req("/")).await.expect("call");
    assert_eq!(response.status(), StatusCode::OK);
    // The response is observed only now: the row must already be there.
    let id: TaskId = body_text(response).await.parse().expect("task id");
    let row = fx
        .store
        .get(id)
        .await
        .expect("get")
        .expect("stored before the response");
    assert_eq!(row.state, TaskState::Pending);
    assert_eq!(row.name, "note");
}

#[tokio::test]
async fn all_tasks_of_a_request_are_stored_together() {
    let fx = fixture().await;
    let app = Router::new()
        .route(
            "/",
            post(|durable: Durable| async move {
                for i in 0..5 {
                    durable.spawn(Note {
                        text: format!("n{i}"),
                    });
                }
                durable.spawn_after(
                    Duration::from_secs(60),
                    Note {
                        text: "later".into(),
                    },
                );
                StatusCode::ACCEPTED
            }),
        )
        .layer(DurableLayer::new(fx.client.clone()));
    let response = app.oneshot(post_req("/")).await.expect("call");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(counts(&fx.store).await.pending, 6);
}

#[tokio::test]
async fn rejected_write_answers_500_without_internals_and_acknowledges_nothing() {
    let fx = fixture().await;
    sqlx::query(
        "CREATE TRIGGER reject_tasks BEFORE INSERT ON durable_tasks
         BEGIN SELECT RAISE(ABORT, 'simulated storage failure'); END",
    )
    .execute(fx.store.writer_pool())
    .await
    .expect("trigger");
    let app = Router::new()
        .route(
            "/",
            post(|durable: Durable| async move {
                durable.spawn(Note { text: "x".into() });
                (StatusCode::CREATED, "created")
            }),
        )
        .layer(DurableLayer::new(fx.client.clone()));
    let response = app.oneshot(post_req("/")).await.expect("call");
    // The database refused the row: a retry would be refused the same way.
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response.headers().get("retry-after").is_none());
    let body = body_text(response).await;
    assert!(
        body.contains("could not be stored") && body.contains("error id"),
        "{body}"
    );
    assert!(!body.contains("simulated storage failure"), "{body}");
    assert_eq!(counts(&fx.store).await, StateCounts::default());
}

/// The database is busy (another process holds the write lock past the busy timeout): the
/// request answers `503` with `Retry-After`, and the body names no database internals.
#[tokio::test]
async fn unavailable_database_answers_503_without_internals() {
    let file = durable_testkit::SqliteFile::new();
    let path = file.path_string();
    let store = SqliteStore::builder(path.clone())
        .busy_timeout(Duration::from_millis(100))
        .connect()
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let client = axum_durable::Client::new(store.clone());
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
        .await
        .expect("second connection");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .expect("hold the write lock");
    let app = Router::new()
        .route(
            "/",
            post(|durable: Durable| async move {
                durable.spawn(Note { text: "x".into() });
                StatusCode::CREATED
            }),
        )
        .layer(DurableLayer::new(client));
    let response = app.oneshot(post_req("/")).await.expect("call");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let body = body_text(response).await;
    assert!(
        body.contains("try again later") && body.contains("error id"),
        "{body}"
    );
    assert!(!body.to_lowercase().contains("locked"), "{body}");
    assert!(!body.contains("database"), "{body}");
    sqlx::query("ROLLBACK")
        .execute(&mut other)
        .await
        .expect("release");
    assert_eq!(counts(&store).await, StateCounts::default());
}

/// A constraint the handler's own transaction breaks is not a reason to retry: `500`.
#[tokio::test]
async fn constraint_error_in_the_handlers_transaction_answers_500() {
    let fx = fixture().await;
    let app = Router::new()
        .route("/signup", post(signup))
        .with_state(AppState {
            store: fx.store.clone(),
        })
        .layer(DurableLayer::new(fx.client.clone()));
    let signup_req = || {
        Request::post("/signup")
            .body(Body::from("twice@example.com"))
            .expect("req")
    };
    let first = app.clone().oneshot(signup_req()).await.expect("call");
    assert_eq!(first.status(), StatusCode::CREATED);
    let second = app.oneshot(signup_req()).await.expect("call");
    assert_eq!(second.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = body_text(second).await;
    assert!(!body.contains("UNIQUE"), "{body}");
    assert!(body.contains("error id"), "{body}");
}

/// A handle cloned into `tokio::spawn` (exactly the code `Durable` replaces) spawns after
/// the request's tasks were written: the task is still stored, on its own.
#[tokio::test]
async fn spawn_after_the_response_is_still_stored() {
    let fx = fixture().await;
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let released = Arc::new(std::sync::Mutex::new(Some(released)));
    let late_id = Arc::new(std::sync::Mutex::new(None::<TaskId>));
    let (ids, gate) = (Arc::clone(&late_id), Arc::clone(&released));
    let app = Router::new()
        .route(
            "/",
            post(move |durable: Durable| {
                let (ids, gate) = (Arc::clone(&ids), Arc::clone(&gate));
                async move {
                    durable.spawn(Note {
                        text: "with the response".into(),
                    });
                    let wait = gate.lock().expect("gate").take().expect("one request");
                    tokio::spawn(async move {
                        let _ = wait.await;
                        let id = durable.spawn(Note {
                            text: "after the response".into(),
                        });
                        *ids.lock().expect("ids") = Some(id);
                    });
                    StatusCode::ACCEPTED
                }
            }),
        )
        .layer(DurableLayer::new(fx.client.clone()));
    let response = app.oneshot(post_req("/")).await.expect("call");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(counts(&fx.store).await.pending, 1);
    release.send(()).expect("release");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let id = *late_id.lock().expect("ids");
        if let Some(id) = id {
            if fx.store.get(id).await.expect("get").is_some() {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a task spawned after the response was never stored"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(counts(&fx.store).await.pending, 2);
}

/// `101 Switching Protocols` is a success: tasks spawned by an upgrade handler are stored.
#[tokio::test]
async fn switching_protocols_stores_the_tasks() {
    let fx = fixture().await;
    let app = Router::new()
        .route(
            "/",
            post(|durable: Durable| async move {
                durable.spawn(Note {
                    text: "upgrade".into(),
                });
                StatusCode::SWITCHING_PROTOCOLS
            }),
        )
        .layer(DurableLayer::new(fx.client.clone()));
    let response = app.oneshot(post_req("/")).await.expect("call");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(counts(&fx.store).await.pending, 1);
}

#[tokio::test]
async fn error_responses_persist_nothing_by_default() {
    let fx = fixture().await;
    let app = Router::new()
        .route(
            "/{status}",
            post(|durable: Durable, axum::extract::Path(status): axum::extract::Path<u16>| async move {
                durable.spawn(Note { text: "x".into() });
                StatusCode::from_u16(status).expect("status")
            }),
        )
        .layer(DurableLayer::new(fx.client.clone()));
    for status in [400, 404, 409, 422, 500, 503] {
        let response = app
            .clone()
            .oneshot(post_req(&format!("/{status}")))
            .await
            .expect("call");
        assert_eq!(response.status().as_u16(), status);
    }
    assert_eq!(counts(&fx.store).await.pending, 0);
    for status in [200, 201, 204, 303] {
        app.clone()
            .oneshot(post_req(&format!("/{status}")))
            .await
            .expect("call");
    }
    assert_eq!(counts(&fx.store).await.pending, 4);
}

#[tokio::test]
async fn persist_predicate_is_configurable() {
    let fx = fixture().await;
    let app = Router::new()
        .route(
            "/",
            post(|durable: Durable| async move {
                durable.spawn(Note {
                    text: "audit".into(),
                });
                StatusCode::FORBIDDEN
            }),
        )
        .layer(DurableLayer::new(fx.client.clone()).persist_when(|_| true));
    app.oneshot(post_req("/")).await.expect("call");
    assert_eq!(counts(&fx.store).await.pending, 1);
}

#[derive(Clone)]
struct AppState {
    store: SqliteStore,
}

async fn signup(
    State(state): State<AppState>,
    durable: Durable,
    body: String,
) -> Result<StatusCode, axum_durable::Error> {
    let mut tx = durable.begin(&state.store).await?;
    sqlx::query("INSERT INTO users (email) VALUES (?)")
        .bind(&body)
        .execute(&mut *tx)
        .await
        .map_err(|e| axum_durable::stores::Error::Database {
            operation: "insert user",
            source: e,
        })?;
    durable
        .spawn_in(&mut *tx, Note { text: body.clone() })
        .await?;
    if body.starts_with("rollback") {
        drop(tx); // dropped = rolled back
        return Ok(StatusCode::CONFLICT);
    }
    durable.commit(tx).await?;
    Ok(StatusCode::CREATED)
}

#[tokio::test]
async fn handler_transaction_commits_or_rolls_back_user_and_task_together() {
    let fx = fixture().await;
    let app = Router::new()
        .route("/signup", post(signup))
        .with_state(AppState {
            store: fx.store.clone(),
        })
        .layer(DurableLayer::new(fx.client.clone()));
    let ok = app
        .clone()
        .oneshot(
            Request::post("/signup")
                .body(Body::from("a@example.com"))
                .expect("req"),
        )
        .await
        .expect("call");
    assert_eq!(ok.status(), StatusCode::CREATED);
    let rolled = app
        .oneshot(
            Request::post("/signup")
                .body(Body::from("rollback@example.com"))
                .expect("req"),
        )
        .await
        .expect("call");
    assert_eq!(rolled.status(), StatusCode::CONFLICT);
    let users: Vec<String> = sqlx::query_scalar("SELECT email FROM users")
        .fetch_all(fx.store.reader_pool())
        .await
        .expect("users");
    assert_eq!(users, ["a@example.com"]);
    let payloads: Vec<String> = sqlx::query_scalar("SELECT payload FROM durable_tasks")
        .fetch_all(fx.store.reader_pool())
        .await
        .expect("tasks");
    assert_eq!(payloads.len(), 1);
    assert!(payloads[0].contains("a@example.com"));
}

#[tokio::test]
async fn missing_layer_answers_500_naming_the_layer() {
    let app = Router::new().route(
        "/",
        post(|durable: Durable| async move {
            durable.spawn(Note { text: "x".into() });
        }),
    );
    let response = app.oneshot(post_req("/")).await.expect("call");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = body_text(response).await;
    assert!(
        body.contains("DurableLayer") && body.contains("forget"),
        "{body}"
    );
}

#[tokio::test]
async fn optional_extractor_without_layer_is_none() {
    let app = Router::new().route(
        "/",
        get(|durable: Option<Durable>| async move { durable.is_some().to_string() }),
    );
    let response = app
        .oneshot(Request::get("/").body(Body::empty()).expect("req"))
        .await
        .expect("call");
    assert_eq!(body_text(response).await, "false");
}

#[tokio::test]
async fn oversized_task_fails_the_request_and_stores_nothing() {
    let fx = fixture().await;
    let store = fx.store.clone();
    let runtime = Runtime::builder(store, Registry::new().register::<Note>(()))
        .max_payload_bytes(100)
        .start();
    let app = Router::new()
        .route(
            "/",
            post(|durable: Durable| async move {
                durable.spawn(Note {
                    text: "small".into(),
                });
                durable.spawn(Note {
                    text: "x".repeat(500),
                });
                StatusCode::OK
            }),
        )
        .layer(DurableLayer::new(runtime.client()));
    let response = app.oneshot(post_req("/")).await.expect("call");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = body_text(response).await;
    assert!(
        body.contains("could not be prepared") && body.contains("error id"),
        "{body}"
    );
    assert!(
        !body.contains("100 bytes"),
        "the limit is logged, not shown: {body}"
    );
    assert_eq!(counts(&fx.store).await, StateCounts::default());
    runtime.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn panicking_handler_persists_nothing_and_service_survives() {
    let fx = fixture().await;
    let app = Router::new()
        .route(
            "/boom",
            post(|durable: Durable| async move {
                durable.spawn(Note {
                    text: "doomed".into(),
                });
                // Always panics; written so the compiler does not see dead code after it.
                assert_eq!(durable.client().max_payload_bytes(), 0, "handler bug");
                StatusCode::OK
            }),
        )
        .route(
            "/ok",
            post(|durable: Durable| async move {
                durable.spawn(Note {
                    text: "fine".into(),
                });
                StatusCode::OK
            }),
        );
    // CatchPanicLayer both outside and inside the durable layer.
    let outside = app
        .clone()
        .layer(DurableLayer::new(fx.client.clone()))
        .layer(tower_http::catch_panic::CatchPanicLayer::new());
    let inside = app
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(DurableLayer::new(fx.client.clone()));
    for (round, app) in [outside, inside].into_iter().enumerate() {
        let response = app.clone().oneshot(post_req("/boom")).await.expect("call");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            counts(&fx.store).await.pending,
            round as u64,
            "nothing from the panicking request"
        );
        let response = app.oneshot(post_req("/ok")).await.expect("call");
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(counts(&fx.store).await.pending, 2);
}

#[tokio::test]
async fn works_with_tower_http_layers_route_layer_and_state() {
    let fx = fixture().await;
    let app = Router::new()
        .route(
            "/",
            post(
                |State(tag): State<&'static str>, durable: Durable| async move {
                    durable.spawn(Note { text: tag.into() });
                    StatusCode::OK
                },
            ),
        )
        .route_layer(DurableLayer::new(fx.client.clone()))
        .with_state("tagged")
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(5),
        ));
    let response = app.oneshot(post_req("/")).await.expect("call");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(counts(&fx.store).await.pending, 1);
}

/// hyper drops the response future when the client disconnects. Once the handler has
/// returned, dropping the future must not lose the tasks it spawned.
#[tokio::test]
async fn dropped_response_future_still_stores_the_tasks() {
    let fx = fixture().await;
    let returned = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&returned);
    let app = Router::new()
        .route(
            "/",
            post(move |durable: Durable| {
                let flag = Arc::clone(&flag);
                async move {
                    for i in 0..3 {
                        durable.spawn(Note {
                            text: format!("d{i}"),
                        });
                    }
                    flag.store(true, Ordering::SeqCst);
                    StatusCode::OK
                }
            }),
        )
        .layer(DurableLayer::new(fx.client.clone()));
    let mut call = Box::pin(app.oneshot(post_req("/")));
    // Poll until the handler has returned (the write has then been handed to the writer),
    // then drop the future like hyper does on disconnect.
    while !returned.load(Ordering::SeqCst) {
        let _ = futures_poll_once(call.as_mut()).await;
    }
    drop(call);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while counts(&fx.store).await.pending < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "tasks lost after the response future was dropped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> Option<F::Output> {
    let mut once = Some(());
    std::future::poll_fn(move |cx| {
        if once.take().is_some() {
            match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => std::task::Poll::Ready(Some(v)),
                std::task::Poll::Pending => std::task::Poll::Ready(None),
            }
        } else {
            std::task::Poll::Ready(None)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volatile_work_is_tracked_and_drained_at_shutdown() {
    let fx = fixture().await;
    let runtime = Runtime::builder(fx.store.clone(), Registry::new()).start();
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    let app = Router::new()
        .route(
            "/",
            post(move |durable: Durable| {
                let flag = Arc::clone(&flag);
                async move {
                    durable.spawn_volatile("warm_cache", async move {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        flag.store(true, Ordering::SeqCst);
                        Ok::<(), std::io::Error>(())
                    });
                    StatusCode::OK
                }
            }),
        )
        .layer(DurableLayer::new(runtime.client()));
    app.oneshot(post_req("/")).await.expect("call");
    assert!(!done.load(Ordering::SeqCst));
    let report = runtime.shutdown(Duration::from_secs(5)).await;
    assert!(report.drained);
    assert!(
        done.load(Ordering::SeqCst),
        "shutdown waited for the volatile work"
    );
    assert_eq!(
        counts(&fx.store).await,
        StateCounts::default(),
        "volatile work is not persisted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_limit_sheds_load_with_retry_after() {
    let fx = fixture().await;
    let called = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&called);
    let app = Router::new()
        .route(
            "/",
            post(move |durable: Durable| {
                let counter = Arc::clone(&counter);
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    durable.spawn(Note { text: "x".into() });
                    StatusCode::ACCEPTED
                }
            }),
        )
        .layer(DurableLayer::new(fx.client.clone()).max_backlog(3));
    // Under the limit: accepted until the backlog (refreshed in the background) exceeds it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let shed = loop {
        let response = app.clone().oneshot(post_req("/")).await.expect("call");
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break response;
        }
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert!(tokio::time::Instant::now() < deadline, "never shed load");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // How long to wait comes from how fast the backlog drains (here it only grew: the most).
    let retry_after: u64 = shed.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let accepted = called.load(Ordering::SeqCst);
    assert!(accepted >= 4, "accepted {accepted} before shedding");
    assert_eq!(
        counts(&fx.store).await.pending,
        accepted as u64,
        "a shed request stores nothing"
    );
    // The handler did not run for the shed request.
    let before = called.load(Ordering::SeqCst);
    let again = app.clone().oneshot(post_req("/")).await.expect("call");
    assert_eq!(again.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(called.load(Ordering::SeqCst), before);
    // Once the backlog drains, requests are accepted again.
    sqlx::query("UPDATE durable_tasks SET state = 'cancelled'")
        .execute(fx.store.writer_pool())
        .await
        .expect("drain");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = app.clone().oneshot(post_req("/")).await.expect("call");
        if response.status() == StatusCode::ACCEPTED {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Tasks scheduled for later (the `spawn_after` pattern) are not backlog: the limit counts due
/// tasks only. And while a backlog over the limit does not drain (no worker runs here),
/// `Retry-After` says so with its longest value instead of inviting a retry every second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_limit_counts_due_tasks_and_retry_after_follows_the_drain() {
    let fx = fixture().await;
    for i in 0..10 {
        fx.client
            .enqueue_with(
                Note {
                    text: format!("tomorrow {i}"),
                },
                axum_durable::EnqueueOptions::new().delay(Duration::from_secs(24 * 3600)),
            )
            .await
            .expect("enqueue for later");
    }
    let called = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&called);
    let app = Router::new()
        .route(
            "/",
            post(move |durable: Durable| {
                let counter = Arc::clone(&counter);
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    durable.spawn(Note { text: "x".into() });
                    StatusCode::ACCEPTED
                }
            }),
        )
        .layer(DurableLayer::new(fx.client.clone()).max_backlog(3));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = app.clone().oneshot(post_req("/")).await.expect("call");
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert!(tokio::time::Instant::now() < deadline, "never shed load");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let accepted = called.load(Ordering::SeqCst);
    assert!(
        accepted >= 4,
        "shed after {accepted} due tasks: the 10 scheduled for tomorrow were counted"
    );
    assert_eq!(counts(&fx.store).await.pending, 10 + accepted as u64);
    // Nothing drains the backlog: once two counts agree, clients are told to come back in a
    // minute.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = app.clone().oneshot(post_req("/")).await.expect("call");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        if retry_after == 60 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Retry-After stayed {retry_after} s while the backlog did not drain"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
