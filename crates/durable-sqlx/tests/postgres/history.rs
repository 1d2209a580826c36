//! The split task table on PostgreSQL (migration 11): finished tasks leave the live partition
//! that claims scan for the history partition, in the statement that finishes them, and stay
//! readable through `durable_tasks` and the admin API.

use std::time::Duration;

use durable_core::client::ClientBuilder;
use durable_core::store::{
    ActionOutcome, AdminStore as _, ClaimRequest, ClaimedTask, ListQuery, NewTask, Seen,
    StepStore as _, WorkerStore as _,
};
use durable_core::{EnqueueOptions, TaskId, TaskState, UniqueKey, WorkerId};
use sqlx::PgPool;

use super::conformance::tasks::Work;
use super::conformance::Writes as _;
use super::{eventually, pg_db_or_skip, store_on};

const LEASE: Duration = Duration::from_secs(30);

/// Where each task's row is: `(partition, state)`.
async fn placement(pool: &PgPool, id: TaskId) -> (String, String) {
    sqlx::query_as(
        "SELECT regexp_replace(tableoid::regclass::text, '^durable_tasks_lane_[0-9]+$',
             'a lane'), state
         FROM durable_tasks WHERE id = $1",
    )
    .bind(id.as_uuid())
    .fetch_one(pool)
    .await
    .expect("the row")
}

pub(super) fn request(owner: WorkerId, limit: usize) -> ClaimRequest {
    ClaimRequest::new(owner, LEASE, limit, ["work"])
}

/// Completed, failed and cancelled rows move to the history partition; a row holding its
/// unique key in its finished state stays live (the live partition's index enforces keys);
/// every read through the parent and the admin API still finds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_tasks_move_to_history_and_stay_readable() {
    let Some(db) = pg_db_or_skip().await else {
        return;
    };
    let store = &db.store;
    let client = ClientBuilder::new(std::sync::Arc::new(store.clone())).build();
    let once = || {
        EnqueueOptions::new().unique(UniqueKey::new("once").states(&[
            TaskState::Pending,
            TaskState::Processing,
            TaskState::Completed,
        ]))
    };
    let done = NewTask::new("work", "{}");
    let dead = NewTask::new("work", "{}").with_max_attempts(1);
    let cancelled =
        NewTask::new("work", "{}").with_run_at(chrono::Utc::now() + chrono::Duration::hours(1));
    let (done_id, dead_id, cancelled_id) = (done.id, dead.id, cancelled.id);
    store
        .insert(&[done, dead, cancelled])
        .await
        .expect("insert");
    let held_id = client
        .enqueue_with(Work::new("held"), once())
        .await
        .expect("enqueue");
    let ids = [done_id, dead_id, held_id, cancelled_id];
    // Lane 0 holds the keyed row and the one scheduled an hour ahead; the others take the
    // lane of the moment (migration 13).
    let leaves = [
        "a lane",
        "a lane",
        "durable_tasks_keyed",
        "durable_tasks_keyed",
    ];
    for (id, leaf) in ids.into_iter().zip(leaves) {
        assert_eq!(placement(db.pool(), id).await.0, leaf);
    }

    let owner = WorkerId::new();
    let claimed = store.claim(&request(owner, 10)).await.expect("claim");
    assert_eq!(claimed.len(), 3, "the three due tasks");
    let fence = |id: TaskId| {
        claimed
            .iter()
            .find(|c| c.id == id)
            .expect("claimed")
            .fence()
    };
    store
        .complete(&[fence(ids[0]), fence(ids[2])])
        .await
        .expect("complete");
    assert!(store.fail(&fence(ids[1]), "boom").await.expect("fail"));
    store.cancel(ids[3]).await.expect("cancel");

    let expect = [
        ("durable_tasks_history", "completed"),
        ("durable_tasks_history", "failed"),
        ("durable_tasks_keyed", "completed"),
        ("durable_tasks_history", "cancelled"),
    ];
    for (id, (partition, state)) in ids.iter().zip(expect) {
        assert_eq!(
            placement(db.pool(), *id).await,
            (partition.to_owned(), state.to_owned()),
            "task {id}"
        );
        let record = store.get(*id).await.expect("get").expect("found");
        assert_eq!(record.state.as_str(), state);
    }
    let failed = store
        .list(&ListQuery::new(10).state(TaskState::Failed))
        .await
        .expect("list");
    assert_eq!(failed.tasks.len(), 1);
    assert_eq!(failed.tasks[0].id, ids[1]);
    assert_eq!(failed.tasks[0].last_error.as_deref(), Some("boom"));
    let stats = store.stats().await.expect("stats");
    assert_eq!(stats.state(TaskState::Completed).value(), 2);

    // The key is still held by the completed row that stayed live: the holder's id.
    let again = client
        .enqueue_with(Work::new("held"), once())
        .await
        .expect("enqueue");
    assert_eq!(again, held_id, "the key is held");
}

/// An operator's retry moves a failed task back to the live partition, where a claim finds
/// it; pruning deletes history rows and their steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_tasks_come_back_and_pruning_takes_history_with_steps() {
    let Some(db) = pg_db_or_skip().await else {
        return;
    };
    let store = &db.store;
    let task = NewTask::new("work", "{}").with_max_attempts(1);
    let id = task.id;
    store.insert(&[task]).await.expect("insert");
    let owner = WorkerId::new();
    let claimed = store.claim(&request(owner, 1)).await.expect("claim");
    let fence = claimed[0].fence();
    assert!(store.save_step(&fence, "first", "1").await.expect("step"));
    assert!(store.fail(&fence, "boom").await.expect("fail"));
    assert_eq!(placement(db.pool(), id).await.0, "durable_tasks_history");
    assert_eq!(store.steps(id).await.expect("steps").len(), 1, "steps kept");

    let seen = Seen::new(TaskState::Failed, 1);
    assert_eq!(
        store.retry(id, Some(seen)).await.expect("retry"),
        ActionOutcome::Done
    );
    assert_eq!(
        placement(db.pool(), id).await,
        ("a lane".to_owned(), "pending".to_owned())
    );
    let claimed = store.claim(&request(owner, 1)).await.expect("claim");
    assert_eq!(claimed.len(), 1, "the retried task is claimed");
    store
        .complete(&[claimed[0].fence()])
        .await
        .expect("complete");
    assert_eq!(placement(db.pool(), id).await.0, "durable_tasks_history");

    assert_eq!(store.prune(Duration::ZERO, 100).await.expect("prune"), 1);
    assert!(store.get(id).await.expect("get").is_none());
    assert!(
        store.steps(id).await.expect("steps").is_empty(),
        "steps pruned"
    );
}

/// Dead row versions one [`churn`] leaves in the live partition: each task's `pending`
/// version and its `processing` one.
const CHURN_DEAD: i64 = 6_000;

/// 3,000 tasks inserted, claimed and completed on `store`: [`CHURN_DEAD`] dead row versions
/// in the live partition. Returns once the statistics count them all: a connection of the
/// pool sends its counts up to 10 s after its last transaction (when it goes idle within a
/// second of its last report), and counts that arrive after a vacuum's report are added to
/// what that vacuum left.
async fn churn(store: &durable_sqlx::postgres::PostgresStore, owner: WorkerId) {
    let before = live_stats(store.pool()).await.0;
    for _ in 0..3 {
        let rows: Vec<NewTask> = (0..1_000).map(|_| NewTask::new("work", "{}")).collect();
        store.insert(&rows).await.expect("insert");
        let claimed = store.claim(&request(owner, 1_000)).await.expect("claim");
        let fences: Vec<_> = claimed.iter().map(ClaimedTask::fence).collect();
        store.complete(&fences).await.expect("complete");
    }
    eventually(
        "the churn's dead row versions counted",
        Duration::from_secs(20),
        || async { (live_stats(store.pool()).await.0 >= before + CHURN_DEAD).then_some(()) },
    )
    .await;
}

/// The live partition's dead row versions (of its leaves) and vacuums so far (a vacuum of
/// the partition vacuums each leaf), as the statistics count them.
async fn live_stats(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT sum(n_dead_tup)::int8, max(vacuum_count) FROM pg_stat_user_tables
         WHERE relid IN (SELECT relid FROM pg_partition_tree('durable_tasks_live') WHERE isleaf)",
    )
    .fetch_one(pool)
    .await
    .expect("stats")
}

/// The runtime's housekeeping vacuums the live partition once dead row versions pile up
/// (the partition's vacuum count goes up), and an instance that did nothing sends nothing.
/// (Whether the vacuum removes them depends on every snapshot of the database: tests running
/// alongside hold some.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_vacuums_the_live_partition() {
    let Some(db) = pg_db_or_skip().await else {
        return;
    };
    let store = store_on(&db.url, &db.schema, &db.schema).await;
    assert!(!store.maintain().await.expect("maintain").vacuumed, "idle");
    churn(&store, WorkerId::new()).await;
    let vacuums = live_stats(db.pool()).await.1;
    let done = store.maintain().await.expect("maintain");
    assert!(done.vacuumed, "{done:?}");
    assert!(done.dead_rows.is_some_and(|n| n >= 2_000), "{done:?}");
    assert_eq!(
        live_stats(db.pool()).await.1,
        vacuums + 1,
        "one vacuum of the live partition"
    );
    assert!(
        !store.maintain().await.expect("maintain").vacuumed,
        "nothing done since: no look"
    );
}

/// While an old snapshot or an open transaction holds the horizon, housekeeping vacuums the
/// live partition once (nothing can be removed) and not again until it is gone; then the
/// next round vacuums and the dead versions go. In a database of its own: the horizon is the oldest snapshot of the
/// database, and other tests' snapshots must not be it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_waits_for_the_snapshot_that_holds_the_horizon() {
    let Some(url) = durable_testkit::database_url() else {
        return;
    };
    let database = durable_testkit::PgDatabase::create(&url, "durable_horizon")
        .await
        .expect("a database of its own");
    // Lanes kept: this is the vacuums' pace; truncating the lanes is `lanes.rs`.
    let store = durable_sqlx::postgres::PostgresStore::builder(database.url())
        .truncate_lanes(false)
        .connect()
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let pool = store.pool();
    let owner = WorkerId::new();

    // A `REPEATABLE READ` snapshot, then a `READ COMMITTED` transaction that took a
    // transaction id and sits idle (no snapshot between its statements; its id holds the
    // horizon).
    let holders: [&[&'static str]; 2] = [
        &[
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            "SELECT count(*) FROM durable_tasks",
        ],
        &["SELECT pg_current_xact_id()"],
    ];
    for holder in holders {
        let mut held = pool.begin().await.expect("begin");
        for sql in holder {
            sqlx::query(*sql)
                .execute(&mut *held)
                .await
                .expect("hold the horizon");
        }
        churn(&store, owner).await;
        let vacuums = live_stats(pool).await.1;
        assert!(
            store.maintain().await.expect("maintain").vacuumed,
            "{holder:?}"
        );
        assert_eq!(live_stats(pool).await.1, vacuums + 1, "{holder:?}");
        assert!(live_stats(pool).await.0 >= 2_000, "{holder:?} kept them");
        churn(&store, owner).await;
        assert!(
            !store.maintain().await.expect("maintain").vacuumed,
            "{holder:?} is still open: a vacuum would remove nothing"
        );

        held.rollback().await.expect("release the horizon");
        churn(&store, owner).await;
        let done = store.maintain().await.expect("maintain");
        assert!(done.vacuumed, "the horizon moved: {done:?}");
        assert!(
            live_stats(pool).await.0 < 2_000,
            "the vacuum removed what {holder:?} kept"
        );
    }
}
