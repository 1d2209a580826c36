//! A transaction from `SqliteStore::begin` holds SQLite's only writer connection: an enqueue
//! through the `Client` awaited inside it could never be written. It fails at once with an
//! error that says so, instead of waiting out the writer's acquire timeout (30 s) while every
//! other write of the process waits too.

use std::time::{Duration, Instant};

use durable_core::{Client, Error};
use durable_sqlx::sqlite::SqliteStore;

use crate::conformance::tasks::Work;

/// Well under the writer's 30 s acquire timeout: the old behaviour fails here.
const PROMPTLY: Duration = Duration::from_secs(5);

async fn enqueue_inside_begin(store: &SqliteStore, client: &Client) {
    let mut tx = store.begin().await.expect("begin");
    let started = Instant::now();
    let answer = tokio::time::timeout(PROMPTLY, client.enqueue(Work::new("inside")))
        .await
        .expect("the enqueue answers at once instead of waiting for the writer connection");
    let error = answer.expect_err("an enqueue through the client inside begin() cannot work");
    assert!(matches!(error, Error::InsideWriterTransaction), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("SQLite's only writer connection") && message.contains("spawn_in"),
        "{message}"
    );
    assert!(started.elapsed() < PROMPTLY, "{:?}", started.elapsed());
    // The transaction is still usable: the task goes in through it instead.
    let id = durable_sqlx::enqueue_in(&mut *tx, client, Work::new("in-tx"))
        .await
        .expect("enqueue in tx");
    tx.commit().await.expect("commit");
    assert!(durable_core::store::AdminStore::get(store, id)
        .await
        .expect("get")
        .is_some());
}

/// Inside a spawned task (a handler), and in a runtime's main future (`block_on`, no task id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_through_the_client_inside_begin_fails_at_once() {
    let db = crate::sqlite_db().await;
    let store = SqliteStore::connect(&db.url).await.expect("open");
    let client = Client::new(store.clone());
    enqueue_inside_begin(&store, &client).await;
    let (s, c) = (store.clone(), client.clone());
    tokio::spawn(async move { enqueue_inside_begin(&s, &c).await })
        .await
        .expect("spawned");
    // Other tasks are not concerned: they wait for the transaction as before.
    let tx = store.begin().await.expect("begin");
    let other = tokio::spawn({
        let client = client.clone();
        async move { client.enqueue(Work::new("other task")).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !other.is_finished(),
        "another task waits for the transaction"
    );
    tx.commit().await.expect("commit");
    other.await.expect("join").expect("enqueued once committed");
}

/// Right after a commit (or a rollback) the same task enqueues through the client: the
/// connection is on its way back to the pool, and the check must not mistake that for a
/// transaction still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_right_after_commit_or_rollback_works() {
    let db = crate::sqlite_db().await;
    let store = SqliteStore::connect(&db.url).await.expect("open");
    let client = Client::new(store.clone());
    let (s, c) = (store.clone(), client.clone());
    tokio::spawn(async move {
        for i in 0..100 {
            let mut tx = s.begin().await.expect("begin");
            durable_sqlx::enqueue_in(&mut *tx, &c, Work::new(format!("tx-{i}")))
                .await
                .expect("enqueue in tx");
            if i % 2 == 0 {
                tx.commit().await.expect("commit");
            } else {
                drop(tx);
            }
            c.enqueue(Work::new(format!("after-{i}")))
                .await
                .expect("enqueue after the transaction ended");
        }
    })
    .await
    .expect("spawned");
    for i in 0..20 {
        let tx = store.begin().await.expect("begin");
        tx.rollback().await.expect("rollback");
        client
            .enqueue(Work::new(format!("main-{i}")))
            .await
            .expect("enqueue after rollback");
    }
    let counts = durable_core::store::AdminStore::counts(&store)
        .await
        .expect("counts");
    assert_eq!(counts.pending, 50 + 100 + 20);
}
