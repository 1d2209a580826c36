//! Traces: a task spawned in a request that carries a W3C `traceparent` runs, on another
//! store instance over the same database, in a `durable.attempt` span that records it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use axum::Router;
use axum_durable::core::store::Store;
use axum_durable::sqlite::SqliteStore;
use axum_durable::{
    Client, Durable, DurableLayer, Registry, Runtime, Task, TaskContext, TaskError,
};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use tower::ServiceExt;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

const TRACE_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[derive(Serialize, Deserialize)]
struct Welcome {
    email: String,
}

impl Task for Welcome {
    const NAME: &'static str = "traces_welcome";
    type State = ();
    async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
        Ok(())
    }
}

type Fields = HashMap<String, String>;

/// Keeps the fields of every `durable.attempt` span, as recorded so far.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<(Id, Fields)>>>);

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _cx: Context<'_, S>) {
        if attrs.metadata().name() != "durable.attempt" {
            return;
        }
        let mut fields = Fields::new();
        attrs.record(&mut Visitor(&mut fields));
        self.0.lock().expect("capture").push((id.clone(), fields));
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _cx: Context<'_, S>) {
        let mut spans = self.0.lock().expect("capture");
        if let Some((_, fields)) = spans.iter_mut().rev().find(|(i, _)| i == id) {
            values.record(&mut Visitor(fields));
        }
    }
}

impl Capture {
    /// The attempt span of `task_id` once its outcome is recorded, within a deadline.
    async fn finished(&self, task_id: &str) -> Fields {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let found = self
                .0
                .lock()
                .expect("capture")
                .iter()
                .map(|(_, f)| f)
                .find(|f| {
                    f.get("task.id").map(String::as_str) == Some(task_id)
                        && f.contains_key("outcome")
                })
                .cloned();
            if let Some(fields) = found {
                return fields;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no finished attempt span for task {task_id}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Spawns through a client without a runtime (`enqueuer`), runs on a runtime over `runner`.
async fn attempt_span_carries_the_request_traceparent(
    enqueuer: Arc<dyn Store>,
    runner: Arc<dyn Store>,
) {
    let capture = Capture::default();
    // Current-thread test runtime: the runtime's tasks run on this thread, under this default.
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let app = Router::new()
        .route(
            "/signup",
            post(|durable: Durable| async move {
                durable
                    .spawn(Welcome {
                        email: "ada@example.com".into(),
                    })
                    .to_string()
            }),
        )
        .layer(DurableLayer::new(Client::new(enqueuer)));
    let response = app
        .oneshot(
            Request::post("/signup")
                .header("traceparent", TRACE_PARENT)
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("call");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let task_id = String::from_utf8(body.to_vec()).expect("utf8");

    let runtime = Runtime::builder(runner, Registry::new().register::<Welcome>(())).start();
    let span = capture.finished(&task_id).await;
    assert_eq!(
        span.get("trace_parent").map(String::as_str),
        Some(TRACE_PARENT)
    );
    assert_eq!(
        span.get("task.name").map(String::as_str),
        Some("traces_welcome")
    );
    assert_eq!(span.get("queue").map(String::as_str), Some("default"));
    assert_eq!(span.get("attempt").map(String::as_str), Some("1"));
    assert_eq!(span.get("outcome").map(String::as_str), Some("completed"));
    runtime.shutdown(Duration::from_secs(5)).await;
}

/// A request without a (valid) traceparent stores none: the span has no such field.
async fn no_traceparent_no_field(store: Arc<dyn Store>) {
    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let runtime = Runtime::builder(store, Registry::new().register::<Welcome>(())).start();
    let app = Router::new()
        .route(
            "/signup",
            post(|durable: Durable| async move {
                durable
                    .spawn(Welcome {
                        email: "bob@example.com".into(),
                    })
                    .to_string()
            }),
        )
        .layer(DurableLayer::new(runtime.client()));
    let response = app
        .oneshot(
            Request::post("/signup")
                .header("traceparent", "00-not-a-trace-01")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("call");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let task_id = String::from_utf8(body.to_vec()).expect("utf8");
    let span = capture.finished(&task_id).await;
    assert_eq!(span.get("trace_parent"), None, "{span:?}");
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn sqlite_attempt_span_carries_the_request_traceparent() {
    let file = durable_testkit::SqliteFile::new();
    let a = SqliteStore::connect(file.path_string())
        .await
        .expect("connect");
    a.migrate().await.expect("migrate");
    let b = SqliteStore::connect(file.path_string())
        .await
        .expect("connect");
    attempt_span_carries_the_request_traceparent(Arc::new(a), Arc::new(b)).await;
}

#[tokio::test]
async fn sqlite_no_traceparent_no_field() {
    let file = durable_testkit::SqliteFile::new();
    let store = SqliteStore::connect(file.path_string())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    no_traceparent_no_field(Arc::new(store)).await;
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use axum_durable::postgres::PostgresStore;

    #[tokio::test]
    async fn postgres_attempt_span_carries_the_request_traceparent() {
        let Some(url) = durable_testkit::database_url() else {
            return;
        };
        let schema = durable_testkit::PgSchema::new(&url).await;
        let connect = || async {
            PostgresStore::builder(&url)
                .schema(schema.name())
                .connect()
                .await
                .expect("connect")
        };
        let a = connect().await;
        a.migrate().await.expect("migrate");
        let b = connect().await;
        attempt_span_carries_the_request_traceparent(Arc::new(a), Arc::new(b)).await;
    }
}
