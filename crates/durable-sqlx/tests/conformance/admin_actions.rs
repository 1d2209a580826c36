//! The operator's actions: retry, delete and requeue, fenced by the row as the operator saw
//! it ([`Seen`]), and in bulk.

use std::sync::Arc;
use std::time::Duration;

use durable_core::client::ClientBuilder;
use durable_core::store::{
    ActionOutcome, CancelOutcome, ClaimRequest, ClaimedTask, Fence, NewTask, RetryFailed, Seen,
    Store, StuckQuery, Wakeup,
};
use durable_core::{EnqueueOptions, TaskId, TaskState, WorkerId};
use futures_util::StreamExt as _;

use super::clock::ClockDb;
use super::tasks::Work;
use super::{row, TestDb, Writes};

const LEASE: Duration = Duration::from_secs(30);

async fn claim(store: &Arc<dyn Store>, owner: WorkerId, limit: usize) -> Vec<ClaimedTask> {
    store
        .claim(&ClaimRequest::new(owner, LEASE, limit, ["work"]))
        .await
        .expect("claim")
}

/// Inserts a `work` task allowed `max` attempts, runs it once and fails it: `failed`.
async fn failed_task(store: &Arc<dyn Store>, max: u32) -> TaskId {
    let t = NewTask::new("work", "{}").with_max_attempts(max);
    store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    let c = claim(store, WorkerId::new(), 1).await;
    assert_eq!(c.len(), 1);
    assert!(store.fail(&c[0].fence(), "boom").await.expect("fail"));
    t.id
}

fn conflict(state: TaskState, attempts: u32) -> ActionOutcome {
    ActionOutcome::Conflict { state, attempts }
}

/// A failed or cancelled task goes back to `pending` with one more attempt, its history
/// kept; a stale `Seen`, another state or an unknown id changes nothing.
pub async fn admin_retry_puts_failed_and_cancelled_tasks_back(db: &impl TestDb) {
    let store = db.store();
    assert_eq!(
        store.retry(TaskId::new(), None).await.expect("retry"),
        ActionOutcome::NotFound
    );
    let id = failed_task(&store, 1).await;
    let stale = Seen::new(TaskState::Failed, 0);
    assert_eq!(
        store.retry(id, Some(stale)).await.expect("retry"),
        conflict(TaskState::Failed, 1)
    );
    assert_eq!(row(&store, id).await.state, TaskState::Failed);

    let seen = Seen::new(TaskState::Failed, 1);
    assert_eq!(
        store.retry(id, Some(seen)).await.expect("retry"),
        ActionOutcome::Done
    );
    let r = row(&store, id).await;
    assert_eq!(r.state, TaskState::Pending);
    assert_eq!((r.attempts, r.max_attempts), (1, 2));
    assert_eq!(r.finished_at, None);
    assert_eq!(r.errors.len(), 1);
    assert!(r.run_at <= store.now());
    // Pressed twice: the second finds it pending.
    assert_eq!(
        store.retry(id, Some(seen)).await.expect("retry"),
        conflict(TaskState::Pending, 1)
    );
    assert_eq!(
        store.retry(id, None).await.expect("retry"),
        conflict(TaskState::Pending, 1)
    );
    let c = claim(&store, WorkerId::new(), 1).await;
    assert_eq!((c[0].id, c[0].attempt), (id, 2));

    let t = NewTask::new("work", "{}");
    store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    assert_eq!(
        store.cancel(t.id).await.expect("cancel"),
        CancelOutcome::Cancelled
    );
    assert_eq!(
        store.retry(t.id, None).await.expect("retry"),
        ActionOutcome::Done
    );
    let r = row(&store, t.id).await;
    assert_eq!(
        (r.state, r.max_attempts),
        (TaskState::Pending, t.max_attempts.max(1))
    );
}

/// A retry that would make a second live task with one unique key reports the holder and
/// changes nothing; the bulk retry skips such tasks. Once the key is free, both work.
pub async fn admin_retry_respects_unique_keys(db: &impl TestDb) {
    let store = db.store();
    let client = ClientBuilder::new(db.store()).build();
    let keyed = || EnqueueOptions::new().unique_key("only-one");
    let first = client
        .enqueue_with(Work::new("k"), keyed())
        .await
        .expect("enqueue");
    let c = claim(&store, WorkerId::new(), 1).await;
    assert!(store.fail(&c[0].fence(), "boom").await.expect("fail"));
    let second = client
        .enqueue_with(Work::new("k"), keyed())
        .await
        .expect("enqueue");
    assert_ne!(second, first, "a failed task does not hold the key");
    assert!(row(&store, first).await.unique_key.is_some());

    assert_eq!(
        store.retry(first, None).await.expect("retry"),
        ActionOutcome::KeyHeld { holder: second }
    );
    assert_eq!(
        store
            .retry_failed(&RetryFailed::new(10))
            .await
            .expect("bulk"),
        0
    );
    assert_eq!(row(&store, first).await.state, TaskState::Failed);

    let c = claim(&store, WorkerId::new(), 1).await;
    assert_eq!(c[0].id, second);
    assert_eq!(
        store.complete(&[c[0].fence()]).await.expect("complete"),
        [second]
    );
    assert_eq!(
        store
            .retry_failed(&RetryFailed::new(10))
            .await
            .expect("bulk"),
        1
    );
    assert_eq!(row(&store, first).await.state, TaskState::Pending);
}

/// Failed tasks whose unique key a live task holds do not use up the bulk retry's `limit`:
/// older ones waiting for their key never keep the retryable ones behind them from a retry.
pub async fn admin_retry_failed_passes_over_held_keys(db: &impl TestDb) {
    let store = db.store();
    let client = ClientBuilder::new(db.store()).build();
    let keyed = || EnqueueOptions::new().unique_key("held");
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let id = client
            .enqueue_with(Work::new("k"), keyed())
            .await
            .expect("enqueue");
        let c = claim(&store, WorkerId::new(), 1).await;
        assert_eq!(c[0].id, id);
        assert!(store.fail(&c[0].fence(), "boom").await.expect("fail"));
        waiting.push(id);
    }
    let holder = client
        .enqueue_with(Work::new("k"), keyed())
        .await
        .expect("enqueue");
    // Failed after the keyed ones: behind them in the bulk retry's order.
    let free = failed_task_behind(&store, holder).await;

    assert_eq!(
        store
            .retry_failed(&RetryFailed::new(2))
            .await
            .expect("bulk"),
        1,
        "the free failure is retried though older ones wait for their key"
    );
    assert_eq!(row(&store, free).await.state, TaskState::Pending);
    for id in waiting {
        assert_eq!(row(&store, id).await.state, TaskState::Failed);
    }
    assert_eq!(row(&store, holder).await.state, TaskState::Pending);
}

/// A failed `work` task without a key, failed after the others; `holder` (pending) is left
/// unclaimed.
async fn failed_task_behind(store: &Arc<dyn Store>, holder: TaskId) -> TaskId {
    let t = NewTask::new("other", "{}");
    store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    let c = store
        .claim(&ClaimRequest::new(WorkerId::new(), LEASE, 1, ["other"]))
        .await
        .expect("claim");
    assert_eq!(c[0].id, t.id);
    assert_ne!(c[0].id, holder);
    assert!(store.fail(&c[0].fence(), "boom").await.expect("fail"));
    t.id
}

/// Operators retrying at once, the same task or two failed tasks of one unique key: exactly
/// one retry is done, the others answer why not, and one live task holds the key.
pub async fn admin_concurrent_retries_make_one_live_task(db: &impl TestDb) {
    let store = db.store();
    let client = ClientBuilder::new(db.store()).build();
    for round in 0..5 {
        let key = format!("race-{round}");
        let mut failed = Vec::new();
        for _ in 0..2 {
            let id = client
                .enqueue_with(
                    Work::new("k"),
                    EnqueueOptions::new().unique_key(key.as_str()),
                )
                .await
                .expect("enqueue");
            let c = claim(&store, WorkerId::new(), 1).await;
            assert_eq!(c[0].id, id);
            assert!(store.fail(&c[0].fence(), "boom").await.expect("fail"));
            failed.push(id);
        }
        let seen = Some(Seen::new(TaskState::Failed, 1));
        let calls = [failed[0], failed[1], failed[0], failed[1]].map(|id| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.retry(id, seen).await.expect("retry") })
        });
        let mut done = 0;
        for call in calls {
            match call.await.expect("join") {
                ActionOutcome::Done => done += 1,
                ActionOutcome::KeyHeld { holder } => assert!(failed.contains(&holder)),
                ActionOutcome::Conflict { state, attempts } => {
                    assert_eq!((state, attempts), (TaskState::Pending, 1));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(done, 1, "round {round}: exactly one retry is done");
        let mut states = Vec::new();
        for id in &failed {
            states.push(row(&store, *id).await.state);
        }
        states.sort_by_key(|s| s.as_str());
        assert_eq!(states, [TaskState::Failed, TaskState::Pending]);
        // The retried task runs again, and leaves the key to the next round's tasks.
        let c = claim(&store, WorkerId::new(), 1).await;
        assert_eq!(c.len(), 1);
        assert!(failed.contains(&c[0].id));
        assert_eq!(c[0].attempt, 2);
        assert_eq!(
            store.complete(&[c[0].fence()]).await.expect("complete"),
            [c[0].id]
        );
    }
}

/// The bulk retry takes the oldest failures first, `limit` per call, of the chosen type.
pub async fn admin_retry_failed_oldest_first(db: &impl TestDb) {
    let store = db.store();
    let mut failed = Vec::new();
    for _ in 0..3 {
        failed.push(failed_task(&store, 1).await);
    }
    let other = NewTask::new("other", "{}");
    store
        .insert(std::slice::from_ref(&other))
        .await
        .expect("insert");
    let c = store
        .claim(&ClaimRequest::new(WorkerId::new(), LEASE, 1, ["other"]))
        .await
        .expect("claim");
    assert!(store.fail(&c[0].fence(), "boom").await.expect("fail"));

    let work = RetryFailed::new(2).name("work");
    assert_eq!(store.retry_failed(&work).await.expect("bulk"), 2);
    let states: Vec<TaskState> = futures_util::future::join_all(failed.iter().map(|id| {
        let store = Arc::clone(&store);
        async move { row(&store, *id).await.state }
    }))
    .await;
    assert_eq!(
        states,
        [TaskState::Pending, TaskState::Pending, TaskState::Failed]
    );
    assert_eq!(store.retry_failed(&work).await.expect("bulk"), 1);
    assert_eq!(store.retry_failed(&work).await.expect("bulk"), 0);
    assert_eq!(row(&store, other.id).await.state, TaskState::Failed);
    assert_eq!(
        store
            .retry_failed(&RetryFailed::new(5))
            .await
            .expect("bulk"),
        1
    );
}

/// Any task but a running one is deleted, with its steps; a stale `Seen` changes nothing.
pub async fn admin_delete_removes_the_task_and_its_steps(db: &impl TestDb) {
    let store = db.store();
    assert_eq!(
        store.delete(TaskId::new(), None).await.expect("delete"),
        ActionOutcome::NotFound
    );
    let t = NewTask::new("work", "{}");
    store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    let c = claim(&store, WorkerId::new(), 1).await;
    assert!(store
        .save_step(&c[0].fence(), "charge", "42")
        .await
        .expect("step"));
    assert_eq!(
        store.delete(t.id, None).await.expect("delete"),
        conflict(TaskState::Processing, 1)
    );
    assert_eq!(
        store.complete(&[c[0].fence()]).await.expect("complete"),
        [t.id]
    );
    assert_eq!(store.steps(t.id).await.expect("steps").len(), 1);
    let stale = Seen::new(TaskState::Processing, 1);
    assert_eq!(
        store.delete(t.id, Some(stale)).await.expect("delete"),
        conflict(TaskState::Completed, 1)
    );
    let seen = Seen::new(TaskState::Completed, 1);
    assert_eq!(
        store.delete(t.id, Some(seen)).await.expect("delete"),
        ActionOutcome::Done
    );
    assert!(store.get(t.id).await.expect("get").is_none());
    assert!(store.steps(t.id).await.expect("steps").is_empty());
    assert_eq!(
        store.delete(t.id, None).await.expect("delete"),
        ActionOutcome::NotFound
    );
}

/// A requeue hands a running task back, not counted as a failure, and ends the attempt's
/// fence: its late completion and heartbeat are refused, even when the same instance
/// claims the task again.
pub async fn admin_requeue_ends_the_running_attempts_fence(db: &impl TestDb) {
    let store = db.store();
    assert_eq!(
        store.requeue(TaskId::new(), None).await.expect("requeue"),
        ActionOutcome::NotFound
    );
    let t = NewTask::new("work", "{}").with_max_attempts(2);
    store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    assert_eq!(
        store.requeue(t.id, None).await.expect("requeue"),
        conflict(TaskState::Pending, 0)
    );
    let owner = WorkerId::new();
    let old = claim(&store, owner, 1).await.remove(0).fence();
    let stale = Seen::new(TaskState::Processing, 0);
    assert_eq!(
        store.requeue(t.id, Some(stale)).await.expect("requeue"),
        conflict(TaskState::Processing, 1)
    );
    let seen = Seen::new(TaskState::Processing, 1);
    assert_eq!(
        store.requeue(t.id, Some(seen)).await.expect("requeue"),
        ActionOutcome::Done
    );
    let r = row(&store, t.id).await;
    assert_eq!(r.state, TaskState::Pending);
    assert_eq!((r.lease_owner, r.requeues), (None, 1));
    assert_eq!(
        (r.attempts, r.max_attempts),
        (1, 3),
        "the attempt is not counted"
    );
    assert!(r.errors.is_empty() && r.last_error.is_none());

    assert!(store.complete(&[old]).await.expect("complete").is_empty());
    assert!(store
        .heartbeat(&[old], LEASE)
        .await
        .expect("heartbeat")
        .is_empty());
    let new = claim(&store, owner, 1).await.remove(0).fence();
    assert_eq!(new.attempt, 2);
    assert!(
        store.complete(&[old]).await.expect("complete").is_empty(),
        "old fence"
    );
    assert_eq!(store.complete(&[new]).await.expect("complete"), [t.id]);
    assert_eq!(row(&store, t.id).await.state, TaskState::Completed);
}

/// Stuck attempts: those running for longer than asked, or, with zero, whose lease expired.
pub async fn admin_requeue_stuck_attempts(db: &impl ClockDb) {
    let store = db.store();
    let rows: Vec<NewTask> = (0..3).map(|_| NewTask::new("work", "{}")).collect();
    store.insert(&rows).await.expect("insert");
    let c = claim(&store, WorkerId::new(), 2).await;
    assert_eq!(c.len(), 2);
    let ten_minutes = StuckQuery::new(Duration::from_secs(600), 10);
    assert_eq!(store.requeue_stuck(&ten_minutes).await.expect("stuck"), 0);
    assert_eq!(
        store
            .requeue_stuck(&StuckQuery::new(Duration::ZERO, 10))
            .await
            .expect("stuck"),
        0
    );

    db.clock()
        .advance(Duration::from_secs(601))
        .await
        .expect("advance");
    let late = claim(&store, WorkerId::new(), 1).await;
    assert_eq!(late.len(), 1);
    let other_type = StuckQuery::new(Duration::from_secs(600), 10).name("other");
    assert_eq!(store.requeue_stuck(&other_type).await.expect("stuck"), 0);
    assert_eq!(store.requeue_stuck(&ten_minutes).await.expect("stuck"), 2);
    for claimed in &c {
        let r = row(&store, claimed.id).await;
        assert_eq!(
            (r.state, r.requeues, r.lease_owner),
            (TaskState::Pending, 1, None)
        );
    }
    assert_eq!(row(&store, late[0].id).await.state, TaskState::Processing);

    db.clock()
        .advance(LEASE + Duration::from_secs(1))
        .await
        .expect("advance");
    assert_eq!(
        store
            .requeue_stuck(&StuckQuery::new(Duration::ZERO, 10))
            .await
            .expect("stuck"),
        1
    );
    assert_eq!(row(&store, late[0].id).await.state, TaskState::Pending);
}

/// A task inserted already running (no wakeup: the row is not due), then failed.
async fn quietly_failed(store: &Arc<dyn Store>) -> TaskId {
    let owner = WorkerId::new();
    let t = NewTask::new("work", "{}").claimed_by(owner, LEASE);
    store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    let fence = Fence {
        id: t.id,
        owner,
        attempt: 1,
    };
    assert!(store.fail(&fence, "boom").await.expect("fail"));
    t.id
}

/// A retry and a requeue wake the runtimes waiting on the store (PostgreSQL: a `NOTIFY` to
/// every instance; SQLite: the runtimes of this process), so the task runs now rather than
/// at the next poll.
pub async fn admin_retry_and_requeue_wake_runtimes(db: &impl TestDb) {
    let store = db.store();
    let mut wakeups = store.wakeups();
    // The listener (PostgreSQL) connects in the background: act until a wakeup arrives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let woken = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no wakeup after a retry"
        );
        let id = quietly_failed(&store).await;
        assert_eq!(
            store.retry(id, None).await.expect("retry"),
            ActionOutcome::Done
        );
        if let Ok(Some(w)) = tokio::time::timeout(Duration::from_millis(500), wakeups.next()).await
        {
            break w;
        }
    };
    assert_eq!(woken, Wakeup::Due);
    // Drain what earlier rounds sent, then a requeue wakes them too.
    while tokio::time::timeout(Duration::from_millis(200), wakeups.next())
        .await
        .is_ok()
    {}
    let owner = WorkerId::new();
    let t = NewTask::new("work", "{}").claimed_by(owner, LEASE);
    store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    assert_eq!(
        store.requeue(t.id, None).await.expect("requeue"),
        ActionOutcome::Done
    );
    let woken = tokio::time::timeout(Duration::from_secs(5), wakeups.next())
        .await
        .expect("a requeue's wakeup");
    assert_eq!(woken, Some(Wakeup::Due));
}
