//! With the `opentelemetry` feature: a task enqueued inside an OpenTelemetry span runs, on
//! another store instance, in an attempt span that is that span's child in the same trace
//! (exported through the SDK's in-memory exporter).

use std::sync::Arc;
use std::time::Duration;

use axum_durable::core::store::Store;
use axum_durable::sqlite::SqliteStore;
use axum_durable::{Client, Registry, Runtime, Task, TaskContext, TaskError};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

#[derive(Serialize, Deserialize)]
struct Report;

impl Task for Report {
    const NAME: &'static str = "otel_report";
    type State = ();
    async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
        Ok(())
    }
}

async fn attempt_is_a_child_of_the_enqueuing_span(
    enqueuer: Arc<dyn Store>,
    runner: Arc<dyn Store>,
) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    // Current-thread test runtime: the runtime's tasks run on this thread, under this default.
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test"))),
    );
    let request = tracing::info_span!("request");
    let parent = request.context().span().span_context().clone();
    assert!(parent.is_valid());
    let client = Client::new(enqueuer);
    let id = client
        .enqueue(Report)
        .instrument(request.clone())
        .await
        .expect("enqueue");
    drop(request);

    let runtime = Runtime::builder(runner, Registry::new().register::<Report>(())).start();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let attempt = loop {
        let spans = exporter.get_finished_spans().expect("spans");
        if let Some(span) = spans.into_iter().find(|s| {
            s.name == "durable.attempt"
                && s.attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == "task.id" && kv.value.as_str() == id.to_string())
        }) {
            break span;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no attempt span exported"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(attempt.span_context.trace_id(), parent.trace_id());
    assert_eq!(attempt.parent_span_id, parent.span_id());
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn sqlite_attempt_is_a_child_of_the_enqueuing_span() {
    let file = durable_testkit::SqliteFile::new();
    let a = SqliteStore::connect(file.path_string())
        .await
        .expect("connect");
    a.migrate().await.expect("migrate");
    let b = SqliteStore::connect(file.path_string())
        .await
        .expect("connect");
    attempt_is_a_child_of_the_enqueuing_span(Arc::new(a), Arc::new(b)).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_attempt_is_a_child_of_the_enqueuing_span() {
    use axum_durable::postgres::PostgresStore;
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
    attempt_is_a_child_of_the_enqueuing_span(Arc::new(a), Arc::new(b)).await;
}
