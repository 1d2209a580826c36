//! The alerting hook, on a real SQLite file and on PostgreSQL: which failures raise events,
//! what they carry, and that a hook that panics or hangs neither stops the runtime nor
//! holds up its workers.

use std::sync::Arc;
use std::time::Duration;

use axum_durable::core::runtime::{AlertKind, TaskEvent};
use axum_durable::core::store::Store;
use axum_durable::sqlite::SqliteStore;
use axum_durable::{Backoff, Registry, Runtime, Task, TaskContext, TaskError, TaskOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Fails every attempt (3 allowed), retried at once.
#[derive(Serialize, Deserialize)]
struct Flaky;

impl Task for Flaky {
    const NAME: &'static str = "alerts_flaky";
    type State = ();
    fn options() -> TaskOptions {
        TaskOptions::default()
            .max_attempts(3)
            .backoff(Backoff::constant(Duration::from_millis(10)))
    }
    async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
        Err(TaskError::retryable(std::io::Error::other("smtp refused")))
    }
}

/// Fails with a permanent error: dead after one attempt.
#[derive(Serialize, Deserialize)]
struct Doomed;

impl Task for Doomed {
    const NAME: &'static str = "alerts_doomed";
    type State = ();
    async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
        Err(TaskError::permanent(std::io::Error::other("no such user")))
    }
}

/// Fails permanently too, under another name: the resilience test's hook hangs on it.
#[derive(Serialize, Deserialize)]
struct Hangs;

impl Task for Hangs {
    const NAME: &'static str = "alerts_hangs";
    type State = ();
    async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
        Err(TaskError::permanent(std::io::Error::other("hang the hook")))
    }
}

/// Succeeds.
#[derive(Serialize, Deserialize)]
struct Fine;

impl Task for Fine {
    const NAME: &'static str = "alerts_fine";
    type State = ();
    async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
        Ok(())
    }
}

fn registry() -> Registry {
    Registry::new()
        .register::<Flaky>(())
        .register::<Doomed>(())
        .register::<Hangs>(())
        .register::<Fine>(())
}

/// The next event, within a deadline.
async fn next(events: &mut mpsc::UnboundedReceiver<TaskEvent>) -> TaskEvent {
    tokio::time::timeout(Duration::from_secs(20), events.recv())
        .await
        .expect("an alert within 20 s")
        .expect("the hook is alive")
}

/// Dead tasks and a task reaching the attempt threshold raise events carrying the task.
async fn dead_and_retrying_tasks_alert(store: Arc<dyn Store>) {
    let (tx, mut events) = mpsc::unbounded_channel();
    let runtime = Runtime::builder(store, registry())
        .alert_after_attempts(2)
        .on_alert(move |event| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(event);
            }
        })
        .start();
    let client = runtime.client();
    let flaky = client.enqueue(Flaky).await.expect("enqueue");
    let mut got = vec![next(&mut events).await, next(&mut events).await];
    let doomed = client.enqueue(Doomed).await.expect("enqueue");
    got.push(next(&mut events).await);
    got.sort_by_key(|e| (e.name.clone(), e.attempt));

    let [doomed_dead, flaky_retrying, flaky_dead] = &got[..] else {
        panic!("three events expected: {got:?}");
    };
    assert_eq!(
        (doomed_dead.kind, doomed_dead.id, doomed_dead.attempt),
        (AlertKind::Dead, doomed, 1)
    );
    assert!(doomed_dead.permanent);
    assert_eq!(doomed_dead.error, "no such user");
    assert_eq!(doomed_dead.queue, "default");
    assert_eq!(
        (
            flaky_retrying.kind,
            flaky_retrying.id,
            flaky_retrying.attempt
        ),
        (AlertKind::Retrying, flaky, 2)
    );
    assert!(!flaky_retrying.permanent);
    assert_eq!(
        (
            flaky_dead.kind,
            flaky_dead.id,
            flaky_dead.attempt,
            flaky_dead.max_attempts
        ),
        (AlertKind::Dead, flaky, 3, 3)
    );
    assert_eq!(flaky_dead.name, "alerts_flaky");
    assert_eq!(flaky_dead.error, "smtp refused");
    assert!(!flaky_dead.permanent);
    // Attempt 1 raised nothing, and nothing else was raised.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), events.recv())
            .await
            .is_err()
    );
    runtime.shutdown(Duration::from_secs(5)).await;
}

/// A hook that panics, and one that hangs: the runtime keeps delivering, keeps running
/// tasks, and stops within its grace.
async fn a_bad_hook_neither_stops_nor_blocks(store: Arc<dyn Store>) {
    let (tx, mut events) = mpsc::unbounded_channel();
    let runtime = Runtime::builder(store, registry())
        .on_alert(move |event: TaskEvent| {
            assert_ne!(event.name, "alerts_doomed", "the hook panics on this one");
            let tx = tx.clone();
            async move {
                if event.name == "alerts_hangs" {
                    std::future::pending::<()>().await;
                }
                let _ = tx.send(event);
            }
        })
        .start();
    let client = runtime.client();
    client.enqueue(Doomed).await.expect("enqueue");
    // Delivered after the panicking call: the delivery survived it.
    let flaky = client.enqueue(Flaky).await.expect("enqueue");
    let event = next(&mut events).await;
    assert_eq!((event.id, event.kind), (flaky, AlertKind::Dead));
    // The hook now hangs; workers go on.
    let hangs = client.enqueue(Hangs).await.expect("enqueue");
    let record = tokio::time::timeout(Duration::from_secs(20), client.wait(hangs))
        .await
        .expect("failed within 20 s")
        .expect("wait");
    assert_eq!(record.state, axum_durable::TaskState::Failed);
    let fine = client.enqueue(Fine).await.expect("enqueue");
    let record = tokio::time::timeout(Duration::from_secs(20), client.wait(fine))
        .await
        .expect("completed within 20 s while the hook hangs")
        .expect("wait");
    assert_eq!(record.state, axum_durable::TaskState::Completed);
    // The hanging call is given up at shutdown: within the grace plus the alert drain.
    let started = std::time::Instant::now();
    runtime.shutdown(Duration::from_secs(1)).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "shutdown took {:?}",
        started.elapsed()
    );
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
async fn sqlite_dead_and_retrying_tasks_alert() {
    let (store, _file) = sqlite().await;
    dead_and_retrying_tasks_alert(store).await;
}

#[tokio::test]
async fn sqlite_a_bad_hook_neither_stops_nor_blocks() {
    let (store, _file) = sqlite().await;
    a_bad_hook_neither_stops_nor_blocks(store).await;
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
    async fn postgres_dead_and_retrying_tasks_alert() {
        let Some((store, _schema)) = db().await else {
            return;
        };
        dead_and_retrying_tasks_alert(store).await;
    }

    #[tokio::test]
    async fn postgres_a_bad_hook_neither_stops_nor_blocks() {
        let Some((store, _schema)) = db().await else {
            return;
        };
        a_bad_hook_neither_stops_nor_blocks(store).await;
    }
}
