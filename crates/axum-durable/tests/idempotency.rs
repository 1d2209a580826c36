//! The `Idempotency` layer over HTTP, on real SQLite files and (with the `postgres` feature
//! and `DURABLE_TEST_DATABASE_URL`) on PostgreSQL: first run, replay, 409 while running, 422
//! for another body, 400/413, expiry, release on an error answer, and the record committing
//! with the request's tasks or not at all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use axum_durable::core::store::Store;
use axum_durable::{Client, Durable, DurableLayer, Idempotency, Task, TaskContext, TaskError};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
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

/// What the handlers share: how often they ran, and a gate the slow one waits on.
#[derive(Clone)]
struct App {
    runs: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

impl Default for App {
    fn default() -> Self {
        Self {
            runs: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        }
    }
}

/// Spawns a note with the body's text and answers `201` with the run number. A body of
/// `slow` waits for the gate first; `reject` answers `400` (no record).
async fn handler(State(app): State<App>, durable: Durable, body: String) -> Response {
    let run = app.runs.fetch_add(1, Ordering::SeqCst) + 1;
    if body == "slow" {
        let _permit = app.gate.acquire().await.expect("gate");
    }
    if body == "reject" {
        return (StatusCode::BAD_REQUEST, "rejected").into_response();
    }
    durable.spawn(Note { text: body });
    (
        StatusCode::CREATED,
        [("location", "/users/1"), ("x-not-stored", "1")],
        Json(serde_json::json!({ "run": run })),
    )
        .into_response()
}

fn router(client: Client, app: App, layer: Idempotency) -> Router {
    Router::new()
        .route("/signup", post(handler))
        .with_state(app)
        .layer(layer)
        .layer(DurableLayer::new(client))
}

fn request(key: Option<&str>, body: &str) -> Request<Body> {
    let mut builder = Request::post("/signup");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    builder.body(Body::from(body.to_owned())).expect("request")
}

async fn send(router: &Router, request: Request<Body>) -> (StatusCode, Response, String) {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    let text = String::from_utf8(bytes.to_vec()).expect("utf8");
    (status, Response::from_parts(parts, Body::empty()), text)
}

async fn pending(store: &Arc<dyn Store>) -> u64 {
    store.counts().await.expect("counts").pending
}

async fn first_run_then_replay(store: Arc<dyn Store>) {
    let app = App::default();
    let router = router(
        Client::new(Arc::clone(&store)),
        app.clone(),
        Idempotency::new(),
    );
    let (status, first, body) = send(&router, request(Some("k-1"), "ada")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body, r#"{"run":1}"#);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let (status, again, replayed) = send(&router, request(Some("k-1"), "ada")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(replayed, body, "the same body");
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["content-type"], "application/json");
    assert_eq!(again.headers()["location"], "/users/1");
    assert!(
        again.headers().get("x-not-stored").is_none(),
        "only the chosen headers are recorded"
    );
    assert_eq!(app.runs.load(Ordering::SeqCst), 1, "the handler ran once");
    assert_eq!(pending(&store).await, 1, "one task");

    // The same key with another body: refused, nothing runs.
    let (status, refused, problem) = send(&router, request(Some("k-1"), "bob")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    assert!(problem.contains("different request body"), "{problem}");
    // Without a key, or with another one: runs.
    assert_eq!(
        send(&router, request(None, "ada")).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        send(&router, request(None, "ada")).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        send(&router, request(Some("k-2"), "ada")).await.0,
        StatusCode::CREATED
    );
    assert_eq!(app.runs.load(Ordering::SeqCst), 4);
    assert_eq!(pending(&store).await, 4);
}

async fn retry_while_running_gets_409(store: Arc<dyn Store>) {
    let app = App::default();
    let router = router(
        Client::new(Arc::clone(&store)),
        app.clone(),
        Idempotency::new(),
    );
    let first = tokio::spawn({
        let router = router.clone();
        async move { send(&router, request(Some("k"), "slow")).await }
    });
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.runs.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < until,
            "first request never ran"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, _, problem) = send(&router, request(Some("k"), "slow")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    app.gate.add_permits(1);
    let (status, _, body) = first.await.expect("first");
    assert_eq!(status, StatusCode::CREATED);
    let (status, replay, again) = send(&router, request(Some("k"), "slow")).await;
    assert_eq!((status, again), (StatusCode::CREATED, body));
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(app.runs.load(Ordering::SeqCst), 1);
}

async fn error_answers_release_the_key(store: Arc<dyn Store>) {
    let app = App::default();
    let router = router(
        Client::new(Arc::clone(&store)),
        app.clone(),
        Idempotency::new(),
    );
    for _ in 0..2 {
        let (status, response, _) = send(&router, request(Some("k"), "reject")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(response.headers().get("idempotent-replayed").is_none());
    }
    assert_eq!(app.runs.load(Ordering::SeqCst), 2, "a 4xx is not replayed");
}

async fn malformed_keys_and_large_bodies_are_refused(store: Arc<dyn Store>) {
    let app = App::default();
    let router = router(
        Client::new(Arc::clone(&store)),
        app.clone(),
        Idempotency::new().max_request_body(16),
    );
    let long = "k".repeat(256);
    let (status, _, problem) = send(&router, request(Some(&long), "ada")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(!problem.contains(&long), "the key is not echoed");
    let (status, _, _) = send(&router, request(Some("k"), &"x".repeat(17))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.runs.load(Ordering::SeqCst), 0);
    // Without a key the body limit does not apply.
    let (status, _, _) = send(&router, request(None, &"x".repeat(17))).await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn expired_keys_run_again_and_scopes_apart(store: Arc<dyn Store>) {
    let app = App::default();
    let client = Client::new(Arc::clone(&store));
    let expiring = router(
        client.clone(),
        app.clone(),
        Idempotency::new().keep_for(Duration::ZERO),
    );
    assert_eq!(
        send(&expiring, request(Some("k"), "a")).await.2,
        r#"{"run":1}"#
    );
    assert_eq!(
        send(&expiring, request(Some("k"), "a")).await.2,
        r#"{"run":2}"#
    );
    let scoped = router(
        client,
        app.clone(),
        Idempotency::new().scope(|parts| {
            parts
                .headers
                .get("x-user")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        }),
    );
    let as_user = |user: &str| {
        let mut r = request(Some("shared"), "a");
        r.headers_mut()
            .insert("x-user", user.parse().expect("header"));
        r
    };
    assert_eq!(send(&scoped, as_user("ada")).await.2, r#"{"run":3}"#);
    assert_eq!(send(&scoped, as_user("bob")).await.2, r#"{"run":4}"#);
    assert_eq!(send(&scoped, as_user("ada")).await.2, r#"{"run":3}"#);
}

/// A task the database refuses fails the request (`500`), stores no record and releases the
/// key: the retry runs the handler again.
async fn refused_tasks_leave_no_record(store: Arc<dyn Store>) {
    let app = App::default();
    let router = router(
        Client::new(Arc::clone(&store)),
        app.clone(),
        Idempotency::new(),
    );
    let (status, _, _) = send(&router, request(Some("k"), "poison")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, response, _) = send(&router, request(Some("k"), "poison")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response.headers().get("idempotent-replayed").is_none());
    assert_eq!(app.runs.load(Ordering::SeqCst), 2, "released, so run again");
    assert_eq!(pending(&store).await, 0);
}

/// Concurrent keyed requests share the writer's commits; one whose task is refused fails
/// alone (the batch is written apart, each record with its own tasks): the others are
/// recorded and replayed, the refused one released and run again.
async fn a_refused_request_fails_alone_among_concurrent_ones(store: Arc<dyn Store>) {
    let app = App::default();
    let router = router(
        Client::new(Arc::clone(&store)),
        app.clone(),
        Idempotency::new(),
    );
    let body = |i: usize| {
        if i == 3 {
            "poison".to_owned()
        } else {
            format!("user {i}")
        }
    };
    let send_all = || {
        futures_util::future::join_all((0..12).map(|i| {
            let router = router.clone();
            async move { send(&router, request(Some(&format!("key-{i}")), &body(i))).await }
        }))
    };
    let first = send_all().await;
    for (i, (status, response, _)) in first.iter().enumerate() {
        let expected = if i == 3 {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::CREATED
        };
        assert_eq!(*status, expected, "request {i}");
        assert!(response.headers().get("idempotent-replayed").is_none());
    }
    assert_eq!(pending(&store).await, 11);
    let again = send_all().await;
    for (i, ((status, response, text), (_, _, before))) in again.iter().zip(&first).enumerate() {
        if i == 3 {
            assert_eq!(*status, StatusCode::INTERNAL_SERVER_ERROR);
            assert!(response.headers().get("idempotent-replayed").is_none());
        } else {
            assert_eq!(
                (*status, text),
                (StatusCode::CREATED, before),
                "request {i}"
            );
            assert_eq!(response.headers()["idempotent-replayed"], "true");
        }
    }
    assert_eq!(
        app.runs.load(Ordering::SeqCst),
        13,
        "12 runs, then the refused one again"
    );
    assert_eq!(pending(&store).await, 11);
}

macro_rules! cases {
    ($make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some((store, _guard)) = $make().await else { return };
                super::$case(store).await;
            }
        )*
    };
}

mod sqlite {
    use super::*;
    use axum_durable::sqlite::SqliteStore;

    async fn db() -> Option<(Arc<dyn Store>, durable_testkit::SqliteFile)> {
        let file = durable_testkit::SqliteFile::new();
        let store = SqliteStore::connect(file.url()).await.expect("connect");
        store.migrate().await.expect("migrate");
        sqlx::query(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON durable_tasks
             WHEN NEW.payload LIKE '%poison%'
             BEGIN SELECT RAISE(ABORT, 'poisoned payload'); END",
        )
        .execute(store.writer_pool())
        .await
        .expect("trigger");
        Some((Arc::new(store), file))
    }

    cases!(db; first_run_then_replay, retry_while_running_gets_409,
        error_answers_release_the_key, malformed_keys_and_large_bodies_are_refused,
        expired_keys_run_again_and_scopes_apart, refused_tasks_leave_no_record,
        a_refused_request_fails_alone_among_concurrent_ones);
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use axum_durable::postgres::PostgresStore;

    async fn db() -> Option<(Arc<dyn Store>, durable_testkit::PgSchema)> {
        let url = durable_testkit::database_url()?;
        let schema = durable_testkit::PgSchema::new(&url).await;
        let store = PostgresStore::builder(&url)
            .schema(schema.name())
            .connect()
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        let mut admin = schema.connect().await;
        sqlx::query(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.payload->>'text' = 'poison' THEN
                     RAISE EXCEPTION 'poisoned payload';
                 END IF;
                 RETURN NEW;
             END $$",
        )
        .execute(&mut admin)
        .await
        .expect("function");
        sqlx::query(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON durable_tasks
             FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        )
        .execute(&mut admin)
        .await
        .expect("trigger");
        Some((Arc::new(store), schema))
    }

    cases!(db; first_run_then_replay, retry_while_running_gets_409,
        error_answers_release_the_key, malformed_keys_and_large_bodies_are_refused,
        expired_keys_run_again_and_scopes_apart, refused_tasks_leave_no_record,
        a_refused_request_fails_alone_among_concurrent_ones);
}
