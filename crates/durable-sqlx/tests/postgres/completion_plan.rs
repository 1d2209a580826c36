//! A completion finds the rows it moves by their primary key, whatever the statistics say.

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
    let fences: Vec<Fence> = ids
        .iter()
        .map(|&id| Fence {
            id: TaskId::from_uuid(id),
            owner: WorkerId::from_uuid(owner),
            attempt: 1,
        })
        .collect();
    for batch in [1, 16, fences.len()] {
        let plan = db
            .store
            .explain_completion(&fences[..batch])
            .await
            .expect("explain");
        assert!(
            !plan.contains("Seq Scan"),
            "a completion of {batch} scans the live partition:\n{plan}"
        );
        assert!(
            plan.contains("durable_tasks_live_pkey"),
            "a completion of {batch} does not probe the primary key:\n{plan}"
        );
    }
}
