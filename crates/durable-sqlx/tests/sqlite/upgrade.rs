//! A database migrated by an earlier version, with attempts in flight, upgraded.

use std::sync::Arc;
use std::time::Duration;

use durable_core::store::{NewTask, Store};
use durable_core::{TaskState, WorkerId};
use durable_sqlx::sqlite::SqliteStore;

use crate::conformance::row;
use durable_core::store::WorkerStore as _;

/// An attempt in flight when the schema gained `attempt_started_at` may have started: a lease
/// that expires on its last attempt still fails it, as it did before the upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_attempts_in_flight_across_the_upgrade_stay_fatal() {
    let file = durable_testkit::SqliteFile::new();
    let url = file.url();
    let store = SqliteStore::connect(&url).await.expect("connect");
    // The schema as the first release left it: its one migration, recorded where ours are.
    let first = tempfile::tempdir().expect("tempdir");
    let name = "0001_create_durable_tasks.sql";
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    std::fs::copy(source.join(name), first.path().join(name)).expect("copy");
    let mut old = sqlx::migrate::Migrator::new(first.path())
        .await
        .expect("migrator");
    old.dangerous_set_table_name(durable_sqlx::MIGRATIONS_TABLE);
    old.run(store.writer_pool()).await.expect("first migration");
    let owner = WorkerId::new();
    let lease = Duration::from_millis(50);
    let last = NewTask::new("work", "{}")
        .with_max_attempts(1)
        .claimed_by(owner, lease);
    let earlier = NewTask::new("work", "{}")
        .with_max_attempts(2)
        .claimed_by(owner, lease);
    let waiting = NewTask::new("work", "{}").with_max_attempts(1);
    insert_as_first_release(&store, &[&last, &earlier, &waiting]).await;

    store.migrate().await.expect("upgrade");
    tokio::time::sleep(lease + Duration::from_millis(30)).await;
    let report = store.rescue_expired().await.expect("rescue");
    assert_eq!((report.requeued, report.failed), (1, 1));
    let store: Arc<dyn Store> = Arc::new(store);
    assert_eq!(row(&store, last.id).await.state, TaskState::Failed);
    let r = row(&store, earlier.id).await;
    assert_eq!(
        (r.state, r.attempts, r.requeues),
        (TaskState::Pending, 1, 0)
    );
    assert_eq!(row(&store, waiting.id).await.state, TaskState::Pending);
}

/// Inserts rows as the first release wrote them, with its columns only (this build's insert
/// names columns later migrations added).
async fn insert_as_first_release(store: &SqliteStore, tasks: &[&NewTask]) {
    let now = chrono::Utc::now().timestamp_millis();
    for t in tasks {
        let claim = t.claimed_by;
        sqlx::query(
            "INSERT INTO durable_tasks (id, name, queue, payload, state, priority, attempts,
                 max_attempts, run_at, lease_owner, lease_expires_at, started_at, created_at,
                 updated_at)
             VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(t.id.to_string())
        .bind(&t.name)
        .bind(&t.queue)
        .bind(&t.payload)
        .bind(if claim.is_some() {
            "processing"
        } else {
            "pending"
        })
        .bind(i64::from(claim.is_some()))
        .bind(i64::from(t.max_attempts))
        .bind(now)
        .bind(claim.map(|c| c.owner.to_string()))
        .bind(claim.map(|c| now + i64::try_from(c.lease.as_millis()).expect("lease")))
        .bind(claim.map(|_| now))
        .bind(now)
        .bind(now)
        .execute(store.writer_pool())
        .await
        .expect("insert on the old schema");
    }
}
