//! Claims that resume past what a held snapshot keeps (`claim_resume_after`), and the looks
//! before their position that find every row placed there.

use std::time::{Duration, Instant};

use durable_core::store::NewTask;
use durable_core::{TaskId, WorkerId};
use durable_sqlx::postgres::PostgresStore;

use super::conformance::Writes as _;
use super::history::request;
use super::{eventually, pg_db_or_skip, PgDb};

/// A store on `db` whose claims always resume (`claim_resume_after(ZERO)`).
async fn resuming(db: &PgDb) -> PostgresStore {
    PostgresStore::builder(&db.url)
        .schema(&db.schema)
        .claim_resume_after(Duration::ZERO)
        .connect()
        .await
        .expect("store")
}

/// A store whose claims always resume (`claim_resume_after(ZERO)`): a resumed claim starts at
/// its position, and the look a second later finds a row placed before it (a higher
/// priority): the walk from the head that follows takes it and the other one there (an
/// earlier `run_at`), so nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumed_claims_leave_nothing_behind() {
    let Some(db) = pg_db_or_skip().await else {
        return;
    };
    let store = resuming(&db).await;
    let first: Vec<NewTask> = (0..10).map(|_| NewTask::new("work", "{}")).collect();
    store.insert(&first).await.expect("insert");
    let owner = WorkerId::new();
    assert_eq!(
        store.claim(&request(owner, 5)).await.expect("claim").len(),
        5
    );

    // Placed before the position: a higher priority, and a run_at an hour ago.
    let urgent = NewTask::new("work", "{}").with_priority(5);
    let late =
        NewTask::new("work", "{}").with_run_at(chrono::Utc::now() - chrono::Duration::hours(1));
    let wanted = [urgent.id, late.id];
    store.insert(&[urgent, late]).await.expect("insert");
    let resumed = store.claim(&request(owner, 10)).await.expect("claim");
    assert_eq!(
        resumed.len(),
        5,
        "the rest of the first ten, from the position"
    );
    assert!(resumed.iter().all(|c| !wanted.contains(&c.id)));

    let found = eventually(
        "the rows before the position",
        Duration::from_secs(5),
        || {
            let store = store.clone();
            async move {
                let claimed = store.claim(&request(owner, 10)).await.expect("claim");
                (!claimed.is_empty()).then_some(claimed)
            }
        },
    )
    .await;
    let mut ids: Vec<TaskId> = found.iter().map(|c| c.id).collect();
    ids.sort();
    let mut expected = wanted.to_vec();
    expected.sort();
    assert_eq!(ids, expected, "the walk from the head found both");
    assert_eq!(
        found[0].id, wanted[0],
        "in claim order: the higher priority first"
    );
}

/// The looks each second read near the position: a row of its priority placed there within
/// `LATE` (10 s) of it — an enqueue that committed late — is found by the next one. A row
/// further back (a `run_at` an hour ago) is left to the full look, 30 s after the last walk
/// from the head: the near looks do not read that far, which is what keeps them cheap under
/// a held snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_looks_find_late_commits_and_the_full_look_the_rest() {
    let Some(db) = pg_db_or_skip().await else {
        return;
    };
    let store = resuming(&db).await;
    let owner = WorkerId::new();
    let first: Vec<NewTask> = (0..10).map(|_| NewTask::new("work", "{}")).collect();
    store.insert(&first).await.expect("insert");
    let walked = Instant::now();
    assert_eq!(
        store.claim(&request(owner, 10)).await.expect("claim").len(),
        10
    );

    let old =
        NewTask::new("work", "{}").with_run_at(chrono::Utc::now() - chrono::Duration::hours(1));
    let old_id = old.id;
    store.insert(&[old]).await.expect("insert");
    // Three seconds of claims: three near looks, none of which reads an hour back.
    while walked.elapsed() < Duration::from_secs(3) {
        let claimed = store.claim(&request(owner, 10)).await.expect("claim");
        assert!(
            claimed.is_empty(),
            "a near look read an hour back: {claimed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let found = claimed_soon(&store, owner, Duration::from_secs(40)).await;
    assert_eq!(found, [old_id], "the full look found it");
    assert!(
        walked.elapsed() >= Duration::from_secs(29),
        "found by a full look {:?} after the walk",
        walked.elapsed()
    );

    // The walk from the head that took it moved the position back an hour; fresh rows
    // claimed from there move it to now. The next full look is 30 s away.
    let fresh: Vec<NewTask> = (0..5).map(|_| NewTask::new("work", "{}")).collect();
    store.insert(&fresh).await.expect("insert");
    assert_eq!(
        store.claim(&request(owner, 10)).await.expect("claim").len(),
        5
    );
    let late =
        NewTask::new("work", "{}").with_run_at(chrono::Utc::now() - chrono::Duration::seconds(5));
    let late_id = late.id;
    let placed = Instant::now();
    store.insert(&[late]).await.expect("insert");
    let found = claimed_soon(&store, owner, Duration::from_secs(5)).await;
    assert_eq!(found, [late_id], "a near look found it");
    assert!(placed.elapsed() < Duration::from_secs(5));
}

/// What the first claim on `store` that takes anything within `deadline` took.
async fn claimed_soon(store: &PostgresStore, owner: WorkerId, deadline: Duration) -> Vec<TaskId> {
    eventually("a claim that takes a row", deadline, || {
        let store = store.clone();
        async move {
            let claimed = store.claim(&request(owner, 10)).await.expect("claim");
            (!claimed.is_empty()).then(|| claimed.iter().map(|c| c.id).collect())
        }
    })
    .await
}
