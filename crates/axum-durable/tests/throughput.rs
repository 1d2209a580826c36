//! The runtime's throughput flush, on a real SQLite file and on PostgreSQL: ended attempts
//! per minute reach the store's throughput, every flush interval and at shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum_durable::core::store::{Store, ThroughputBucket};
use axum_durable::sqlite::SqliteStore;
use axum_durable::{Backoff, Registry, Runtime, Task, TaskContext, TaskError, TaskOptions};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Works;

impl Task for Works {
    const NAME: &'static str = "throughput_works";
    type State = ();
    async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
        Ok(())
    }
}

/// Fails both its attempts: one retried, then failed.
#[derive(Serialize, Deserialize)]
struct Breaks;

impl Task for Breaks {
    const NAME: &'static str = "throughput_breaks";
    type State = ();
    fn options() -> TaskOptions {
        TaskOptions::default()
            .max_attempts(2)
            .backoff(Backoff::constant(Duration::from_millis(10)))
    }
    async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
        Err(TaskError::retryable(std::io::Error::other("down")))
    }
}

/// (completed, retried, failed) over every bucket of the last hour.
async fn totals(store: &Arc<dyn Store>) -> (u64, u64, u64) {
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let buckets: Vec<ThroughputBucket> = store.throughput(since).await.expect("throughput");
    buckets.iter().fold((0, 0, 0), |(c, r, f), b| {
        (c + b.completed, r + b.retried, f + b.failed)
    })
}

/// Runs 2 tasks that complete and 1 that fails twice; waits until they ended.
async fn run_some(runtime: &Runtime) {
    let client = runtime.client();
    let mut ids = client.enqueue_many([Works, Works]).await.expect("enqueue");
    ids.push(client.enqueue(Breaks).await.expect("enqueue"));
    for id in ids {
        tokio::time::timeout(Duration::from_secs(20), client.wait(id))
            .await
            .expect("ended within 20 s")
            .expect("wait");
    }
}

fn registry() -> Registry {
    Registry::new().register::<Works>(()).register::<Breaks>(())
}

/// Counts reach the store at the flush interval, while the runtime runs.
async fn flushed_while_running(store: Arc<dyn Store>) {
    let runtime = Runtime::builder(Arc::clone(&store), registry())
        .throughput_flush(Duration::from_millis(50))
        .start();
    run_some(&runtime).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let seen = totals(&store).await;
        if seen == (2, 1, 1) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "throughput never reached (2, 1, 1): {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    runtime.shutdown(Duration::from_secs(5)).await;
    // Flushed once: the shutdown flush adds nothing twice.
    assert_eq!(totals(&store).await, (2, 1, 1));
}

/// With a flush interval longer than the test, the counts still reach the store: at
/// shutdown.
async fn flushed_at_shutdown(store: Arc<dyn Store>) {
    let runtime = Runtime::builder(Arc::clone(&store), registry())
        .throughput_flush(Duration::from_secs(3600))
        .start();
    run_some(&runtime).await;
    assert_eq!(totals(&store).await, (0, 0, 0));
    runtime.shutdown(Duration::from_secs(5)).await;
    assert_eq!(totals(&store).await, (2, 1, 1));
}

async fn sqlite() -> (Arc<dyn Store>, durable_testkit::SqliteFile) {
    let file = durable_testkit::SqliteFile::new();
    let store = SqliteStore::connect(file.path_string())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    (Arc::new(store), file)
}

#[tokio::test]
async fn sqlite_flushed_while_running() {
    let (store, _file) = sqlite().await;
    flushed_while_running(store).await;
}

#[tokio::test]
async fn sqlite_flushed_at_shutdown() {
    let (store, _file) = sqlite().await;
    flushed_at_shutdown(store).await;
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
        Some((Arc::new(store), schema))
    }

    #[tokio::test]
    async fn postgres_flushed_while_running() {
        let Some((store, _schema)) = db().await else {
            return;
        };
        flushed_while_running(store).await;
    }

    #[tokio::test]
    async fn postgres_flushed_at_shutdown() {
        let Some((store, _schema)) = db().await else {
            return;
        };
        flushed_at_shutdown(store).await;
    }
}
