//! Unique tasks: a key held by a task in one of its states stops a second enqueue, which
//! returns the holder's id — through every insert path, under races, on both backends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use durable_core::client::ClientBuilder;
use durable_core::store::{ClaimRequest, ListQuery, Outcome, Settle, Store, WriteBatch};
use durable_core::{
    Client, EnqueueOptions, Error, Runtime, TaskId, TaskState, UniqueKey, WorkerId,
};

use super::tasks::{registry, Mail, Probe, Work};
use super::{eventually, row, wait_state, TestDb};

/// A future borrowing the database.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Transactions of the application's own, for the race through `enqueue_in`.
pub trait UserTransactions: TestDb {
    /// Opens a transaction, waits at `start` (when the backend runs transactions side by
    /// side), enqueues `task` in it with `enqueue_in_with`, then commits it or rolls it
    /// back. Returns the id `enqueue_in_with` returned, or its error.
    fn enqueue_in_tx(
        &self,
        client: Client,
        task: Work,
        options: EnqueueOptions,
        start: Arc<tokio::sync::Barrier>,
        commit: bool,
    ) -> BoxFut<'_, Result<TaskId, String>>;

    /// Whether transactions run side by side (PostgreSQL); SQLite runs them one at a time.
    fn concurrent(&self) -> bool;
}

fn client(db: &impl TestDb) -> Client {
    ClientBuilder::new(db.store()).build()
}

fn keyed(key: &str) -> EnqueueOptions {
    EnqueueOptions::new().unique_key(key)
}

/// Rows of task type `work` whose payload's key is `key`.
async fn rows_of(store: &Arc<dyn Store>, key: &str) -> Vec<durable_core::store::TaskRecord> {
    let all = store
        .list(&ListQuery::new(500).name("work"))
        .await
        .expect("list")
        .tasks;
    all.into_iter()
        .filter(|r| {
            serde_json::from_str::<serde_json::Value>(&r.payload)
                .ok()
                .and_then(|v| v.get("key").and_then(|k| k.as_str()).map(str::to_owned))
                .as_deref()
                == Some(key)
        })
        .collect()
}

/// Claims every due `work` row for a fresh owner: the rows become `processing`.
async fn claim_all(store: &Arc<dyn Store>) -> Vec<durable_core::store::ClaimedTask> {
    let request = ClaimRequest::new(WorkerId::new(), Duration::from_secs(60), 100, ["work"]);
    store
        .write(WriteBatch::new().claim(&request))
        .await
        .claimed
        .expect("claim")
}

/// While the task is pending, then processing, an enqueue with its key returns its id and
/// stores nothing; once it completed (default states), the key is free. Keys are per task
/// type unless global.
pub async fn unique_dedups_while_pending_and_processing(db: &impl TestDb) {
    let store = db.store();
    let client = client(db);
    let first = client
        .enqueue_with(Work::new("u1"), keyed("k"))
        .await
        .expect("enqueue");
    let again = client
        .enqueue_with(Work::new("u1"), keyed("k"))
        .await
        .expect("enqueue");
    assert_eq!(again, first, "pending: the holder's id");
    assert_eq!(rows_of(&store, "u1").await.len(), 1);

    let claimed = claim_all(&store).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(row(&store, first).await.state, TaskState::Processing);
    let again = client
        .enqueue_with(Work::new("u1"), keyed("k"))
        .await
        .expect("enqueue");
    assert_eq!(again, first, "processing: the holder's id");

    // Same key, another task type: its own key space.
    let mail = client
        .enqueue_with(
            Mail {
                key: "u1".into(),
                sleep_ms: 0,
            },
            keyed("k"),
        )
        .await
        .expect("enqueue");
    assert_ne!(mail, first);
    // A global key is shared across types.
    let global = EnqueueOptions::new().unique(UniqueKey::new("g").global());
    let g1 = client
        .enqueue_with(Work::new("u1-global"), global.clone())
        .await
        .expect("enqueue");
    let g2 = client
        .enqueue_with(
            Mail {
                key: "g".into(),
                sleep_ms: 0,
            },
            global,
        )
        .await
        .expect("enqueue");
    assert_eq!(g1, g2);

    let fence = claimed[0].fence();
    let done = store.write(WriteBatch::new().complete(&[fence])).await;
    assert_eq!(done.completed.expect("complete"), vec![first]);
    let next = client
        .enqueue_with(Work::new("u1"), keyed("k"))
        .await
        .expect("enqueue");
    assert_ne!(next, first, "completed: the key is free again");
    assert_eq!(row(&store, next).await.state, TaskState::Pending);
    assert_eq!(rows_of(&store, "u1").await.len(), 2);
}

/// A failed task frees the key under the default states and keeps it when `failed` is one of
/// them; a set without `processing` is refused.
pub async fn unique_states_decide_when_the_key_is_free(db: &impl TestDb) {
    let store = db.store();
    let client = client(db);
    let strict = || {
        EnqueueOptions::new().unique(UniqueKey::new("strict").states(&[
            TaskState::Pending,
            TaskState::Processing,
            TaskState::Failed,
        ]))
    };
    let a = client
        .enqueue_with(Work::new("s"), strict())
        .await
        .expect("enqueue");
    let b = client
        .enqueue_with(Work::new("s"), keyed("lenient"))
        .await
        .expect("enqueue");
    let claimed = claim_all(&store).await;
    assert_eq!(claimed.len(), 2);
    let settle: Vec<Settle> = claimed
        .iter()
        .map(|c| {
            Settle::new(
                c.fence(),
                Outcome::Failed {
                    error: "dead".into(),
                },
            )
        })
        .collect();
    let settled = store.write(WriteBatch::new().settle(&settle)).await;
    assert_eq!(settled.settled.expect("settle").len(), 2);
    assert_eq!(row(&store, a).await.state, TaskState::Failed);

    let a2 = client
        .enqueue_with(Work::new("s"), strict())
        .await
        .expect("enqueue");
    assert_eq!(
        a2, a,
        "failed is among the states: the dead task still holds the key"
    );
    let b2 = client
        .enqueue_with(Work::new("s"), keyed("lenient"))
        .await
        .expect("enqueue");
    assert_ne!(b2, b, "default states: a failed task frees the key");

    let refused = client
        .enqueue_with(
            Work::new("s"),
            EnqueueOptions::new().unique(UniqueKey::new("x").states(&[TaskState::Pending])),
        )
        .await
        .expect_err("a set without processing");
    assert!(matches!(refused, Error::InvalidTask { .. }), "{refused:?}");
}

/// With a period, a completed task holds the key until its period ends; the next period
/// takes a new task.
pub async fn unique_period_holds_completed_tasks_until_the_period_ends(db: &impl TestDb) {
    let store = db.store();
    let client = client(db);
    let period = Duration::from_millis(400);
    let opts = || EnqueueOptions::new().unique(UniqueKey::new("daily").period(period));
    let first = client
        .enqueue_with(Work::new("p"), opts())
        .await
        .expect("enqueue");
    let claimed = claim_all(&store).await;
    let done = store
        .write(WriteBatch::new().complete(&[claimed[0].fence()]))
        .await;
    assert_eq!(done.completed.expect("complete"), vec![first]);
    // Within the period (or, at worst, right after it ended): the completed task, or a new
    // one once. Either way at most one task per period.
    let next = eventually("a new period", Duration::from_secs(5), || async {
        let id = client
            .enqueue_with(Work::new("p"), opts())
            .await
            .expect("enqueue");
        (id != first).then_some(id)
    })
    .await;
    assert_eq!(row(&store, next).await.state, TaskState::Pending);
    let same = client
        .enqueue_with(Work::new("p"), opts())
        .await
        .expect("enqueue");
    // A third row only when a period boundary fell between the two enqueues.
    let expected = if same == next { 2 } else { 3 };
    assert_eq!(rows_of(&store, "p").await.len(), expected);
}

/// Two rows with the same key in one batch: the first is stored, the second gets its id; a
/// key already held by a stored task gives the batch that task's id.
pub async fn unique_rows_in_one_batch(db: &impl TestDb) {
    let store = db.store();
    let client = client(db);
    let held = client
        .enqueue_with(Work::new("b-held"), keyed("held"))
        .await
        .expect("enqueue");
    let mut batch = client.batch();
    let a = batch
        .push_with(&Work::new("b"), keyed("same"))
        .expect("push");
    batch
        .push_with(&Work::new("b"), keyed("same"))
        .expect("push");
    let plain = batch.push(&Work::new("b-plain")).expect("push");
    batch
        .push_with(&Work::new("b-held"), keyed("held"))
        .expect("push");
    let ids = batch.commit().await.expect("commit");
    assert_eq!(ids, vec![a, a, plain, held]);
    assert_eq!(rows_of(&store, "b").await.len(), 1);
    assert_eq!(rows_of(&store, "b-held").await.len(), 1);

    let many = client
        .enqueue_many_with((0..3).map(|_| (Work::new("m"), keyed("many"))))
        .await
        .expect("enqueue_many");
    assert!(many.iter().all(|id| *id == many[0]), "{many:?}");
    assert_eq!(rows_of(&store, "m").await.len(), 1);
}

/// 16 clients on their own stores (as many processes) enqueue one key at once, in rounds: one
/// row per round, and every caller gets its id.
pub async fn unique_race_through_the_writer(db: &impl TestDb) {
    let store = db.store();
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(ClientBuilder::new(db.another().await).build());
    }
    for round in 0..4 {
        let key = format!("race-{round}");
        let start = Arc::new(tokio::sync::Barrier::new(16));
        let mut calls = Vec::new();
        for i in 0..16 {
            let client = clients[i % clients.len()].clone();
            let (key, start) = (key.clone(), Arc::clone(&start));
            calls.push(tokio::spawn(async move {
                start.wait().await;
                client
                    .enqueue_with(Work::new(key.clone()), keyed(&key))
                    .await
                    .expect("enqueue")
            }));
        }
        let mut ids = Vec::new();
        for call in calls {
            ids.push(call.await.expect("join"));
        }
        let rows = rows_of(&store, &key).await;
        assert_eq!(rows.len(), 1, "round {round}: one row");
        assert!(
            ids.iter().all(|id| *id == rows[0].id),
            "round {round}: {ids:?}"
        );
    }
}

/// N user transactions enqueue one key with `enqueue_in`, committing or rolling back at
/// random: exactly one row if any committed (none otherwise), and every committed caller got
/// its id.
pub async fn unique_race_in_user_transactions<D: UserTransactions>(db: &D) {
    const N: usize = 16;
    let store = db.store();
    let client = client(db);
    for round in 0..6 {
        let key = format!("tx-{round}");
        // Round 0: all roll back; round 1: all commit; then random.
        let commits: Vec<bool> = (0..N)
            .map(|_| match round {
                0 => false,
                1 => true,
                _ => uuid::Uuid::new_v4().as_bytes()[0] & 1 == 1,
            })
            .collect();
        let start = Arc::new(tokio::sync::Barrier::new(if db.concurrent() {
            N
        } else {
            1
        }));
        let calls = commits.iter().map(|commit| {
            db.enqueue_in_tx(
                client.clone(),
                Work::new(key.clone()),
                keyed(&key),
                Arc::clone(&start),
                *commit,
            )
        });
        let answers = futures_util::future::join_all(calls).await;
        let rows = rows_of(&store, &key).await;
        let committed: Vec<TaskId> = answers
            .iter()
            .zip(&commits)
            .filter(|(_, c)| **c)
            .map(|(a, _)| a.clone().expect("a committed enqueue succeeds"))
            .collect();
        if committed.is_empty() {
            assert!(
                rows.is_empty(),
                "round {round}: nothing committed, nothing stored"
            );
            continue;
        }
        assert_eq!(
            rows.len(),
            1,
            "round {round}: exactly one row ({commits:?})"
        );
        assert!(
            committed.iter().all(|id| *id == rows[0].id),
            "round {round}: every committed caller learns the survivor: {committed:?} vs {}",
            rows[0].id
        );
    }
}

/// With a runtime dispatching fresh rows locally, a deduplicated enqueue starts nothing and
/// gives back the capacity it had reserved.
pub async fn unique_dedup_starts_nothing_and_keeps_capacity(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = Runtime::builder(Arc::clone(&store), registry(&probe))
        .concurrency(2)
        .poll_interval(Duration::from_millis(50))
        .start();
    let client = rt.client();
    let first = client
        .enqueue_with(Work::sleeping("held", 300), keyed("held"))
        .await
        .expect("enqueue");
    eventually("the first run", Duration::from_secs(5), || async {
        (probe.runs("held") == 1).then_some(())
    })
    .await;
    let again = client
        .enqueue_with(Work::sleeping("held", 300), keyed("held"))
        .await
        .expect("enqueue");
    assert_eq!(again, first);
    wait_state(&store, first, TaskState::Completed, Duration::from_secs(5)).await;
    assert_eq!(probe.runs("held"), 1, "the duplicate never ran");
    // Both slots are free again: two tasks run side by side.
    client
        .enqueue_many([Work::sleeping("pair", 400), Work::sleeping("pair", 400)])
        .await
        .expect("enqueue");
    eventually(
        "both of a pair running at once",
        Duration::from_secs(5),
        || async { (probe.peak() >= 2).then_some(()) },
    )
    .await;
    rt.shutdown(Duration::from_secs(2)).await;
}
