//! The error history of a task: every failed attempt, whatever ended it (an error, a
//! timeout, an expired lease, a counted hand-back, a cancellation), the most recent
//! `MAX_ERRORS` kept.

use std::sync::Arc;
use std::time::Duration;

use durable_core::store::{
    CancelOutcome, ClaimRequest, ClaimedTask, NewTask, Store, MAX_ERRORS, REQUEUE_LIMIT,
};
use durable_core::{TaskState, WorkerId};

use super::clock::ClockDb;
use super::{row, TestDb, Writes};

const LEASE: Duration = Duration::from_secs(30);

async fn claim(
    store: &Arc<dyn Store>,
    owner: WorkerId,
    limit: usize,
    name: &str,
) -> Vec<ClaimedTask> {
    store
        .claim(&ClaimRequest::new(owner, LEASE, limit, [name]))
        .await
        .expect("claim")
}

/// Every failed attempt is appended to the history, the last `MAX_ERRORS` kept; a completion
/// leaves it as it is.
pub async fn admin_error_history_across_retries(db: &impl TestDb) {
    let store = db.store();
    let t = NewTask::new("work", "{}").with_max_attempts(40);
    store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    let owner = WorkerId::new();
    let rounds = MAX_ERRORS + 2;
    for i in 1..=rounds {
        let c = claim(&store, owner, 1, "work").await;
        assert_eq!(c.len(), 1, "round {i}");
        let message = format!("boom {i}");
        assert!(store
            .retry_attempt(&c[0].fence(), Duration::ZERO, &message)
            .await
            .expect("retry"));
    }
    let r = row(&store, t.id).await;
    assert_eq!(r.errors.len(), MAX_ERRORS);
    assert_eq!(r.errors[0].attempt, 3);
    assert_eq!(r.errors[0].message, "boom 3");
    let last = r.errors.last().expect("history");
    assert_eq!(last.attempt as usize, rounds);
    assert_eq!(last.message, format!("boom {rounds}"));
    assert_eq!(last.worker, Some(owner));
    assert!(r
        .errors
        .windows(2)
        .all(|w| w[0].at <= w[1].at && w[0].attempt < w[1].attempt));
    assert_eq!(
        r.last_error.as_deref(),
        Some(format!("boom {rounds}").as_str())
    );

    let c = claim(&store, owner, 1, "work").await;
    assert!(store.fail(&c[0].fence(), "dead").await.expect("fail"));
    let r = row(&store, t.id).await;
    assert_eq!(r.state, TaskState::Failed);
    assert_eq!(r.errors.len(), MAX_ERRORS);
    assert_eq!(r.errors.last().map(|e| e.message.as_str()), Some("dead"));

    // A failed attempt, then a completion: the history keeps the one failure.
    let u = NewTask::new("other", "{}").with_max_attempts(3);
    store
        .insert(std::slice::from_ref(&u))
        .await
        .expect("insert");
    let c = claim(&store, owner, 1, "other").await;
    assert!(store
        .retry_attempt(&c[0].fence(), Duration::ZERO, "once")
        .await
        .expect("retry"));
    let c = claim(&store, owner, 1, "other").await;
    assert_eq!(c[0].attempt, 2);
    assert_eq!(
        store.complete(&[c[0].fence()]).await.expect("complete"),
        [u.id]
    );
    let r = row(&store, u.id).await;
    assert_eq!(r.state, TaskState::Completed);
    assert_eq!(r.errors.len(), 1);
    assert_eq!(
        (r.errors[0].attempt, r.errors[0].message.as_str()),
        (1, "once")
    );
    assert!(r.started_at.is_some());
    assert_eq!(r.unique_key, None);
}

/// Lease expiry, a shutdown's hand-back past its limit and a cancelled attempt are failed
/// attempts too: each is in the history; a hand-back within the limit is not.
pub async fn admin_error_history_of_rescues_and_hand_backs(db: &impl ClockDb) {
    let store = db.store();
    let t = NewTask::new("work", "{}").with_max_attempts(10);
    store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    let owner = WorkerId::new();
    claim(&store, owner, 1, "work").await;
    db.clock()
        .advance(LEASE + Duration::from_secs(1))
        .await
        .expect("advance");
    store.rescue_expired().await.expect("rescue");
    let r = row(&store, t.id).await;
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].worker, Some(owner));
    assert_eq!(Some(r.errors[0].message.as_str()), r.last_error.as_deref());
    assert!(
        r.errors[0].message.contains("lease expired"),
        "{:?}",
        r.errors
    );

    // Hand-backs: the first ones do not count and record nothing; past the limit they do.
    let mut handed_back = 0;
    while row(&store, t.id).await.errors.len() == 1 {
        let c = claim(&store, owner, 1, "work").await;
        assert_eq!(
            store
                .requeue_attempts(&[c[0].fence()])
                .await
                .expect("requeue"),
            1
        );
        handed_back += 1;
        assert!(handed_back <= REQUEUE_LIMIT + 1);
    }
    assert_eq!(handed_back, REQUEUE_LIMIT + 1);
    let r = row(&store, t.id).await;
    assert!(r.errors[1].message.contains("shutdown"), "{:?}", r.errors);

    let c = claim(&store, owner, 1, "work").await;
    assert_eq!(
        store.cancel(t.id).await.expect("cancel"),
        CancelOutcome::Requested
    );
    assert!(row(&store, t.id).await.cancel_requested_at.is_some());
    assert!(store.fail(&c[0].fence(), "stopped").await.expect("fail"));
    let r = row(&store, t.id).await;
    assert_eq!(r.state, TaskState::Cancelled);
    assert_eq!(r.errors.len(), 3);
    assert_eq!(r.errors[2].message, "stopped");
}
