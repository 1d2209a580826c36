//! The store's statements are planned for the live partition as it is when they run, not as
//! it was when a prepared statement first ran: a queue's live partition is empty one moment
//! and holds tens of thousands of row versions the next (a burst, or a held vacuum horizon).

use std::time::Duration;

use durable_core::store::{ClaimRequest, ClaimedTask, NewTask, WorkerStore as _};
use durable_core::WorkerId;
use durable_sqlx::postgres::PostgresStore;
use sqlx::Row as _;

use super::conformance::Writes as _;

const LEASE: Duration = Duration::from_secs(30);

/// One cycle on the store: a task inserted, claimed and completed.
pub(super) async fn cycle(store: &PostgresStore, owner: WorkerId) {
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
        !plan.contains("Seq Scan on durable_tasks_keyed"),
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

/// The live partition vacuumed while it held a few rows, as the housekeeping leaves it in a
/// healthy queue; then a backlog of 30,000 due tasks builds before statistics are taken again
/// (a held vacuum horizon stops the vacuums; autovacuum may be a minute away). Planned on the
/// old statistics, a claim expects a row or two, and may read and sort the whole backlog to
/// take ten. The next housekeeping round sees the live rows outgrow what the planner assumes
/// and analyzes the partition: the claim walks the claim index in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_that_outgrows_the_statistics_is_claimed_in_index_order() {
    let Some(db) = crate::pg_db_or_skip().await else {
        return;
    };
    // Claims that never resume: a claim resumed behind the cycles' rows (after one of their
    // walks took the 8 ms that turns resuming on, as on a slow machine) would pass the
    // backlog's older rows until the next walk from the head, which is not what this
    // test is about.
    let store = &PostgresStore::builder(db.url.clone())
        .schema(&db.schema)
        .claim_resume_after(Duration::MAX)
        .connect()
        .await
        .expect("connect");
    let owner = WorkerId::new();
    for _ in 0..3 {
        cycle(store, owner).await;
    }
    sqlx::query("VACUUM ANALYZE durable_tasks_live")
        .execute(db.pool())
        .await
        .expect("vacuum");
    sqlx::query(
        "INSERT INTO durable_tasks_live (id, name, queue, payload, state, max_attempts, run_at)
         SELECT gen_random_uuid(), 'work', 'default', '{}', 'pending', 3,
                now() - interval '1 minute' + g * interval '1 millisecond'
         FROM generate_series(1, 30000) AS g",
    )
    .execute(db.pool())
    .await
    .expect("a backlog");
    // The statistics count the rows within about a second of the insert's commit.
    crate::eventually(
        "the statistics to count the backlog",
        Duration::from_secs(20),
        || async {
            let live: i64 = sqlx::query_scalar(
                "SELECT coalesce(n_live_tup, 0) FROM pg_stat_user_tables
             WHERE relid = 'durable_tasks_keyed'::regclass",
            )
            .fetch_one(db.pool())
            .await
            .expect("statistics");
            (live >= 30_000).then_some(())
        },
    )
    .await;
    let before = store
        .explain_claim(10, None, &["work"])
        .await
        .expect("explain");
    // A claim, as a runtime makes between two rounds: the round looks only after activity.
    let claimed = store
        .claim(&ClaimRequest::new(owner, LEASE, 10, ["work"]))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 10);
    store.maintain().await.expect("housekeeping");

    let after = store
        .explain_claim(10, None, &["work"])
        .await
        .expect("explain");
    assert!(
        after.contains("Index Scan using durable_tasks_keyed_ready") && !super::sorts(&after),
        "the claim does not walk the claim index in order:\n{after}\n(before the round:\n{before})"
    );
}
