//! `stats()` on PostgreSQL past the count bound: a terminal state the planner estimates past
//! `COUNT_BOUND` is reported as an estimate, not counted; live states stay bounded counts.

use durable_core::store::{AdminStore as _, Count, COUNT_BOUND};
use durable_core::TaskState;

use super::pg_db_or_skip;

/// Seeds `COUNT_BOUND + 5,000` completed rows and a few pending ones in the test's schema,
/// analyzes the table, and reads the stats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_states_past_the_bound_are_estimated() {
    let Some(db) = pg_db_or_skip().await else {
        return;
    };
    let completed = i64::try_from(COUNT_BOUND).expect("bound") + 5_000;
    sqlx::query(
        "INSERT INTO durable_tasks (id, name, queue, payload, state, attempts, max_attempts,
            finished_at)
         SELECT gen_random_uuid(), 'work', 'default', '{}',
             CASE WHEN i < $1 THEN 'completed' ELSE 'pending' END,
             CASE WHEN i < $1 THEN 1 ELSE 0 END, 3,
             CASE WHEN i < $1 THEN now() END
         FROM generate_series(0, $1 + 2) AS i",
    )
    .bind(completed)
    .execute(db.pool())
    .await
    .expect("seed");
    let before = db.store.stats().await.expect("stats");
    assert_eq!(before.state(TaskState::Pending), Count::Exact(3));
    sqlx::query("ANALYZE durable_tasks")
        .execute(db.pool())
        .await
        .expect("analyze");
    let stats = db.store.stats().await.expect("stats");
    match stats.state(TaskState::Completed) {
        Count::Estimated(n) => assert!(n > COUNT_BOUND, "estimate {n}"),
        other => panic!("expected an estimate past the bound, got {other:?}"),
    }
    assert_eq!(stats.state(TaskState::Pending), Count::Exact(3));
    assert_eq!(stats.state(TaskState::Failed), Count::Exact(0));
    assert_eq!(stats.due, Count::Exact(3));
}
