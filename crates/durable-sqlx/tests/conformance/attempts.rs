//! What counts as an attempt: shutdown requeues (free up to a bound) and last attempts whose
//! lease expired before they started.

use std::sync::Arc;
use std::time::Duration;

use durable_core::store::{
    ClaimRequest, ClaimedTask, NewTask, Outcome, Settle, Store, WriteBatch, REQUEUE_LIMIT,
};
use durable_core::{TaskState, WorkerId};

use super::Writes;
use super::{row, TestDb};

const LEASE: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_millis(50);

async fn claim_one(store: &Arc<dyn Store>, lease: Duration) -> ClaimedTask {
    let mut claimed = store
        .claim(&ClaimRequest::new(WorkerId::new(), lease, 1, ["work"]))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "one row due");
    claimed.remove(0)
}

/// The first [`REQUEUE_LIMIT`] shutdown requeues of a task do not count its attempt; later
/// ones do, and one on its last attempt leaves it `failed`: a task that always outlives the
/// grace period does not survive every deploy forever.
pub async fn requeue_counts_attempts_past_its_limit(db: &impl TestDb) {
    let store = db.store();
    let t = NewTask::new("work", "{}").with_max_attempts(2);
    store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    for n in 1..=REQUEUE_LIMIT {
        let c = claim_one(&store, LEASE).await;
        assert_eq!(c.attempt, 1, "requeue {n} did not count the attempt");
        assert_eq!(
            store.requeue_attempts(&[c.fence()]).await.expect("requeue"),
            1
        );
        let r = row(&store, t.id).await;
        assert_eq!(
            (r.state, r.attempts, r.requeues),
            (TaskState::Pending, 0, n)
        );
        assert!(r.last_error.is_none(), "{:?}", r.last_error);
    }
    // Past the limit: the interrupted attempt counts.
    let c = claim_one(&store, LEASE).await;
    assert_eq!(
        store.requeue_attempts(&[c.fence()]).await.expect("requeue"),
        1
    );
    let r = row(&store, t.id).await;
    assert_eq!(
        (r.state, r.attempts, r.requeues),
        (TaskState::Pending, 1, REQUEUE_LIMIT + 1)
    );
    assert!(r.lease_owner.is_none() && r.lease_expires_at.is_none());
    let error = r.last_error.expect("the counted requeue is recorded");
    assert!(
        error.contains(&format!("stopped by shutdown {} times", REQUEUE_LIMIT + 1)),
        "{error}"
    );
    // The last attempt, stopped by shutdown once more: dead.
    let c = claim_one(&store, LEASE).await;
    assert_eq!(c.attempt, 2);
    assert_eq!(
        store.requeue_attempts(&[c.fence()]).await.expect("requeue"),
        1
    );
    let r = row(&store, t.id).await;
    assert_eq!(
        (r.state, r.attempts, r.requeues),
        (TaskState::Failed, 2, REQUEUE_LIMIT + 2)
    );
    assert!(r.finished_at.is_some() && r.lease_expires_at.is_none());
    let error = r.last_error.expect("error");
    assert!(
        error.contains(&format!("stopped by shutdown {} times", REQUEUE_LIMIT + 2))
            && error.contains("no attempts left"),
        "{error}"
    );
    assert!(
        store
            .claim(&ClaimRequest::new(WorkerId::new(), LEASE, 1, ["work"]))
            .await
            .expect("claim")
            .is_empty(),
        "a failed row is not claimed"
    );
    // A stale fence changes nothing, the counter included.
    assert_eq!(
        store.requeue_attempts(&[c.fence()]).await.expect("requeue"),
        0
    );
    assert_eq!(row(&store, t.id).await.requeues, REQUEUE_LIMIT + 2);
}

/// A last attempt whose lease expired before it was marked started (its worker died between
/// the claim and the start) is handed back without counting; one marked started fails as
/// before. Rows inserted already claimed (local dispatch) start unmarked too.
pub async fn rescue_spares_a_last_attempt_that_never_started(db: &impl TestDb) {
    let store = db.store();
    let never = NewTask::new("work", "{}").with_max_attempts(1);
    store
        .insert(std::slice::from_ref(&never))
        .await
        .expect("insert");
    let claimed = claim_one(&store, SHORT).await;
    let started = NewTask::new("work", "{}").with_max_attempts(1);
    store
        .insert(std::slice::from_ref(&started))
        .await
        .expect("insert");
    let running = claim_one(&store, SHORT).await;
    assert!(store.mark_started(&running.fence()).await.expect("mark"));
    let owner = WorkerId::new();
    let local = NewTask::new("work", "{}")
        .with_max_attempts(1)
        .claimed_by(owner, SHORT);
    store
        .insert(std::slice::from_ref(&local))
        .await
        .expect("insert claimed");
    // A stale fence marks nothing.
    let mut stale = claimed.fence();
    stale.owner = WorkerId::new();
    assert!(!store.mark_started(&stale).await.expect("mark stale"));

    tokio::time::sleep(SHORT + Duration::from_millis(30)).await;
    let report = store.rescue_expired().await.expect("rescue");
    assert_eq!((report.requeued, report.failed), (2, 1));
    for id in [never.id, local.id] {
        let r = row(&store, id).await;
        assert_eq!((r.state, r.attempts), (TaskState::Pending, 0), "{id}");
        assert!(r.lease_owner.is_none() && r.lease_expires_at.is_none());
        let error = r.last_error.expect("recorded");
        assert!(
            error.contains("never started") && error.contains("not counted"),
            "{error}"
        );
    }
    let r = row(&store, started.id).await;
    assert_eq!((r.state, r.attempts), (TaskState::Failed, 1));
    assert!(
        r.last_error
            .as_deref()
            .is_some_and(|e| e.contains("no attempts left")),
        "{:?}",
        r.last_error
    );
    // The spared attempt runs again, as the last one; a marker of an earlier attempt does not
    // carry over to a new claim.
    let again = claim_one(&store, SHORT).await;
    assert_eq!((again.attempt, again.max_attempts), (1, 1));
    assert!(store.mark_started(&again.fence()).await.expect("mark"));
    let c = claim_one(&store, LEASE).await;
    assert_eq!(c.attempt, 1);
    tokio::time::sleep(SHORT + Duration::from_millis(30)).await;
    let report = store.rescue_expired().await.expect("rescue");
    assert_eq!(
        (report.requeued, report.failed),
        (0, 1),
        "only the started one"
    );
    assert_eq!(row(&store, again.id).await.state, TaskState::Failed);
    assert_eq!(row(&store, c.id).await.state, TaskState::Processing);
}

/// An attempt that is not the last one is rescued and counted as before, marker or not.
pub async fn rescue_counts_earlier_attempts(db: &impl TestDb) {
    let store = db.store();
    let t = NewTask::new("work", "{}").with_max_attempts(2);
    store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    let first = claim_one(&store, SHORT).await;
    tokio::time::sleep(SHORT + Duration::from_millis(30)).await;
    assert_eq!(store.rescue_expired().await.expect("rescue").requeued, 1);
    let r = row(&store, t.id).await;
    assert_eq!((r.state, r.attempts), (TaskState::Pending, 1));
    assert!(
        r.last_error
            .as_deref()
            .is_some_and(|e| e.contains(&format!("lease expired during attempt {}", first.attempt))),
        "{:?}",
        r.last_error
    );
}

/// A completion and a shutdown's hand-back of the same attempt in one writer cycle (the
/// attempt finished while shutdown was collecting what to hand back): the attempt ran, so
/// the completion must win and the task must not run again.
pub async fn completion_wins_over_a_hand_back_in_one_cycle(db: &impl TestDb) {
    let store = db.store();
    for round in 0..20 {
        let t = NewTask::new("work", format!(r#"{{"key":"both-{round}"}}"#));
        store
            .insert(std::slice::from_ref(&t))
            .await
            .expect("insert");
        let claimed = store
            .claim(&ClaimRequest::new(WorkerId::new(), LEASE, 1, ["work"]))
            .await
            .expect("claim");
        let fence = claimed[0].fence();
        let handed_back = [Settle::new(fence, Outcome::Requeued)];
        let outcome = store
            .write(WriteBatch::new().complete(&[fence]).settle(&handed_back))
            .await;
        assert_eq!(outcome.completed.expect("complete"), vec![t.id]);
        assert!(outcome.settled.expect("settle").is_empty());
        let r = row(&store, t.id).await;
        assert_eq!(r.state, TaskState::Completed, "round {round}: {r:?}");
        assert_eq!((r.attempts, r.requeues), (1, 0), "round {round}: {r:?}");
    }
}
