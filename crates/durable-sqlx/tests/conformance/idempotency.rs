//! Idempotency keys: taking, replaying, conflicting, expiring, releasing, and the response
//! record committing with its request's tasks or not at all.

use std::time::Duration;

use durable_core::store::{
    KeyClaim, KeyTake, NewTask, ResponseRecord, Store, StoredResponse, WriteBatch,
};
use durable_core::{Client, Error};

use super::{row, TestDb};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn take(key: &str, fingerprint: &str, token: &str) -> KeyTake {
    KeyTake::new(key, fingerprint, token)
        .lock_for(Duration::from_secs(60))
        .keep_for(DAY)
}

fn created(body: &[u8]) -> StoredResponse {
    StoredResponse::new(201)
        .with_headers(vec![
            ("content-type".into(), "application/json".into()),
            ("location".into(), "/users/1".into()),
        ])
        .with_body(Some(body.to_vec()))
}

async fn claim(store: &std::sync::Arc<dyn Store>, take: &KeyTake) -> KeyClaim {
    store.take_key(take).await.expect("take key")
}

/// The first request takes the key; a retry meanwhile is told it runs, one with another body
/// that it mismatches; once the response is recorded with the request's task, a retry gets
/// that response — status, headers and body, byte for byte — and the task exists once.
pub async fn idempotency_first_running_mismatch_then_replay(db: &impl TestDb) {
    let store = db.store();
    let client = Client::new(std::sync::Arc::clone(&store));
    assert_eq!(
        claim(&store, &take("k1", "fp", "t1")).await,
        KeyClaim::Taken
    );
    assert_eq!(
        claim(&store, &take("k1", "fp", "t2")).await,
        KeyClaim::Running
    );
    assert_eq!(
        claim(&store, &take("k1", "other", "t3")).await,
        KeyClaim::Mismatch
    );
    let body = b"{\"user_id\":1}\x00\xff";
    let mut batch = client.batch();
    let id = batch
        .push(&super::tasks::Work::new("after signup"))
        .expect("push");
    batch
        .commit_with_response(ResponseRecord::new("k1", "t1", created(body), DAY))
        .await
        .expect("commit with response");
    row(&store, id).await;
    assert_eq!(
        claim(&store, &take("k1", "fp", "t4")).await,
        KeyClaim::Completed(created(body))
    );
    assert_eq!(
        claim(&store, &take("k1", "other", "t5")).await,
        KeyClaim::Mismatch,
        "a recorded key with another body is still a mismatch"
    );
    // Keys are independent, and a response without a body says so.
    assert_eq!(
        claim(&store, &take("k2", "fp", "u1")).await,
        KeyClaim::Taken
    );
    client
        .batch()
        .commit_with_response(ResponseRecord::new(
            "k2",
            "u1",
            StoredResponse::new(202),
            DAY,
        ))
        .await
        .expect("record alone");
    assert_eq!(
        claim(&store, &take("k2", "fp", "u2")).await,
        KeyClaim::Completed(StoredResponse::new(202))
    );
}

/// A released key runs again; a release under another token, or of a recorded key, does
/// nothing.
pub async fn idempotency_release_lets_a_retry_run(db: &impl TestDb) {
    let store = db.store();
    assert_eq!(claim(&store, &take("k", "fp", "t1")).await, KeyClaim::Taken);
    assert!(!store.release_key("k", "not-mine").await.expect("release"));
    assert_eq!(
        claim(&store, &take("k", "fp", "t2")).await,
        KeyClaim::Running
    );
    assert!(store.release_key("k", "t1").await.expect("release"));
    assert_eq!(claim(&store, &take("k", "fp", "t3")).await, KeyClaim::Taken);
    let client = Client::new(std::sync::Arc::clone(&store));
    client
        .batch()
        .commit_with_response(ResponseRecord::new("k", "t3", created(b"x"), DAY))
        .await
        .expect("record");
    assert!(!store.release_key("k", "t3").await.expect("release"));
    assert!(matches!(
        claim(&store, &take("k", "fp", "t4")).await,
        KeyClaim::Completed(_)
    ));
}

/// An expired key runs as new (even with another body); expired keys are purged in
/// bounded batches, live ones (and running ones within their lock) kept.
pub async fn idempotency_expired_keys_run_as_new_and_are_purged(db: &impl TestDb) {
    let store = db.store();
    let client = Client::new(std::sync::Arc::clone(&store));
    let expired = |key: &str, token: &str| {
        take(key, "fp", token)
            .keep_for(Duration::ZERO)
            .lock_for(Duration::ZERO)
    };
    // Kept for nothing but locked: a running key is not expired while its lock holds.
    let locked = take("locked", "fp", "t1").keep_for(Duration::ZERO);
    assert_eq!(claim(&store, &locked).await, KeyClaim::Taken);
    for key in ["a", "b", "c"] {
        assert_eq!(claim(&store, &expired(key, "t1")).await, KeyClaim::Taken);
    }
    client
        .batch()
        .commit_with_response(ResponseRecord::new(
            "a",
            "t1",
            created(b"1"),
            Duration::ZERO,
        ))
        .await
        .expect("record");
    // Recorded but expired: a new request, body or not the same, runs.
    assert_eq!(
        claim(&store, &take("a", "other", "t2")).await,
        KeyClaim::Taken
    );
    assert_eq!(
        claim(&store, &take("live", "fp", "t1")).await,
        KeyClaim::Taken
    );
    assert_eq!(store.purge_keys(1).await.expect("purge"), 1, "bounded");
    assert_eq!(store.purge_keys(100).await.expect("purge"), 1);
    assert_eq!(store.purge_keys(100).await.expect("purge"), 0);
    assert_eq!(
        claim(&store, &take("a", "other", "t3")).await,
        KeyClaim::Running
    );
    assert_eq!(
        claim(&store, &take("live", "fp", "t2")).await,
        KeyClaim::Running
    );
    assert_eq!(
        claim(&store, &take("locked", "fp", "t2")).await,
        KeyClaim::Running
    );
}

/// A first request that died before recording leaves its key running; past the lock a retry
/// with the same body takes it over (one with another body does not), and the dead holder's
/// late record is refused with its tasks.
pub async fn idempotency_lock_expiry_hands_the_key_over(db: &impl TestDb) {
    let store = db.store();
    let client = Client::new(std::sync::Arc::clone(&store));
    let short = |token: &str, fp: &str| take("k", fp, token).lock_for(Duration::ZERO);
    assert_eq!(claim(&store, &short("dead", "fp")).await, KeyClaim::Taken);
    assert_eq!(
        claim(&store, &short("other-body", "fp2")).await,
        KeyClaim::Mismatch
    );
    assert_eq!(
        claim(&store, &take("k", "fp", "retry")).await,
        KeyClaim::Taken
    );
    let mut late = client.batch();
    let id = late.push(&super::tasks::Work::new("late")).expect("push");
    let error = late
        .commit_with_response(ResponseRecord::new("k", "dead", created(b"late"), DAY))
        .await
        .expect_err("the key is no longer the dead request's");
    assert!(matches!(error, Error::Rejected { .. }), "{error:?}");
    assert!(
        store.get(id).await.expect("get").is_none(),
        "tasks rolled back"
    );
    assert_eq!(
        claim(&store, &take("k", "fp", "third")).await,
        KeyClaim::Running,
        "the retry still holds the key"
    );
}

/// The record commits with the tasks or not at all: an insert the database refuses leaves
/// the key running, unrecorded, and releasable.
pub async fn idempotency_record_and_tasks_commit_together(db: &impl TestDb) {
    let store = db.store();
    let existing = NewTask::new("work", "{}");
    store
        .write(WriteBatch::new().insert(std::slice::from_ref(&existing)))
        .await
        .inserted
        .expect("insert");
    assert_eq!(claim(&store, &take("k", "fp", "t1")).await, KeyClaim::Taken);
    let fresh = NewTask::new("work", "{}");
    let record = [ResponseRecord::new("k", "t1", created(b"ok"), DAY)];
    let refused = store
        .write(
            WriteBatch::new()
                .insert(&[fresh.clone(), existing.clone()])
                .responses(&record),
        )
        .await
        .inserted;
    assert!(refused.is_err(), "a duplicate id fails the insert");
    assert!(store.get(fresh.id).await.expect("get").is_none());
    assert_eq!(
        claim(&store, &take("k", "fp", "t2")).await,
        KeyClaim::Running,
        "no record without its tasks"
    );
    store
        .write(
            WriteBatch::new()
                .insert(std::slice::from_ref(&fresh))
                .responses(&record),
        )
        .await
        .inserted
        .expect("insert with record");
    row(&store, fresh.id).await;
    assert_eq!(
        claim(&store, &take("k", "fp", "t3")).await,
        KeyClaim::Completed(created(b"ok"))
    );
}
