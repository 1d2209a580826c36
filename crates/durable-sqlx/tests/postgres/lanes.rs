//! The live partition's lanes (migration 13) are truncated while a held vacuum horizon keeps
//! vacuums from cleaning them, without losing a task, without truncating a lane a session
//! holds locked, and with the stragglers of a lane moved out of it first.
//!
//! Each test has a database of its own: the horizon is the oldest snapshot of the database.

use std::time::Duration;

use durable_core::store::{AdminStore as _, ClaimRequest, ClaimedTask, NewTask, WorkerStore as _};
use durable_core::{TaskState, WorkerId};
use durable_sqlx::postgres::PostgresStore;
use durable_sqlx::testing::TestClock;
use sqlx::PgPool;
use tokio::time::Instant;

use super::conformance::Writes as _;
use super::plan_cache::cycle;

const LEASE: Duration = Duration::from_secs(300);

/// A store on a database of its own, migrated, with its test clock.
async fn own_database(name: &str) -> Option<(durable_testkit::PgDatabase, PostgresStore)> {
    let url = durable_testkit::database_url()?;
    let database = durable_testkit::PgDatabase::create(&url, name)
        .await
        .expect("a database of its own");
    let store = PostgresStore::connect(database.url())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    Some((database, store))
}

/// `n` tasks inserted, claimed and completed: every one leaves its dead row versions in the
/// lane of the moment.
async fn churn(store: &PostgresStore, owner: WorkerId, n: usize) {
    for _ in 0..n / 500 {
        let rows: Vec<NewTask> = (0..500).map(|_| NewTask::new("work", "{}")).collect();
        store.insert(&rows).await.expect("insert");
        let claimed = store
            .claim(&ClaimRequest::new(owner, LEASE, 500, ["work"]))
            .await
            .expect("claim");
        let fences: Vec<_> = claimed.iter().map(ClaimedTask::fence).collect();
        store.complete(&fences).await.expect("complete");
    }
}

/// The bytes of each lane (1 and 2).
async fn lane_bytes(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT pg_relation_size('durable_tasks_lane_1'), pg_relation_size('durable_tasks_lane_2')",
    )
    .fetch_one(pool)
    .await
    .expect("sizes")
}

/// Rows of `durable_tasks` in `state`.
async fn count(pool: &PgPool, state: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM durable_tasks WHERE state = $1")
        .bind(state)
        .fetch_one(pool)
        .await
        .expect("count")
}

/// Runs maintenance rounds, a second of the store's time apart (each after one task's [`cycle`],
/// so the store has something to look after), until `done` holds or `rounds` have run.
async fn rounds_until<F, Fut>(
    store: &PostgresStore,
    clock: &TestClock,
    owner: WorkerId,
    rounds: usize,
    mut done: F,
) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..rounds {
        cycle(store, owner).await;
        store.maintain().await.expect("maintain");
        if done().await {
            return true;
        }
        clock
            .advance(Duration::from_secs(1))
            .await
            .expect("advance");
    }
    false
}

/// A transaction that took an id and sits idle: it holds the vacuum horizon and no lock.
async fn hold_an_id(pool: &PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut held = pool.begin().await.expect("begin");
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *held)
        .await
        .expect("hold the horizon");
    held
}

/// Runs maintenance until it vacuums the churn's dead versions (the statistics count them
/// within a second or so), which a held horizon keeps: the store's vacuums then back off.
async fn vacuum_in_vain(store: &PostgresStore, owner: WorkerId) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !store.maintain().await.expect("maintain").vacuumed {
        assert!(
            Instant::now() < deadline,
            "no vacuum of the churn's dead versions"
        );
        cycle(store, owner).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A transaction that took an id and sits idle holds the horizon: the first round's vacuum
/// removes nothing, and later rounds truncate each lane once its turn is over, where a
/// vacuum could not have. Every task is in the history, completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lanes_are_truncated_while_an_idle_transaction_holds_the_horizon() {
    let Some((_database, store)) = own_database("durable_lanes_idle").await else {
        return;
    };
    let pool = store.pool();
    let clock = store.test_clock();
    let owner = WorkerId::new();
    let held = hold_an_id(pool).await;

    churn(&store, owner, 6_000).await;
    let (one, two) = lane_bytes(pool).await;
    assert!(
        one + two > 1024 * 1024,
        "the churn's versions: {one} + {two}"
    );
    vacuum_in_vain(&store, owner).await;
    let (after_one, after_two) = lane_bytes(pool).await;
    assert!(
        after_one + after_two >= one + two,
        "the vacuum removed nothing"
    );

    let truncated = rounds_until(&store, &clock, owner, 30, || async {
        let (one, two) = lane_bytes(pool).await;
        one + two < 512 * 1024
    })
    .await;
    assert!(truncated, "lanes {:?}", lane_bytes(pool).await);
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM durable_tasks")
        .fetch_one(pool)
        .await
        .expect("count");
    assert!(all > 6_000, "{all}");
    assert_eq!(count(pool, "completed").await, all, "every task completed");
    held.rollback().await.expect("release");
}

/// A task still running when its lane's turn is over keeps it only a few seconds: it moves to
/// lane 0, the lane is truncated, and its worker completes it there under the same fence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_running_past_its_lane_moves_out_and_completes() {
    let Some((_database, store)) = own_database("durable_lanes_running").await else {
        return;
    };
    let pool = store.pool();
    let clock = store.test_clock();
    let owner = WorkerId::new();
    let held = hold_an_id(pool).await;
    let long = NewTask::new("work", "{}");
    let long_id = long.id;
    store.insert(&[long]).await.expect("insert");
    let claimed = store
        .claim(&ClaimRequest::new(owner, LEASE, 1, ["work"]))
        .await
        .expect("claim");
    assert_eq!(claimed[0].id, long_id);
    let fence = claimed[0].fence();
    churn(&store, owner, 3_000).await;
    vacuum_in_vain(&store, owner).await;
    let leaf = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT tableoid::regclass::text FROM durable_tasks WHERE id = $1",
        )
        .bind(long_id.as_uuid())
        .fetch_one(pool)
        .await
        .expect("the running task")
    };
    assert!(leaf().await.starts_with("durable_tasks_lane_"));

    let moved = rounds_until(&store, &clock, owner, 30, || async {
        leaf().await == "durable_tasks_keyed"
    })
    .await;
    assert!(moved, "still in {}", leaf().await);
    let truncated = rounds_until(&store, &clock, owner, 30, || async {
        let (one, two) = lane_bytes(pool).await;
        one + two < 512 * 1024
    })
    .await;
    assert!(truncated, "lanes {:?}", lane_bytes(pool).await);
    assert_eq!(
        store
            .heartbeat(&[fence], LEASE)
            .await
            .expect("heartbeat")
            .len(),
        1,
        "the fence still holds"
    );
    store.complete(&[fence]).await.expect("complete");
    let record = store.get(long_id).await.expect("get").expect("kept");
    assert_eq!(record.state, TaskState::Completed);
    held.rollback().await.expect("release");
}

/// A report reading the task tables in a `REPEATABLE READ` transaction holds the horizon and
/// its lock on every lane: no lane is truncated under it (its snapshot expects the rows), and
/// no round waits on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_a_report_holds_is_not_truncated() {
    let Some((_database, store)) = own_database("durable_lanes_report").await else {
        return;
    };
    let pool = store.pool();
    let clock = store.test_clock();
    let owner = WorkerId::new();
    let mut report = pool.begin().await.expect("begin");
    for sql in [
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "SELECT count(*) FROM durable_tasks",
    ] {
        sqlx::query(sql)
            .execute(&mut *report)
            .await
            .expect("the report");
    }
    churn(&store, owner, 3_000).await;
    vacuum_in_vain(&store, owner).await;
    let before = lane_bytes(pool).await;
    // The report has held its locks for more than a second by now; 25 rounds cover each
    // lane's whole window.
    let mut slowest = Duration::ZERO;
    for _ in 0..25 {
        cycle(&store, owner).await;
        let started = Instant::now();
        store.maintain().await.expect("maintain");
        slowest = slowest.max(started.elapsed());
        clock
            .advance(Duration::from_secs(1))
            .await
            .expect("advance");
    }
    let after = lane_bytes(pool).await;
    assert!(
        after.0 >= before.0 && after.1 >= before.1,
        "truncated under the report: {before:?} -> {after:?}"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "a round waited {slowest:?}"
    );
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM durable_tasks")
        .fetch_one(&mut *report)
        .await
        .expect("the report reads on");
    assert_eq!(seen, 0, "its snapshot is from before the tasks");
    report.rollback().await.expect("end the report");
}

/// A lane a past horizon left large — its rows gone, its pages kept — is truncated at its
/// next chance once vacuums clean the lanes again, where a vacuum leaves a file its size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_left_large_by_an_earlier_horizon_is_truncated_once_vacuums_work() {
    let Some((_database, store)) = own_database("durable_lanes_bloated").await else {
        return;
    };
    let pool = store.pool();
    let clock = store.test_clock();
    let owner = WorkerId::new();
    // 40 MiB of pages holding nothing: the rows a horizon kept, vacuumed once it moved.
    for sql in [
        "INSERT INTO durable_tasks (id, name, payload, max_attempts, lane)
         SELECT gen_random_uuid(), 'old', '{}', 3, 1 FROM generate_series(1, 300000)",
        "DELETE FROM durable_tasks_lane_1",
        "VACUUM (TRUNCATE false) durable_tasks_lane_1",
    ] {
        sqlx::query(sql)
            .execute(pool)
            .await
            .expect("a lane left large");
    }
    let (one, _) = lane_bytes(pool).await;
    assert!(one > 32 * 1024 * 1024, "{one}");
    let truncated = rounds_until(&store, &clock, owner, 30, || async {
        lane_bytes(pool).await.0 < 1024 * 1024
    })
    .await;
    assert!(truncated, "lanes {:?}", lane_bytes(pool).await);
}
