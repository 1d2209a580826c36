//! The store's statements are planned for the live partition as it is when they run, not as
//! it was when a prepared statement first ran: a queue's live partition is empty one moment
//! and holds tens of thousands of row versions the next (a burst, or a held vacuum horizon).

use std::time::Duration;

use durable_core::store::{ClaimRequest, ClaimedTask, NewTask};
use durable_core::WorkerId;
use durable_sqlx::postgres::PostgresStore;
use sqlx::Row as _;

use super::conformance::Writes as _;

const LEASE: Duration = Duration::from_secs(30);

/// One cycle on the store: a task inserted, claimed and completed.
async fn cycle(store: &PostgresStore, owner: WorkerId) {
    store
        .insert(&[NewTask::new("work", "{}")])
        .await
        .expect("insert");
    let claimed = store
        .claim(&ClaimRequest::new(owner, LEASE, 1, ["work"]))
        .await
        .expect("claim");
    let fences: Vec<_> = claimed.iter().map(ClaimedTask::fence).collect();
    assert_eq!(fences.len(), 1, "the task just inserted");
    store.complete(&fences).await.expect("complete");
}

/// A store with one connection runs its statements many times on an empty live partition
/// (where a sequential scan is the cheapest plan of all), then the partition grows to 20,000
/// rows: the completion's plan on that same connection probes the primary key, and no
/// statement of the session runs a plan made for the empty table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_planned_on_an_empty_table_do_not_scan_it_once_it_has_grown() {
    let Some(db) = crate::pg_db_or_skip().await else {
        return;
    };
    let store = PostgresStore::builder(db.url.clone())
        .schema(&db.schema)
        .application_name(format!("{}-one", db.schema))
        .max_connections(1)
        .connect()
        .await
        .expect("connect");
    // Vacuumed while empty, as the housekeeping vacuum leaves it between bursts: the
    // planner knows it holds nothing.
    sqlx::query("VACUUM durable_tasks_live")
        .execute(db.pool())
        .await
        .expect("vacuum");
    let owner = WorkerId::new();
    // A server keeps a prepared statement's generic plan after its fifth run when it costs
    // no more than the plans made for each run so far.
    for _ in 0..8 {
        cycle(&store, owner).await;
    }

    sqlx::query(
        "INSERT INTO durable_tasks_live (id, name, queue, payload, state, max_attempts, run_at)
         SELECT gen_random_uuid(), 'later', 'default', '{}', 'pending', 3,
                now() + interval '1 hour'
         FROM generate_series(1, 20000)",
    )
    .execute(db.pool())
    .await
    .expect("grow the live partition");
    let task = NewTask::new("work", "{}");
    store.insert(&[task]).await.expect("insert");
    let claimed = store
        .claim(&ClaimRequest::new(owner, LEASE, 1, ["work"]))
        .await
        .expect("claim");
    let fence = claimed.first().expect("claimed").fence();

    let mut conn = store
        .pool()
        .acquire()
        .await
        .expect("the store's connection");
    let statements = sqlx::query(
        "SELECT name, statement, generic_plans FROM pg_prepared_statements
         WHERE statement LIKE '%durable_tasks_live%'",
    )
    .persistent(false)
    .fetch_all(&mut *conn)
    .await
    .expect("prepared statements");
    let complete = statements
        .iter()
        .find(|row| {
            row.get::<String, _>("statement")
                .contains("SET state = 'completed'")
        })
        .expect("the completion was prepared on this connection");
    let name: String = complete.get("name");
    // EXPLAIN takes no parameters: the fence as literals (ids and a number, nothing to quote).
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN EXECUTE {name}('{{{}}}'::uuid[], '{{{}}}'::uuid[], '{{{}}}'::int4[])",
        fence.id.as_uuid(),
        fence.owner.as_uuid(),
        fence.attempt
    )))
    .fetch_all(&mut *conn)
    .await
    .expect("explain the completion");
    let plan = plan.join("\n");
    assert!(
        !plan.contains("Seq Scan on durable_tasks_live"),
        "the completion scans the grown table:\n{plan}"
    );
    for row in &statements {
        let generic: i64 = row.get("generic_plans");
        assert_eq!(
            generic,
            0,
            "a plan made once and kept: {}",
            row.get::<String, _>("statement")
        );
    }
}
