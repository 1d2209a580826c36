//! `Client::wait`: a task's final state, from the process that runs it and from another.

use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_core::{Client, EnqueueOptions, Error, Runtime, TaskId, TaskState};

use super::tasks::{registry, Probe, Rejects, Work};
use super::TestDb;

const WAIT: Duration = Duration::from_secs(10);

async fn wait(client: &Client, id: TaskId) -> durable_core::store::TaskRecord {
    tokio::time::timeout(WAIT, client.wait(id))
        .await
        .expect("final state within the deadline")
        .expect("wait")
}

/// Completed, failed and cancelled tasks are returned with their final row; a task the store
/// does not hold is an error, not a hang.
pub async fn wait_returns_the_final_state(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = Runtime::builder(Arc::clone(&store), registry(&probe))
        .poll_interval(Duration::from_millis(50))
        .start();
    let client = rt.client();

    let id = client
        .enqueue(Work::sleeping("waited", 150))
        .await
        .expect("enqueue");
    let started = Instant::now();
    let done = wait(&client, id).await;
    assert_eq!(done.state, TaskState::Completed);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "waited for the run"
    );
    assert_eq!(probe.runs("waited"), 1);

    let id = client.enqueue(Rejects).await.expect("enqueue");
    let done = wait(&client, id).await;
    assert_eq!(done.state, TaskState::Failed);
    assert!(done
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("user no longer exists")));

    let later = EnqueueOptions::new().delay(Duration::from_secs(3600));
    let id = client
        .enqueue_with(Work::new("cancelled"), later)
        .await
        .expect("enqueue");
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.wait(id).await }
    });
    assert_eq!(
        client.cancel(id).await.expect("cancel"),
        durable_core::store::CancelOutcome::Cancelled
    );
    let done = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("woken by the cancel")
        .expect("join")
        .expect("wait");
    assert_eq!(done.state, TaskState::Cancelled);

    let unknown = TaskId::new();
    let error = client.wait(unknown).await.expect_err("not stored");
    assert!(
        matches!(error, Error::UnknownTask { id } if id == unknown),
        "{error:?}"
    );
    rt.shutdown(Duration::from_secs(2)).await;
}

/// Another process (its own store, no runtime) waits for a task this one runs.
pub async fn wait_sees_a_task_run_by_another_instance(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = Runtime::builder(Arc::clone(&store), registry(&probe)).start();
    let elsewhere = Client::new(db.another().await);
    let id = elsewhere
        .enqueue(Work::sleeping("elsewhere", 100))
        .await
        .expect("enqueue");
    let done = wait(&elsewhere, id).await;
    assert_eq!(done.state, TaskState::Completed);
    assert_eq!(probe.runs("elsewhere"), 1);
    rt.shutdown(Duration::from_secs(2)).await;
}
