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

/// The counts per state read each state's own partial index, so a history of many completed
/// rows is not read to count the few cancelled ones: the runtime's state gauges make this read
/// every `stats_interval` on every instance, and the history holds every task finished within
/// the retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counting_a_rare_terminal_state_does_not_read_the_history() {
    let Some(db) = pg_db_or_skip().await else {
        return;
    };
    let completed = i64::try_from(COUNT_BOUND).expect("bound") * 5;
    // Finished rows go to the history partition (`archived`); then a few live ones.
    sqlx::query(
        "INSERT INTO durable_tasks (id, name, queue, payload, state, attempts, max_attempts,
            finished_at, archived)
         SELECT gen_random_uuid(), 'work', 'default', '{}',
             CASE WHEN i < $1 THEN 'completed' WHEN i < $1 + 3 THEN 'cancelled' ELSE 'failed' END,
             1, 3, now() - i * interval '1 millisecond', true
         FROM generate_series(0, $1 + 4) AS i",
    )
    .bind(completed)
    .execute(db.pool())
    .await
    .expect("seed the history");
    sqlx::query(
        "INSERT INTO durable_tasks (id, name, queue, payload, state, attempts, max_attempts)
         SELECT gen_random_uuid(), 'work', 'default', '{}', 'pending', 0, 3
         FROM generate_series(1, 4)",
    )
    .execute(db.pool())
    .await
    .expect("seed live rows");
    sqlx::query("ANALYZE durable_tasks")
        .execute(db.pool())
        .await
        .expect("analyze");

    let plan = db.store.explain_state_stats().await.expect("explain");
    eprintln!("{plan}");
    for read in [
        "Seq Scan on durable_tasks_history",
        "Bitmap Heap Scan on durable_tasks_history",
    ] {
        assert!(
            !plan.contains(read),
            "the counts read the history ({read}):\n{plan}"
        );
    }
    assert!(
        plan.contains("durable_tasks_history_cancelled"),
        "cancelled rows are counted on their own index:\n{plan}"
    );
    // The gauges report no due count: the statement does not walk the claim index for one.
    assert!(
        !plan.contains("run_at <="),
        "the counts per state read the due rows too:\n{plan}"
    );

    let states = db.store.state_stats().await.expect("state stats");
    let of = |state: TaskState| {
        states
            .iter()
            .find(|(s, _)| *s == state)
            .map(|(_, count)| *count)
            .expect("every state is reported")
    };
    assert!(
        matches!(of(TaskState::Completed), Count::Estimated(n) if n > COUNT_BOUND),
        "completed: {:?}",
        of(TaskState::Completed)
    );
    assert_eq!(of(TaskState::Cancelled), Count::Exact(3));
    assert_eq!(of(TaskState::Failed), Count::Exact(2));
    assert_eq!(of(TaskState::Pending), Count::Exact(4));
    assert_eq!(of(TaskState::Processing), Count::Exact(0));
}
