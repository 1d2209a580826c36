//! A completion finds the rows it moves by their primary key, whatever the statistics say; so
//! does the heartbeat's check for cancellations.

use durable_core::store::Fence;
use durable_core::{TaskId, WorkerId};
use uuid::Uuid;

use super::claim_index::finish_most;
use super::pg_db_or_skip;

/// The live partition as the housekeeping's vacuum and analyze leave it in a healthy queue:
/// pages that held thousands of rows, a hundred of them left, each being processed. Planned
/// on those statistics, the update that moves a batch of completed rows joined the locked
/// rows to a sequential scan of the partition (a hash join, or a nested loop with the scan
/// as its inner side: one scan per fence). Under a held vacuum horizon the partition keeps
/// a version of every task finished since, and each such completion read them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_probe_the_primary_key_whatever_the_statistics() {
    let Some(db) = pg_db_or_skip().await else {
        return;
    };
    let fences = healthy_queue_of_held_tasks(&db).await;
    for batch in [1, 16, fences.len()] {
        let plan = db
            .store
            .explain_completion(&fences[..batch])
            .await
            .expect("explain");
        assert_probes_the_primary_key(&format!("a completion of {batch}"), &plan, &[]);
    }
}

/// The heartbeat's check for cancellations of the tasks an instance holds, on the same
/// statistics. It names the state it looks for, which is the lease sweep's index's own
/// condition: planned as a join, it read that whole index, where a held vacuum horizon
/// keeps an entry for every task finished since (100–175 ms two minutes into an idle
/// transaction at 2,000 tasks a second, growing with every task).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_checks_probe_the_primary_key_whatever_the_statistics() {
    let Some(db) = pg_db_or_skip().await else {
        return;
    };
    let fences = healthy_queue_of_held_tasks(&db).await;
    for batch in [1, 16, fences.len()] {
        let plan = db
            .store
            .explain_cancel_requested(&fences[..batch])
            .await
            .expect("explain");
        assert_probes_the_primary_key(
            &format!("a check of {batch}"),
            &plan,
            &["durable_tasks_keyed_held"],
        );
    }
}

/// `plan` (of `what`) reads the live partition by its primary key only: no scan of it, and
/// none of the indexes in `not`.
fn assert_probes_the_primary_key(what: &str, plan: &str, not: &[&str]) {
    assert!(
        !super::scans_a_table(plan),
        "{what} scans the live partition:\n{plan}"
    );
    for index in not {
        assert!(!plan.contains(index), "{what} reads {index}:\n{plan}");
    }
    assert!(
        plan.contains("durable_tasks_keyed_pkey"),
        "{what} does not probe the primary key:\n{plan}"
    );
}

/// The fences of the hundred `processing` rows left of 10,000 (see [`finish_most`]).
async fn healthy_queue_of_held_tasks(db: &super::PgDb) -> Vec<Fence> {
    let owner = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO durable_tasks_live (id, name, queue, payload, state, attempts, max_attempts,
            lease_owner, lease_expires_at, started_at)
         SELECT gen_random_uuid(), 'work', 'default', '{}', 'processing', 1, 3, $1,
             now() + interval '30 seconds', now()
         FROM generate_series(1, 10000)",
    )
    .bind(owner)
    .execute(db.pool())
    .await
    .expect("fill");
    finish_most(db.pool(), "true").await;
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM durable_tasks_live")
        .fetch_all(db.pool())
        .await
        .expect("the rows left");
    ids.iter()
        .map(|&id| Fence {
            id: TaskId::from_uuid(id),
            owner: WorkerId::from_uuid(owner),
            attempt: 1,
        })
        .collect()
}
