//! Rows this version cannot read — an id that is not a UUID, a payload that is not UTF-8
//! text — written behind the store's back. A claim that takes one fails that row on its own
//! with a readable `last_error`; the cycle around it (a request's insert, the other claimed
//! rows, completions) keeps the answer it would have had without it. A name that is not
//! UTF-8 text is no registered task type: that row is never claimed, and reported as waiting
//! for an instance that knows it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use durable_core::store::{ClaimRequest, NewTask, Store, WriteBatch};
use durable_core::{Runtime, TaskId, TaskState, WorkerId};
use durable_sqlx::sqlite::SqliteStore;

use crate::conformance::tasks::{registry, Probe, Work};
use crate::conformance::Writes as _;
use crate::conformance::{eventually, wait_state};
use durable_core::store::{AdminStore as _, WorkerStore as _};

const LEASE: Duration = Duration::from_secs(30);

/// Rows inserted by [`insert_unreadable`] with a valid id.
struct Unreadable {
    /// Its payload is a BLOB of invalid UTF-8.
    blob: TaskId,
    /// Its name is TEXT holding invalid UTF-8: no task type, so never claimed.
    name: TaskId,
}

/// Inserts by raw SQL, due a second ago (so claimed before anything due now), a row whose id
/// is `id`, and the rows of [`Unreadable`].
async fn insert_unreadable(store: &SqliteStore, id: &str) -> Unreadable {
    let rows = Unreadable {
        blob: TaskId::new(),
        name: TaskId::new(),
    };
    let past = chrono::Utc::now().timestamp_millis() - 1000;
    for (id, name, payload) in [
        (id.to_owned(), "'work'", "'{}'"),
        (rows.blob.to_string(), "'work'", "X'FFFE00C3'"),
        (rows.name.to_string(), "CAST(X'776FFF' AS TEXT)", "'{}'"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO durable_tasks (id, name, queue, payload, state, priority, attempts,
                 max_attempts, run_at, created_at, updated_at)
             VALUES (?1, {name}, 'default', {payload}, 'pending', 0, 0, 3, ?2, ?2, ?2)"
        )))
        .bind(id)
        .bind(past)
        .execute(store.writer_pool())
        .await
        .expect("raw insert");
    }
    rows
}

/// State and `last_error` of a row by its raw id.
async fn raw_state(store: &SqliteStore, id: &str) -> (String, Option<String>) {
    sqlx::query_as("SELECT state, last_error FROM durable_tasks WHERE id = ?1")
        .bind(id)
        .fetch_one(store.reader_pool())
        .await
        .expect("raw select")
}

/// The row whose name is not UTF-8 text: still `pending`, untouched, and counted among the
/// tasks of types nobody here knows (its name shown with the invalid bytes replaced).
async fn assert_left_pending(store: &SqliteStore, id: &str) {
    let (state, error) = raw_state(store, id).await;
    assert_eq!((state.as_str(), error), ("pending", None), "row {id}");
    let unknown = store
        .unclaimable(&["work".to_owned()], Duration::ZERO)
        .await
        .expect("unclaimable");
    assert!(
        unknown
            .iter()
            .any(|(name, n)| name == "wo\u{FFFD}" && *n >= 1),
        "{unknown:?}"
    );
}

async fn assert_failed_alone(store: &SqliteStore, id: &str, why: &str) {
    let (state, error) = raw_state(store, id).await;
    assert_eq!(state, "failed", "row {id}");
    let error = error.expect("last_error");
    assert!(
        error.starts_with("cannot read the stored task row") && error.contains(why),
        "row {id}: {error}"
    );
}

/// Every shape of SQLite writer cycle (bound parameters; JSON arrays over 512 rows; a capped
/// claim, statement by statement) and the plain claim: the unreadable rows are failed, the
/// insert riding in the same cycle answers Ok, the other rows are claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_claimed_rows_fail_alone_in_every_cycle_shape() {
    let db = crate::sqlite_db().await;
    let store = SqliteStore::connect(&db.url).await.expect("open");
    let owner = WorkerId::new();
    for (shape, rows) in [("bound", 3), ("json", 600), ("capped", 3), ("claim", 0)] {
        let corrupt_id = format!("not-a-uuid-{shape}");
        let bad = insert_unreadable(&store, &corrupt_id).await;
        let good: Vec<NewTask> = (0..rows).map(|_| NewTask::new("work", "{}")).collect();
        let request = ClaimRequest::new(owner, LEASE, 10_000, ["work"]);
        let request = if shape == "capped" {
            request.cap("default", 10_000)
        } else {
            request
        };
        let claimed = if shape == "claim" {
            store.claim(&request).await.expect("the claim succeeds")
        } else {
            let outcome = store
                .write(WriteBatch::new().insert(&good).claim(&request))
                .await;
            outcome
                .inserted
                .unwrap_or_else(|e| panic!("{shape}: the insert answers Ok: {e}"));
            outcome
                .claimed
                .unwrap_or_else(|e| panic!("{shape}: the claim answers Ok: {e}"))
        };
        let ids: HashSet<TaskId> = claimed.iter().map(|c| c.id).collect();
        assert_eq!(
            ids,
            good.iter().map(|t| t.id).collect(),
            "{shape}: every readable row claimed, the unreadable ones left out"
        );
        assert_failed_alone(&store, &corrupt_id, "not-a-uuid").await;
        assert_failed_alone(&store, &bad.blob.to_string(), "payload").await;
        assert_left_pending(&store, &bad.name.to_string()).await;
        for c in &claimed {
            assert_eq!(
                store.get(c.id).await.expect("get").expect("row").state,
                TaskState::Processing
            );
        }
        let fences: Vec<_> = claimed
            .iter()
            .map(durable_core::store::ClaimedTask::fence)
            .collect();
        assert_eq!(
            store.complete(&fences).await.expect("complete").len(),
            fences.len()
        );
    }
}

/// A runtime claiming next to unreadable rows: requests' enqueues answer Ok, the readable
/// rows run, the unreadable ones end `failed` — at once, not one lease later — but for the
/// one whose name is no task type, which waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_keeps_running_next_to_unreadable_rows() {
    let db = crate::sqlite_db().await;
    let store = SqliteStore::connect(&db.url).await.expect("open");
    let bad = insert_unreadable(&store, "not-a-uuid").await;
    let waiting: Vec<NewTask> = (0..5)
        .map(|i| NewTask::new("work", format!(r#"{{"key":"waiting-{i}"}}"#)))
        .collect();
    store.insert(&waiting).await.expect("insert");
    let probe = Probe::default();
    let rt = Runtime::builder(store.clone(), registry(&probe))
        .poll_interval(Duration::from_millis(50))
        .lease(Duration::from_secs(30))
        .start();
    let client = rt.client();
    let mut enqueued = Vec::new();
    for i in 0..20 {
        enqueued.push(
            client
                .enqueue(Work::new(format!("new-{i}")))
                .await
                .expect("enqueue answers Ok"),
        );
    }
    let shared: Arc<dyn Store> = Arc::new(store.clone());
    for id in waiting.iter().map(|t| t.id).chain(enqueued) {
        wait_state(&shared, id, TaskState::Completed, Duration::from_secs(10)).await;
    }
    eventually(
        "the unreadable rows to fail",
        Duration::from_secs(10),
        || async {
            let mut failed = true;
            for id in ["not-a-uuid".to_owned(), bad.blob.to_string()] {
                failed &= raw_state(&store, &id).await.0 == "failed";
            }
            failed.then_some(())
        },
    )
    .await;
    assert_failed_alone(&store, "not-a-uuid", "not-a-uuid").await;
    assert_failed_alone(&store, &bad.blob.to_string(), "payload").await;
    assert_left_pending(&store, &bad.name.to_string()).await;
    rt.shutdown(Duration::from_secs(5)).await;
}
