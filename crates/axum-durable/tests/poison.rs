//! One request's bad input fails that request only. Fifty requests go through the layer at
//! once while the database is held, so that they meet in one group-commit cycle; one of them
//! carries input the database cannot store. The other 49 must be acknowledged and stored,
//! the poisoned one refused and not stored.
//!
//! Two kinds of poison, on both backends: a NUL in the payload (PostgreSQL's `jsonb` cannot
//! hold it; the client refuses it up front on every backend) and a payload a trigger refuses
//! (the database says no, so the writer must retry the cycle's requests apart).
//!
//! PostgreSQL cases run when `DURABLE_TEST_DATABASE_URL` is set (each in a schema of its own)
//! and with the `postgres` feature.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use axum::routing::post;
use axum::Router;
use axum_durable::core::store::Store;
use axum_durable::{Client, Durable, DurableLayer, Task, TaskContext, TaskError, TaskId};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

const REQUESTS: usize = 50;
/// The request that carries the poison (fired last, so it shares a cycle with the others).
const POISONED: usize = REQUESTS - 1;

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

/// What goes into the poisoned request's payload.
#[derive(Clone, Copy)]
enum Poison {
    /// A NUL character in a string of the payload.
    Nul,
    /// The word a test trigger refuses.
    Trigger,
}

impl Poison {
    fn text(self) -> String {
        match self {
            Poison::Nul => "bad\u{0}input".to_owned(),
            Poison::Trigger => "poison".to_owned(),
        }
    }
}

#[derive(Clone)]
struct App {
    poison: Poison,
    handled: Arc<AtomicUsize>,
}

async fn spawn_note(
    State(app): State<App>,
    Path(i): Path<usize>,
    durable: Durable,
) -> (StatusCode, String) {
    let text = if i == POISONED {
        app.poison.text()
    } else {
        format!("note {i}")
    };
    let id = durable.spawn(Note { text });
    app.handled.fetch_add(1, Ordering::SeqCst);
    (StatusCode::OK, id.to_string())
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Fires the fifty requests while `hold` keeps the database busy, releases it once every
/// request waits on the writer, and returns each request's status and answered id.
async fn fifty_requests<H: std::future::Future<Output = ()>>(
    client: &Client,
    poison: Poison,
    release: impl FnOnce() -> H,
) -> Vec<(StatusCode, String)> {
    let app = App {
        poison,
        handled: Arc::new(AtomicUsize::new(0)),
    };
    let router = Router::new()
        .route("/{i}", post(spawn_note))
        .with_state(app.clone())
        .layer(DurableLayer::new(client.clone()));
    let call = |i: usize| {
        let router = router.clone();
        tokio::spawn(async move {
            let request = Request::post(format!("/{i}"))
                .body(Body::empty())
                .expect("request");
            let response = router.oneshot(request).await.expect("call");
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        })
    };
    let mut calls: Vec<_> = (0..POISONED).map(call).collect();
    eventually("the good requests to reach the writer", || {
        client.queued_rows() == POISONED
    })
    .await;
    calls.push(call(POISONED));
    eventually("the poisoned request to be handled", || {
        app.handled.load(Ordering::SeqCst) == REQUESTS
    })
    .await;
    // A refused spawn never reaches the writer; an accepted one is queued behind the others.
    // The client refuses a NUL itself: that request never reaches the writer. A row only
    // the database refuses waits in the writer's queue with the others.
    let queued = match poison {
        Poison::Nul => POISONED,
        Poison::Trigger => REQUESTS,
    };
    eventually("every accepted request to wait on the writer", || {
        client.queued_rows() == queued
    })
    .await;
    release().await;
    let mut answers = Vec::new();
    for c in calls {
        answers.push(c.await.expect("request task"));
    }
    answers
}

/// 49 acknowledged and stored, the poisoned one refused and not stored.
async fn check_answers(store: &dyn Store, answers: &[(StatusCode, String)]) {
    for (i, (status, body)) in answers.iter().enumerate() {
        if i == POISONED {
            assert!(
                status.is_server_error(),
                "the poisoned request must be refused, got {status}: {body}"
            );
            continue;
        }
        assert_eq!(
            *status,
            StatusCode::OK,
            "request {i} was not acknowledged: {body}"
        );
        let id: TaskId = body.parse().expect("task id");
        let row = store.get(id).await.expect("get");
        assert!(
            row.is_some(),
            "acknowledged task {id} of request {i} not stored"
        );
    }
    let counts = store.counts().await.expect("counts");
    assert_eq!(counts.pending, (REQUESTS - 1) as u64, "{counts:?}");
}

mod sqlite {
    use super::*;
    use axum_durable::sqlite::SqliteStore;
    use sqlx::{Connection, SqliteConnection};

    struct Db {
        _file: durable_testkit::SqliteFile,
        path: String,
        store: SqliteStore,
    }

    async fn db() -> Db {
        let file = durable_testkit::SqliteFile::new();
        let path = file.path_string();
        let store = SqliteStore::connect(path.clone()).await.expect("connect");
        store.migrate().await.expect("migrate");
        Db {
            _file: file,
            path,
            store,
        }
    }

    /// Another connection holding the write lock (`BEGIN IMMEDIATE`): the writer waits.
    async fn hold(path: &str) -> SqliteConnection {
        let mut conn = SqliteConnection::connect(&format!("sqlite://{path}"))
            .await
            .expect("second connection");
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .expect("hold the write lock");
        conn
    }

    async fn run(poison: Poison) {
        let db = db().await;
        if matches!(poison, Poison::Trigger) {
            sqlx::query(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON durable_tasks
                 WHEN NEW.payload LIKE '%poison%'
                 BEGIN SELECT RAISE(ABORT, 'poisoned payload'); END",
            )
            .execute(db.store.writer_pool())
            .await
            .expect("trigger");
        }
        let client = Client::new(db.store.clone());
        let mut holder = hold(&db.path).await;
        let answers = fifty_requests(&client, poison, || async move {
            sqlx::query("ROLLBACK")
                .execute(&mut holder)
                .await
                .expect("release");
        })
        .await;
        check_answers(&db.store, &answers).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nul_in_payload_fails_only_its_request() {
        run(Poison::Nul).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn payload_refused_by_a_trigger_fails_only_its_request() {
        run(Poison::Trigger).await;
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use axum_durable::postgres::PostgresStore;

    async fn run(poison: Poison) {
        let Some(url) = durable_testkit::database_url() else {
            return;
        };
        let schema = durable_testkit::PgSchema::new(&url).await;
        let store = PostgresStore::builder(&url)
            .schema(schema.name())
            .connect()
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        let mut admin = schema.connect().await;
        if matches!(poison, Poison::Trigger) {
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
        }
        let client = Client::new(store.clone());
        // Held in another session, the lock makes the writer's INSERT wait.
        sqlx::query("BEGIN")
            .execute(&mut admin)
            .await
            .expect("begin");
        sqlx::query("LOCK TABLE durable_tasks IN ACCESS EXCLUSIVE MODE")
            .execute(&mut admin)
            .await
            .expect("lock");
        let answers = fifty_requests(&client, poison, || async move {
            sqlx::query("ROLLBACK")
                .execute(&mut admin)
                .await
                .expect("release");
        })
        .await;
        check_answers(&store, &answers).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nul_in_payload_fails_only_its_request() {
        run(Poison::Nul).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn payload_refused_by_a_trigger_fails_only_its_request() {
        run(Poison::Trigger).await;
    }
}
