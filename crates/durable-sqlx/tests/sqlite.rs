//! The conformance suite and SQLite-specific tests, on real SQLite files.

mod conformance;
#[path = "sqlite/migrations.rs"]
mod migrations;
#[path = "sqlite/steps_app.rs"]
mod steps_app;
#[path = "sqlite/unreadable_rows.rs"]
mod unreadable_rows;
#[path = "sqlite/upgrade.rs"]
mod upgrade;
#[path = "sqlite/wal_limit.rs"]
mod wal_limit;
#[path = "sqlite/writer_transaction.rs"]
mod writer_transaction;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use durable_core::store::Store;
use durable_core::TaskState;
use durable_sqlx::sqlite::SqliteStore;

use conformance::TestDb;
use conformance::Writes as _;
use durable_core::store::{AdminStore as _, WorkerStore as _};

struct SqliteDb {
    _file: durable_testkit::SqliteFile,
    url: String,
    store: Arc<dyn Store>,
    clock: durable_sqlx::testing::TestClock,
}

impl conformance::clock::ClockDb for SqliteDb {
    fn clock(&self) -> durable_sqlx::testing::TestClock {
        self.clock.clone()
    }
}

impl TestDb for SqliteDb {
    fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }
    fn another(&self) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>> {
        Box::pin(async move {
            let s = SqliteStore::connect(&self.url).await.expect("reopen");
            Arc::new(s) as Arc<dyn Store>
        })
    }
}

impl conformance::unique::UserTransactions for SqliteDb {
    fn enqueue_in_tx(
        &self,
        client: durable_core::Client,
        task: conformance::tasks::Work,
        options: durable_core::EnqueueOptions,
        start: Arc<tokio::sync::Barrier>,
        commit: bool,
    ) -> conformance::unique::BoxFut<'_, Result<durable_core::TaskId, String>> {
        Box::pin(async move {
            let store = SqliteStore::connect(&self.url)
                .await
                .map_err(|e| e.to_string())?;
            let mut tx = store.begin().await.map_err(|e| e.to_string())?;
            start.wait().await;
            let id = durable_sqlx::enqueue_in_with(&mut *tx, &client, task, options)
                .await
                .map_err(|e| e.to_string())?;
            if commit {
                tx.commit().await.map_err(|e| e.to_string())?;
            } else {
                tx.rollback().await.map_err(|e| e.to_string())?;
            }
            Ok(id)
        })
    }
    fn concurrent(&self) -> bool {
        false
    }
}

async fn sqlite_db() -> SqliteDb {
    let file = durable_testkit::SqliteFile::new();
    let url = file.url();
    let store = SqliteStore::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    SqliteDb {
        _file: file,
        url,
        clock: store.test_clock(),
        store: Arc::new(store),
    }
}

async fn sqlite_db_for_suite() -> Option<SqliteDb> {
    Some(sqlite_db().await)
}

conformance_tests!(sqlite_db_for_suite);

#[tokio::test]
async fn missing_file_and_directories_are_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested").join("dirs").join("new.db");
    assert!(!path.exists());
    let store = SqliteStore::connect(path.display().to_string())
        .await
        .expect("bare path");
    store.migrate().await.expect("migrate");
    assert!(path.exists());
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.writer_pool())
        .await
        .expect("pragma");
    assert_eq!(mode, "wal");
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(store.writer_pool())
        .await
        .expect("pragma");
    assert_eq!(sync, 2, "synchronous=FULL by default");
}

#[tokio::test]
async fn in_memory_database_works() {
    let store = SqliteStore::connect("sqlite::memory:")
        .await
        .expect("memory");
    store.migrate().await.expect("migrate");
    let t = durable_core::store::NewTask::new("work", "{}");
    store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    assert_eq!(
        store.get(t.id).await.expect("get").expect("row").state,
        TaskState::Pending
    );
}

#[tokio::test]
async fn ids_are_readable_text() {
    let db = sqlite_db().await;
    let t = durable_core::store::NewTask::new("work", "{}");
    db.store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    let store = SqliteStore::connect(&db.url).await.expect("open");
    let (id, state): (String, String) = sqlx::query_as("SELECT id, state FROM durable_tasks")
        .fetch_one(store.reader_pool())
        .await
        .expect("select");
    assert_eq!(id, t.id.to_string());
    assert_eq!(id.len(), 36);
    assert_eq!(state, "pending");
}

/// Our migrations live in `_durable_migrations`; the application's own sqlx migrations in
/// `_sqlx_migrations` run before and after ours without either complaining.
#[tokio::test]
async fn migrations_coexist_with_application_migrations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app_migrations = dir.path().join("migrations");
    std::fs::create_dir(&app_migrations).expect("mkdir");
    std::fs::write(
        app_migrations.join("20240101000000_users.sql"),
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE);",
    )
    .expect("write");
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    let store = SqliteStore::connect(&url).await.expect("connect");
    let app = sqlx::migrate::Migrator::new(app_migrations.as_path())
        .await
        .expect("app migrator");
    app.run(store.writer_pool())
        .await
        .expect("app migrations first");
    store.migrate().await.expect("ours second");
    app.run(store.writer_pool())
        .await
        .expect("app migrations again");
    store.migrate().await.expect("ours again");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(store.reader_pool())
    .await
    .expect("tables");
    assert_eq!(
        tables,
        [
            "_durable_migrations",
            "_sqlx_migrations",
            "durable_idempotency",
            "durable_schedules",
            "durable_steps",
            "durable_tasks",
            "durable_throughput",
            "users"
        ]
    );
}

/// The task exists only if the caller's transaction commits.
#[tokio::test]
async fn transactional_enqueue_commits_or_rolls_back_with_caller() {
    let db = sqlite_db().await;
    let store = SqliteStore::connect(&db.url).await.expect("open");
    sqlx::query("CREATE TABLE users (email TEXT PRIMARY KEY)")
        .execute(store.writer_pool())
        .await
        .expect("create");
    let client = durable_core::Client::new(store.clone());

    let mut tx = store.begin().await.expect("begin");
    sqlx::query("INSERT INTO users VALUES ('a@x')")
        .execute(&mut *tx)
        .await
        .expect("user");
    let kept = durable_sqlx::enqueue_in(&mut *tx, &client, conformance::tasks::Work::new("a"))
        .await
        .expect("enqueue in tx");
    tx.commit().await.expect("commit");

    let mut tx = store.begin().await.expect("begin");
    sqlx::query("INSERT INTO users VALUES ('b@x')")
        .execute(&mut *tx)
        .await
        .expect("user");
    let dropped = durable_sqlx::enqueue_in(&mut *tx, &client, conformance::tasks::Work::new("b"))
        .await
        .expect("enqueue in tx");
    tx.rollback().await.expect("rollback");

    assert_eq!(
        store.get(kept).await.expect("get").expect("kept").state,
        TaskState::Pending
    );
    assert!(
        store.get(dropped).await.expect("get").is_none(),
        "rolled back with the user row"
    );
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(store.reader_pool())
        .await
        .expect("count");
    assert_eq!(users, 1);
}

/// A second process holding the write lock makes writes wait (busy_timeout), not fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_for_a_lock_held_elsewhere() {
    let db = sqlite_db().await;
    let other = SqliteStore::connect(&db.url).await.expect("open");
    let mut lock = other.begin().await.expect("begin immediate elsewhere");
    let store = Arc::clone(&db.store);
    let write = tokio::spawn(async move {
        store
            .insert(&[durable_core::store::NewTask::new("work", "{}")])
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!write.is_finished(), "the write waits for the lock");
    sqlx::query("SELECT 1")
        .execute(&mut *lock)
        .await
        .expect("hold");
    lock.commit().await.expect("release");
    write
        .await
        .expect("join")
        .expect("the write succeeds after the lock is released");
}

/// A claim that waits for the writer connection (held by a handler's transaction) sees the
/// rows that transaction commits: its "now" is taken once it holds the connection, not when
/// it was asked for. (Found by the SIGTERM-right-away process test: the claim behind five
/// signup transactions saw one of their tasks.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_waiting_for_the_writer_sees_rows_committed_meanwhile() {
    use durable_core::store::{ClaimRequest, WriteBatch};
    use durable_core::WorkerId;
    let db = sqlite_db().await;
    let store = SqliteStore::connect(&db.url).await.expect("open");
    let client = durable_core::Client::new(store.clone());
    let mut tx = store.begin().await.expect("begin");
    let owner = WorkerId::new();
    let claimer = {
        let store = store.clone();
        tokio::spawn(async move {
            let request =
                ClaimRequest::new(owner, std::time::Duration::from_secs(30), 10, ["work"]);
            store.write(WriteBatch::new().claim(&request)).await.claimed
        })
    };
    // Let the claim queue up behind the transaction, and the clock move past its start.
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let id = durable_sqlx::enqueue_in(&mut *tx, &client, conformance::tasks::Work::new("late"))
        .await
        .expect("enqueue in tx");
    tx.commit().await.expect("commit");
    let got = claimer.await.expect("join").expect("claim");
    assert_eq!(got.iter().map(|c| c.id).collect::<Vec<_>>(), vec![id]);
}

/// Where an attempt ran: its runtime's flavor and its thread's name.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct WhereAmI {
    n: u32,
}

type Sightings = Arc<std::sync::Mutex<Vec<(tokio::runtime::RuntimeFlavor, Option<String>)>>>;

impl durable_core::Task for WhereAmI {
    const NAME: &'static str = "where_am_i";
    type State = Sightings;
    async fn run(
        self,
        cx: durable_core::TaskContext<Sightings>,
    ) -> Result<(), durable_core::TaskError> {
        let flavor = tokio::runtime::Handle::current().runtime_flavor();
        let thread = std::thread::current().name().map(str::to_owned);
        cx.state().lock().expect("sightings").push((flavor, thread));
        Ok(())
    }
}

/// SQLite's writer runs on a thread of its own, and starts the attempts it dispatches or
/// claims from there: they must still run on the application's runtime, whose tasks they
/// share state with (and whose shutdown drains them), never on the writer's thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_run_on_the_application_runtime_not_the_writer_thread() {
    let db = sqlite_db().await;
    let sightings = Sightings::default();
    let registry = durable_core::Registry::new().register::<WhereAmI>(Arc::clone(&sightings));
    let rt = durable_core::Runtime::builder(Arc::clone(&db.store), registry).start();
    let client = rt.client();
    // Dispatched locally from the writer's cycle...
    client
        .enqueue_many((0..10).map(|n| WhereAmI { n }))
        .await
        .expect("enqueue");
    // ...and claimed by the writer's cycle after the caller's own transaction.
    let store = SqliteStore::connect(&db.url).await.expect("open");
    let mut tx = store.begin().await.expect("begin");
    for n in 10..20 {
        durable_sqlx::enqueue_in(&mut *tx, &client, WhereAmI { n })
            .await
            .expect("enqueue in tx");
    }
    tx.commit().await.expect("commit");
    client.notify_committed();
    conformance::eventually(
        "20 attempts ran",
        std::time::Duration::from_secs(10),
        || async { (sightings.lock().expect("sightings").len() == 20).then_some(()) },
    )
    .await;
    rt.shutdown(std::time::Duration::from_secs(5)).await;
    for (flavor, thread) in sightings.lock().expect("sightings").iter() {
        assert_eq!(*flavor, tokio::runtime::RuntimeFlavor::MultiThread);
        assert_ne!(thread.as_deref(), Some("durable-writer"));
    }
}
