//! Claimed rows this version cannot read. PostgreSQL checks text on input (a UTF8 database
//! holds no invalid text), so what a binary cannot read is a column type it does not know —
//! every row alike, as after a downgrade. The claim statement has committed by then: its
//! answer must not fail, and the rows it could not read are left to their lease for a binary
//! that can (not failed: nothing is wrong with them).

use std::time::Duration;

use durable_core::store::{ClaimRequest, NewTask, WriteBatch};
use durable_core::{TaskState, WorkerId};

use crate::conformance::row;
use crate::conformance::Writes as _;
use durable_core::store::WorkerStore as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimed_rows_that_cannot_be_read_do_not_fail_the_write() {
    let Some(db) = crate::pg_db_or_skip().await else {
        return;
    };
    let store = db.store.clone();
    let waiting = NewTask::new("work", "{}");
    store
        .insert(std::slice::from_ref(&waiting))
        .await
        .expect("insert");
    // A column type this version does not read (it decodes max_attempts as int4).
    sqlx::query("ALTER TABLE durable_tasks ALTER COLUMN max_attempts TYPE bigint")
        .execute(db.pool())
        .await
        .expect("alter");
    let owner = WorkerId::new();
    let rows = vec![NewTask::new("work", "{}")];
    let request = ClaimRequest::new(owner, Duration::from_millis(200), 10, ["work"]);
    let outcome = store
        .write(WriteBatch::new().insert(&rows).claim(&request))
        .await;
    outcome.inserted.expect("the insert answers Ok");
    let claimed = outcome.claimed.expect("the claim answers Ok");
    assert!(claimed.is_empty(), "nothing readable to hand out");
    let capped = store
        .claim(
            &ClaimRequest::new(owner, Duration::from_millis(200), 10, ["work"]).cap("default", 10),
        )
        .await
        .expect("the capped claim answers Ok");
    assert!(capped.is_empty());
    for id in [waiting.id, rows[0].id] {
        let state: String = sqlx::query_scalar("SELECT state FROM durable_tasks WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_one(db.pool())
            .await
            .expect("state");
        assert_eq!(state, "processing", "left to its lease, not failed");
    }
    // A binary that reads the table gets them back once the lease expires. (Another
    // process: its own connections, whose prepared claim was not planned for the old type —
    // PostgreSQL refuses to run a prepared statement whose result type changed.)
    sqlx::query("ALTER TABLE durable_tasks ALTER COLUMN max_attempts TYPE integer")
        .execute(db.pool())
        .await
        .expect("alter back");
    let store = crate::conformance::TestDb::another(&db).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(store.rescue_expired().await.expect("rescue").requeued, 2);
    assert_eq!(row(&store, waiting.id).await.state, TaskState::Pending);
    let again = store
        .claim(&ClaimRequest::new(
            owner,
            Duration::from_secs(30),
            10,
            ["work"],
        ))
        .await
        .expect("claim");
    assert_eq!(again.len(), 2);
}
