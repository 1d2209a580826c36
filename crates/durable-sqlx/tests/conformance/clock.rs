//! The test clock: moving a store's time forward makes delays, retries' backoff and leases
//! end, on every backend.

use std::sync::Arc;
use std::time::Duration;

use durable_core::store::{ClaimRequest, NewTask, Store};
use durable_core::{Client, EnqueueOptions, Runtime, TaskState, WorkerId};
use durable_sqlx::testing::TestClock;

use super::tasks::{registry, Probe, Work};
use super::{row, wait_state, TestDb, Writes as _};

/// A database whose store's time a test can move.
pub trait ClockDb: TestDb {
    /// The clock of [`TestDb::store`].
    fn clock(&self) -> TestClock;
}

const HOUR: Duration = Duration::from_secs(3600);

fn claim_request() -> ClaimRequest {
    ClaimRequest::new(WorkerId::new(), Duration::from_secs(60), 10, ["work"])
}

async fn backlog(store: &Arc<dyn Store>) -> u64 {
    store.backlog().await.expect("backlog")
}

/// A delayed task is due once the clock passes its delay; a delay given after an advance
/// counts from the moved time, not from the system clock.
pub async fn advance_makes_a_delayed_task_due(db: &impl ClockDb) {
    let store = db.store();
    let clock = db.clock();
    let client = Client::new(Arc::clone(&store));
    let later = EnqueueOptions::new().delay(HOUR);
    let id = client
        .enqueue_with(Work::new("later"), later.clone())
        .await
        .expect("enqueue");
    assert_eq!(backlog(&store).await, 0, "not due before the advance");
    assert!(store
        .claim(&claim_request())
        .await
        .expect("claim")
        .is_empty());

    clock.advance(HOUR).await.expect("advance");
    assert_eq!(clock.offset(), HOUR);
    assert_eq!(backlog(&store).await, 1, "due after the advance");
    let claimed = store.claim(&claim_request()).await.expect("claim");
    assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), [id]);

    // An hour ahead of the system clock now: a new hour's delay ends an hour after that.
    let id = client
        .enqueue_with(Work::new("later again"), later)
        .await
        .expect("enqueue");
    assert_eq!(backlog(&store).await, 0, "counted from the moved time");
    let stored = row(&store, id).await;
    assert!(stored.run_at >= clock.now() + chrono::Duration::minutes(59));
    clock.advance(HOUR).await.expect("advance");
    assert_eq!(backlog(&store).await, 1);
}

/// A retry waiting out its backoff is due once the clock passes it.
pub async fn advance_makes_a_retry_due(db: &impl ClockDb) {
    let store = db.store();
    let task = NewTask::new("work", r#"{"key":"retried"}"#).with_max_attempts(3);
    store
        .insert(std::slice::from_ref(&task))
        .await
        .expect("insert");
    let first = store.claim(&claim_request()).await.expect("claim");
    assert_eq!(first.len(), 1);
    assert!(store
        .retry_attempt(&first[0].fence(), HOUR, "planned failure")
        .await
        .expect("retry"));
    assert_eq!(backlog(&store).await, 0, "waiting out its backoff");
    assert!(store
        .claim(&claim_request())
        .await
        .expect("claim")
        .is_empty());

    db.clock()
        .advance(HOUR + Duration::from_secs(1))
        .await
        .expect("advance");
    let second = store.claim(&claim_request()).await.expect("claim");
    assert_eq!(second.len(), 1, "due after the advance");
    assert_eq!((second[0].id, second[0].attempt), (task.id, 2));
}

/// A lease ends when the clock passes it: the rescue hands the task back, another worker
/// claims it, and the first owner's heartbeat finds it lost.
pub async fn advance_expires_a_lease_for_rescue(db: &impl ClockDb) {
    let store = db.store();
    let task = NewTask::new("work", r#"{"key":"leased"}"#).with_max_attempts(3);
    store
        .insert(std::slice::from_ref(&task))
        .await
        .expect("insert");
    let held = store.claim(&claim_request()).await.expect("claim");
    assert_eq!(held.len(), 1);
    let report = store.rescue_expired().await.expect("rescue");
    assert_eq!((report.requeued, report.failed), (0, 0), "the lease holds");

    db.clock()
        .advance(Duration::from_secs(61))
        .await
        .expect("advance");
    let report = store.rescue_expired().await.expect("rescue");
    assert_eq!(
        (report.requeued, report.failed),
        (1, 0),
        "the lease expired"
    );
    assert_eq!(row(&store, task.id).await.state, TaskState::Pending);
    let again = store.claim(&claim_request()).await.expect("claim");
    assert_eq!((again[0].id, again[0].attempt), (task.id, 2));
    let kept = store
        .heartbeat(&[held[0].fence()], Duration::from_secs(60))
        .await
        .expect("heartbeat");
    assert!(kept.is_empty(), "the first owner lost the task");
}

/// End to end: a runtime runs a delayed task, and a retry with a long backoff, once the
/// clock passes them.
pub async fn runtime_runs_delayed_tasks_and_retries_after_advance(db: &impl ClockDb) {
    let probe = Probe::default();
    let store = db.store();
    let clock = db.clock();
    let runtime = Runtime::builder(Arc::clone(&store), registry(&probe))
        .poll_interval(Duration::from_millis(50))
        .start();
    let client = runtime.client();
    let delayed = client
        .enqueue_with(Work::new("delayed"), EnqueueOptions::new().delay(HOUR))
        .await
        .expect("enqueue");
    // Fails once; its retry waits out the backoff (20 ms), moved past by the advance too.
    let flaky = Work {
        fail_first: 1,
        ..Work::new("flaky")
    };
    let flaky = client
        .enqueue_with(flaky, EnqueueOptions::new().delay(2 * HOUR))
        .await
        .expect("enqueue");
    assert_eq!(row(&store, delayed).await.state, TaskState::Pending);

    clock.advance(HOUR).await.expect("advance");
    wait_state(
        &store,
        delayed,
        TaskState::Completed,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(probe.runs("flaky"), 0, "still an hour to wait");
    clock.advance(HOUR).await.expect("advance");
    let done = wait_state(&store, flaky, TaskState::Completed, Duration::from_secs(10)).await;
    assert_eq!(done.attempts, 2);
    assert_eq!(probe.runs("delayed"), 1);
    runtime.shutdown(Duration::from_secs(5)).await;
}
