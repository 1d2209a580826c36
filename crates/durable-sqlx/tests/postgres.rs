#![cfg(feature = "postgres")]
//! The conformance suite and PostgreSQL-specific tests, on a real PostgreSQL server.
//!
//! Enabled by one variable: `DURABLE_TEST_DATABASE_URL=postgres://user@host:port/database`.
//! Every test works in a schema of its own (`t_<uuid v7>`, dropped at the end; leftovers
//! older than 30 minutes are swept at the next run), so tests run in parallel on one database.
//!
//! Without the variable the tests are skipped with a message on stderr, unless `CI` is set:
//! then they fail, because CI must run them.

#[path = "postgres/claim_index.rs"]
mod claim_index;
#[path = "postgres/clock_plans.rs"]
mod clock_plans;
#[path = "postgres/completion_plan.rs"]
mod completion_plan;
mod conformance;
#[path = "postgres/estimated_counts.rs"]
mod estimated_counts;
#[path = "postgres/history.rs"]
mod history;
#[path = "postgres/lanes.rs"]
mod lanes;
#[path = "postgres/migrations.rs"]
mod migrations;
#[path = "postgres/plan_cache.rs"]
mod plan_cache;
#[path = "postgres/resumed_claims.rs"]
mod resumed_claims;
#[path = "postgres/search_path.rs"]
mod search_path;
#[path = "postgres/steps_app.rs"]
mod steps_app;
#[path = "postgres/unreadable_rows.rs"]
mod unreadable_rows;

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use durable_core::store::{NewTask, Store};
use durable_core::{
    Backoff, Client, Registry, Runtime, Task, TaskContext, TaskError, TaskId, TaskOptions,
    TaskState, WorkerId,
};
use durable_sqlx::postgres::PostgresStore;
use durable_testkit::{database_url, percentile, PgDatabase, PgSchema, URL_VAR};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use conformance::TestDb;
use conformance::Writes as _;
use durable_core::store::AdminStore as _;

/// Whether `plan` (an `EXPLAIN` without `ANALYZE`) reads a table whole: a sequential scan
/// the planner costs above nothing. A lane that never held a row is scanned sequentially at
/// no cost (no pages), and one that holds rows is planned for its pages when the statement
/// runs.
fn scans_a_table(plan: &str) -> bool {
    plan.lines().filter(|l| l.contains("Seq Scan")).any(|line| {
        line.split("cost=")
            .nth(1)
            .and_then(|c| c.split("..").nth(1))
            .and_then(|c| c.split(' ').next())
            .and_then(|c| c.parse::<f64>().ok())
            .is_none_or(|cost| cost >= 1.0)
    })
}

/// Whether `plan` sorts rows: a `Sort` node (a `Merge Append` over the live partition's
/// leaves names its "Sort Key" without sorting).
fn sorts(plan: &str) -> bool {
    plan.lines().any(|line| {
        let node = line.trim_start().trim_start_matches("->").trim_start();
        node.starts_with("Sort  (") || node.starts_with("Incremental Sort  (")
    })
}

async fn store_on(url: &str, schema: &str, application_name: &str) -> PostgresStore {
    PostgresStore::builder(url)
        .schema(schema)
        .application_name(application_name)
        .max_connections(8)
        .connect()
        .await
        .expect("connect to PostgreSQL")
}

/// A fresh schema with the store migrated in it. The application name of its connections is
/// the schema name, so a test can find (and terminate) exactly its own backends.
struct PgDb {
    store: PostgresStore,
    url: String,
    schema: String,
    _guard: PgSchema,
}

impl PgDb {
    /// Another independent store (own pool) on the same schema, with its own application name.
    async fn store_named(&self, suffix: &str) -> PostgresStore {
        store_on(
            &self.url,
            &self.schema,
            &format!("{}-{suffix}", self.schema),
        )
        .await
    }

    fn pool(&self) -> &PgPool {
        self.store.pool()
    }
}

impl conformance::unique::UserTransactions for PgDb {
    fn enqueue_in_tx(
        &self,
        client: Client,
        task: conformance::tasks::Work,
        options: durable_core::EnqueueOptions,
        start: Arc<tokio::sync::Barrier>,
        commit: bool,
    ) -> conformance::unique::BoxFut<'_, Result<TaskId, String>> {
        Box::pin(async move {
            // A connection of its own per transaction: they all run at once.
            let mut conn = PgConnection::connect_with(self.pool().connect_options().as_ref())
                .await
                .map_err(|e| e.to_string())?;
            let mut tx = conn.begin().await.map_err(|e| e.to_string())?;
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
        true
    }
}

impl conformance::clock::ClockDb for PgDb {
    fn clock(&self) -> durable_sqlx::testing::TestClock {
        self.store.test_clock()
    }
}

impl TestDb for PgDb {
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.store.clone())
    }
    fn another(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Arc<dyn Store>> + Send + '_>> {
        Box::pin(async move {
            let store = store_on(&self.url, &self.schema, &self.schema).await;
            Arc::new(store) as Arc<dyn Store>
        })
    }
}

/// A fresh schema without migrations.
async fn fresh_db(url: String) -> PgDb {
    let guard = PgSchema::new(&url).await;
    let schema = guard.name().to_owned();
    let store = store_on(&url, &schema, &schema).await;
    PgDb {
        store,
        url,
        schema,
        _guard: guard,
    }
}

async fn migrated_db(url: String) -> PgDb {
    let db = fresh_db(url).await;
    db.store.migrate().await.expect("migrate");
    db
}

/// For backend-specific tests: `None` (skipped) without a database.
async fn pg_db_or_skip() -> Option<PgDb> {
    Some(migrated_db(database_url()?).await)
}

conformance_tests!(pg_db_or_skip);

// ---------------------------------------------------------------------------------------------
// Helpers for the backend-specific tests.

async fn eventually<T, F, Fut>(what: &str, deadline: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    conformance::eventually(what, deadline, check).await
}

/// The pid of the `LISTEN` backend of `application_name`, once there is one.
async fn listener_pid(pool: &PgPool, application_name: &str, not: Option<i32>) -> i32 {
    eventually("a LISTEN backend", Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, i32>(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()
               AND application_name = $1 AND query LIKE 'LISTEN%' AND pid <> $2",
        )
        .bind(application_name)
        .bind(not.unwrap_or(0))
        .fetch_optional(pool)
        .await
        .expect("pg_stat_activity")
    })
    .await
}

/// Terminates every backend of `application_name` (but not the caller's).
async fn terminate_backends(pool: &PgPool, application_name: &str) -> usize {
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = $1",
    )
    .bind(application_name)
    .fetch_all(pool)
    .await
    .expect("terminate");
    killed.len()
}

/// Records when each attempt started, for latency measurements.
#[derive(Debug, Serialize, Deserialize)]
struct Stamp {
    key: u32,
}

type StampSender = tokio::sync::mpsc::UnboundedSender<(u32, Instant)>;

impl Task for Stamp {
    const NAME: &'static str = "stamp";
    type State = StampSender;
    async fn run(self, cx: TaskContext<StampSender>) -> Result<(), TaskError> {
        let _ = cx.state().send((self.key, Instant::now()));
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Schema, migrations, transactional enqueue.

/// The task exists only if the caller's transaction commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_enqueue_commits_or_rolls_back_with_caller() {
    let Some(db) = pg_db_or_skip().await else {
        return;
    };
    let store = db.store.clone();
    sqlx::query("CREATE TABLE users (email text PRIMARY KEY)")
        .execute(store.pool())
        .await
        .expect("create");
    let client = Client::new(store.clone());

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

    // The caller's own `sqlx::Transaction<Postgres>` from its own pool works the same.
    let mut tx = store.pool().begin().await.expect("begin on the app's pool");
    let also = durable_sqlx::enqueue_in(&mut *tx, &client, conformance::tasks::Work::new("c"))
        .await
        .expect("enqueue in tx");
    tx.commit().await.expect("commit");

    assert_eq!(
        store.get(kept).await.expect("get").expect("kept").state,
        TaskState::Pending
    );
    assert_eq!(
        store.get(also).await.expect("get").expect("kept").state,
        TaskState::Pending
    );
    assert!(
        store.get(dropped).await.expect("get").is_none(),
        "rolled back with the user row"
    );
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(store.pool())
        .await
        .expect("count");
    assert_eq!(users, 1);
}

/// `NOTIFY` is sent once per transaction, only for due pending rows, and only on commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_once_per_transaction_only_for_due_rows_and_only_on_commit() {
    let Some(db) = pg_db_or_skip().await else {
        return;
    };
    let store = db.store.clone();
    let channel: String =
        sqlx::query_scalar("SELECT left('durable_tasks.' || current_schema(), 63)")
            .fetch_one(store.pool())
            .await
            .expect("channel");
    assert_eq!(channel, format!("durable_tasks.{}", db.schema));
    let mut listener = PgListener::connect_with(store.pool())
        .await
        .expect("listener");
    listener.listen(&channel).await.expect("listen");
    let mut received = async move || {
        let mut n = 0;
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(300), listener.recv()).await
        {
            n += 1;
        }
        n
    };

    // A batch of 100 due rows: one notification.
    let batch: Vec<_> = (0..100).map(|_| NewTask::new("work", "{}")).collect();
    store.insert(&batch).await.expect("insert");
    assert_eq!(received().await, 1, "one NOTIFY per insert statement");

    // Rows inserted already claimed (local dispatch) or scheduled later: none.
    let claimed: Vec<_> = (0..10)
        .map(|_| NewTask::new("work", "{}").claimed_by(WorkerId::new(), Duration::from_secs(30)))
        .collect();
    store.insert(&claimed).await.expect("insert");
    let later = NewTask::new("work", "{}").with_run_at(Utc::now() + chrono::Duration::hours(1));
    store.insert(&[later]).await.expect("insert");
    assert_eq!(received().await, 0, "nothing due: no NOTIFY");

    // Three enqueues in one caller transaction: one notification, at commit.
    let client = Client::new(store.clone());
    let mut tx = store.begin().await.expect("begin");
    for key in ["a", "b", "c"] {
        durable_sqlx::enqueue_in(&mut *tx, &client, conformance::tasks::Work::new(key))
            .await
            .expect("enqueue");
    }
    assert_eq!(received().await, 0, "not before the commit");
    tx.commit().await.expect("commit");
    assert_eq!(received().await, 1, "one per transaction");

    // Rolled back: none.
    let mut tx = store.begin().await.expect("begin");
    durable_sqlx::enqueue_in(&mut *tx, &client, conformance::tasks::Work::new("d"))
        .await
        .expect("enqueue");
    tx.rollback().await.expect("rollback");
    assert_eq!(received().await, 0, "rolled back: no NOTIFY");
}

/// Our migrations live in `_durable_migrations`; the application's own sqlx migrations in
/// `_sqlx_migrations` run before and after ours without either complaining, all in the
/// store's schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_coexist_with_application_migrations() {
    let Some(url) = database_url() else {
        return;
    };
    let db = fresh_db(url).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("20240101000000_users.sql"),
        "CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE);",
    )
    .expect("write");
    let app = sqlx::migrate::Migrator::new(dir.path())
        .await
        .expect("app migrator");
    app.run(db.pool()).await.expect("app migrations first");
    db.store.migrate().await.expect("ours second");
    app.run(db.pool()).await.expect("app migrations again");
    db.store.migrate().await.expect("ours again");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY tablename",
    )
    .bind(&db.schema)
    .fetch_all(db.pool())
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
            "durable_tasks_history",
            "durable_tasks_keyed",
            "durable_tasks_lane_1",
            "durable_tasks_lane_2",
            "durable_tasks_live",
            "durable_throughput",
            "users"
        ]
    );
    let ours: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _durable_migrations ORDER BY version")
            .fetch_all(db.pool())
            .await
            .expect("versions");
    assert_eq!(ours, migrations::embedded_versions(), "each applied once");
}

/// Four instances starting at once on a fresh schema: every `migrate()` succeeds (sqlx's
/// advisory lock serializes them) and the migration is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrate_from_four_pools() {
    let Some(url) = database_url() else {
        return;
    };
    let guard = PgSchema::new(&url).await;
    let schema = guard.name().to_owned();
    let mut handles = Vec::new();
    for i in 0..4 {
        let url = url.clone();
        let schema = schema.clone();
        handles.push(tokio::spawn(async move {
            // Each instance also creates the schema: that races too.
            let store = store_on(&url, &schema, &format!("{schema}-{i}")).await;
            store.migrate().await.map(|()| store)
        }));
    }
    let mut stores = Vec::new();
    for h in handles {
        stores.push(h.await.expect("join").expect("every migrate succeeds"));
    }
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _durable_migrations ORDER BY version")
            .fetch_all(stores[0].pool())
            .await
            .expect("migrations");
    assert_eq!(
        applied,
        migrations::embedded_versions(),
        "each applied once"
    );
    let in_schema: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'durable_tasks')",
    )
    .bind(&schema)
    .fetch_one(stores[0].pool())
    .await
    .expect("exists");
    assert!(in_schema);
    for s in &stores {
        s.insert(&[NewTask::new("work", "{}")])
            .await
            .expect("usable");
    }
}

/// Columns have native types; the state is readable text; the payload is `jsonb`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_use_native_types() {
    let Some(db) = pg_db_or_skip().await else {
        return;
    };
    let t = NewTask::new("work", r#"{"z": 1, "a": [true, null]}"#).with_priority(-3);
    db.store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    let (id, state, kind, a): (Uuid, String, String, bool) = sqlx::query_as(
        "SELECT id, state, jsonb_typeof(payload), (payload -> 'a' ->> 0)::bool FROM durable_tasks",
    )
    .fetch_one(db.pool())
    .await
    .expect("select");
    assert_eq!(id, *t.id.as_uuid());
    assert_eq!(
        (state.as_str(), kind.as_str(), a),
        ("pending", "object", true)
    );
    let r = db.store.get(t.id).await.expect("get").expect("row");
    assert_eq!(r.priority, -3);
    let v: serde_json::Value = serde_json::from_str(&r.payload).expect("json");
    assert_eq!(v, serde_json::json!({"a": [true, null], "z": 1}));
    let bad = sqlx::query("UPDATE durable_tasks SET state = 'running'")
        .execute(db.pool())
        .await;
    assert!(bad.is_err(), "CHECK constraint on state");
}

/// A schema name that needs quoting (upper case, a space) works end to end: creation,
/// `search_path`, migrations, the channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_names_needing_quotes_work() {
    let Some(url) = database_url() else {
        return;
    };
    let schema = format!(
        "Durable Tasks {}",
        &Uuid::now_v7().simple().to_string()[20..]
    );
    let _guard = PgSchema::named(&url, &schema);
    let store = store_on(&url, &schema, "durable-quoted-schema").await;
    store.migrate().await.expect("migrate");
    let t = NewTask::new("work", "{}");
    store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    let (table_schema, channel): (String, String) = sqlx::query_as(
        "SELECT (SELECT schemaname::text FROM pg_tables WHERE tablename = 'durable_tasks'
                   AND schemaname = current_schema()),
                left('durable_tasks.' || current_schema(), 63)",
    )
    .fetch_one(store.pool())
    .await
    .expect("where");
    assert_eq!(table_schema, schema);
    assert_eq!(channel, format!("durable_tasks.{schema}"));
    assert!(store.get(t.id).await.expect("get").is_some());
}

// ---------------------------------------------------------------------------------------------
// Claim plan.

/// The claim uses the partial index, not a scan of the whole table: 20,000 rows of which 1%
/// are pending, some of them of a task type the claim does not take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_claim_uses_partial_index() {
    let Some(db) = pg_db_or_skip().await else {
        return;
    };
    sqlx::query(
        "INSERT INTO durable_tasks (id, name, queue, payload, state, max_attempts, finished_at)
         SELECT gen_random_uuid(), CASE WHEN i % 700 = 0 THEN 'newer' ELSE 'work' END,
                CASE WHEN i % 3 = 0 THEN 'mail' ELSE 'default' END,
                '{}', CASE WHEN i % 100 = 0 THEN 'pending' ELSE 'completed' END, 3,
                CASE WHEN i % 100 = 0 THEN NULL ELSE now() END
         FROM generate_series(1, 20000) AS i",
    )
    .execute(db.pool())
    .await
    .expect("fill");
    sqlx::query("ANALYZE durable_tasks")
        .execute(db.pool())
        .await
        .expect("analyze");
    let any = db
        .store
        .explain_claim(64, None, &["work", "mail"])
        .await
        .expect("explain");
    eprintln!("claim plan (any queue):\n{any}");
    assert!(
        any.contains("Index Scan using durable_tasks_keyed_ready on durable_tasks_keyed"),
        "{any}"
    );
    assert!(!scans_a_table(&any), "{any}");
    let queue = db
        .store
        .explain_claim(8, Some("mail"), &["work", "mail"])
        .await
        .expect("explain");
    eprintln!("claim plan (capped queue):\n{queue}");
    assert!(
        queue.contains("Index Scan using durable_tasks_keyed_ready_queue on durable_tasks_keyed"),
        "{queue}"
    );
    assert!(!scans_a_table(&queue), "{queue}");
    // The due backlog and the report of unknown task types read the claim index too.
    let (backlog, unclaimable) = db
        .store
        .explain_counts(&["work", "mail"])
        .await
        .expect("explain");
    eprintln!("backlog plan:\n{backlog}\nunclaimable plan:\n{unclaimable}");
    for plan in [&backlog, &unclaimable] {
        assert!(plan.contains("using durable_tasks_keyed_ready"), "{plan}");
        assert!(!scans_a_table(plan), "{plan}");
    }
    // A resumed claim starts at its position: the row comparison is an index condition,
    // not a filter on rows walked from the head.
    for queue in [None, Some("mail")] {
        let resumed = db
            .store
            .explain_resumed_claim(64, queue, &["work", "mail"])
            .await
            .expect("explain");
        eprintln!("resumed claim plan ({queue:?}):\n{resumed}");
        let cond = resumed
            .lines()
            .find(|l| l.contains("Index Cond"))
            .unwrap_or_else(|| panic!("{resumed}"));
        assert!(
            cond.contains("ROW((- (priority)::integer), run_at, id) >="),
            "{resumed}"
        );
        assert!(!scans_a_table(&resumed), "{resumed}");
    }
    // And the claim takes exactly its limit.
    let claimed = db
        .store
        .claim(&durable_core::store::ClaimRequest::new(
            WorkerId::new(),
            Duration::from_secs(30),
            64,
            ["work"],
        ))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 64);
    assert!(claimed.iter().all(|c| c.name == "work"));
}

// ---------------------------------------------------------------------------------------------
// LISTEN/NOTIFY across instances.

fn stamp_runtime(
    store: PostgresStore,
) -> (
    Runtime,
    tokio::sync::mpsc::UnboundedReceiver<(u32, Instant)>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let runtime = Runtime::builder(store, Registry::new().register::<Stamp>(tx))
        .poll_interval(Duration::from_secs(3600))
        .start();
    (runtime, rx)
}

/// Enqueues `n` tasks one by one through `client` and returns how long each took from the
/// enqueue call to the start of its attempt on the other instance.
async fn pickup_latencies(
    client: &Client,
    started: &mut tokio::sync::mpsc::UnboundedReceiver<(u32, Instant)>,
    keys: std::ops::Range<u32>,
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    for key in keys {
        let sent = Instant::now();
        client.enqueue(Stamp { key }).await.expect("enqueue");
        let (got, at) = tokio::time::timeout(Duration::from_secs(5), started.recv())
            .await
            .unwrap_or_else(|_| panic!("task {key} did not start within 5 s (poll interval 1 h)"))
            .expect("runtime alive");
        assert_eq!(got, key);
        latencies.push(at - sent);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies
}

/// Runtime A polls once an hour; tasks enqueued through another store (another "process")
/// start at once because of `NOTIFY`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_wakes_another_instance_quickly() {
    let Some(db) = pg_db_or_skip().await else {
        return;
    };
    let a_name = format!("{}-a", db.schema);
    let a = db.store_named("a").await;
    let (runtime, mut started) = stamp_runtime(a.clone());
    listener_pid(db.pool(), &a_name, None).await;
    tokio::time::sleep(Duration::from_millis(100)).await; // the startup claim
    let b = db.store_named("b").await;
    let client = Client::new(b);
    let mut latencies = pickup_latencies(&client, &mut started, 0..20).await;
    latencies.sort();
    let (p50, p90, max) = (
        percentile(&latencies, 50.0).expect("latencies"),
        percentile(&latencies, 90.0).expect("latencies"),
        latencies[latencies.len() - 1],
    );
    eprintln!(
        "NOTIFY pickup latency over {} enqueues (enqueue call -> attempt start on another instance): \
         p50 {p50:?}, p90 {p90:?}, max {max:?}",
        latencies.len()
    );
    assert!(p50 < Duration::from_millis(250), "p50 {p50:?}");
    assert!(max < Duration::from_secs(1), "max {max:?}");
    assert_eq!(runtime.stats().dispatched_locally, 0);
    runtime.shutdown(Duration::from_secs(5)).await;
}

/// The `LISTEN` connection is re-established (and re-`LISTEN`s) after its backend is
/// terminated, twice in a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_relistens_after_backend_terminated() {
    let Some(db) = pg_db_or_skip().await else {
        return;
    };
    let a_name = format!("{}-a", db.schema);
    let a = db.store_named("a").await;
    let (runtime, mut started) = stamp_runtime(a);
    let client = Client::new(db.store_named("b").await);
    let mut pid = listener_pid(db.pool(), &a_name, None).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    for round in 0..2_u32 {
        let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(db.pool())
            .await
            .expect("terminate");
        assert!(killed);
        let new_pid = listener_pid(db.pool(), &a_name, Some(pid)).await;
        eprintln!("round {round}: LISTEN backend {pid} terminated, re-established as {new_pid}");
        pid = new_pid;
        let latencies = pickup_latencies(&client, &mut started, round * 10..round * 10 + 3).await;
        assert!(
            latencies.iter().all(|l| *l < Duration::from_secs(1)),
            "after re-LISTEN: {latencies:?}"
        );
    }
    runtime.shutdown(Duration::from_secs(5)).await;
}

/// Server transactions (`xact_commit + xact_rollback`) of database `name` so far.
async fn transactions_of(admin: &mut PgConnection, name: &str) -> i64 {
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *admin)
        .await
        .expect("clear");
    sqlx::query_scalar(
        "SELECT (xact_commit + xact_rollback)::int8 FROM pg_stat_database WHERE datname = $1",
    )
    .bind(name)
    .fetch_one(&mut *admin)
    .await
    .expect("stats")
}

/// Waits until database `name` has no backends: exiting backends flush their statistics.
async fn no_backends(admin: &mut PgConnection, name: &str) {
    for _ in 0..100 {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
            .bind(name)
            .fetch_one(&mut *admin)
            .await
            .expect("activity");
        if n == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An idle instance with default settings costs about one transaction per poll interval.
/// Measured in a database of its own (so parallel tests do not count) through
/// `pg_stat_database`: over a 10 s window once startup is over and counted, and over its
/// whole life, read after its backends exited (they flush their counters on exit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_instance_transactions_per_second() {
    let Some(url) = database_url() else {
        return;
    };
    let mut admin = PgConnection::connect(&url).await.expect("connect");
    let db = match PgDatabase::create(&url, "durable_idle").await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("skipped idle measurement: cannot create a database of its own ({e})");
            return;
        }
    };
    let name = db.name().to_owned();
    let options = PgConnectOptions::from_str(&url)
        .expect("url")
        .database(&name);
    let (steady, life, life_secs) = async {
        let setup = PostgresStore::builder_with_options(options.clone())
            .connect()
            .await
            .expect("connect");
        setup.migrate().await.expect("migrate");
        setup.pool().close().await;
        no_backends(&mut admin, &name).await;
        let born = transactions_of(&mut admin, &name).await;
        let life_started = Instant::now();
        let store = PostgresStore::builder_with_options(options.clone())
            .connect()
            .await
            .expect("connect");
        let (tx, _started) = tokio::sync::mpsc::unbounded_channel();
        // Default settings: poll every 2 s, lease 30 s (sweep every 7.5 s), prune every 60 s.
        let runtime =
            Runtime::builder(store.clone(), Registry::new().register::<Stamp>(tx)).start();
        // An idle backend flushes statistics of statements that ran within a second of its
        // previous flush only after 10 s: let the startup burst be counted first.
        tokio::time::sleep(Duration::from_secs(11)).await;
        let window = Duration::from_secs(10);
        let before = transactions_of(&mut admin, &name).await;
        tokio::time::sleep(window).await;
        let after = transactions_of(&mut admin, &name).await;
        runtime.shutdown(Duration::from_secs(1)).await;
        store.pool().close().await;
        let life_secs = life_started.elapsed().as_secs_f64();
        no_backends(&mut admin, &name).await;
        let dead = transactions_of(&mut admin, &name).await;
        (
            (after - before) as f64 / window.as_secs_f64(),
            dead - born,
            life_secs,
        )
    }
    .await;
    let _ = db.drop_now().await;
    eprintln!(
        "idle instance (default settings): {steady:.2} server transactions/s steady \
         (10 s window after 11 s); {life} transactions over its whole {life_secs:.1} s life incl. startup \
         and shutdown ({:.2}/s)",
        life as f64 / life_secs
    );
    // Alone, about 0.6/s: a claim per poll (2 s) and a lease sweep per 7.5 s. While the rest
    // of the suite runs on the same server it reads 1.2-16/s (the idle LISTEN backend catching
    // up with the notifications of every other test's runtimes — periodic schedules every
    // 100 ms among them — statements prepared on fresh pool connections, background workers
    // visiting the database all count), so the bound only catches a runtime that spins:
    // tens or hundreds per second.
    assert!(
        steady <= 30.0,
        "idle instance made {steady:.2} transactions/s"
    );
}

// ---------------------------------------------------------------------------------------------
// Connection loss.

/// Backends of one instance are terminated five times while tasks flow: it logs, backs off,
/// reconnects; every task completes, none is left `processing`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_termination_under_load() {
    let Some(db) = pg_db_or_skip().await else {
        return;
    };
    let a_name = format!("{}-a", db.schema);
    let a = db.store_named("a").await;
    let probe = conformance::tasks::Probe::default();
    let runtime = Runtime::builder(a, conformance::tasks::registry(&probe))
        .concurrency(8)
        .poll_interval(Duration::from_millis(100))
        .lease(Duration::from_secs(1))
        .start();
    let client = Client::new(db.store_named("b").await);
    listener_pid(db.pool(), &a_name, None).await;
    let killer = {
        let pool = db.pool().clone();
        let a_name = a_name.clone();
        tokio::spawn(async move {
            let mut total = 0;
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(150)).await;
                total += terminate_backends(&pool, &a_name).await;
            }
            total
        })
    };
    let mut ids = Vec::new();
    for batch in 0..30 {
        let tasks = (0..10).map(|i| conformance::tasks::Work::sleeping(format!("k{batch}-{i}"), 5));
        ids.extend(client.enqueue_many(tasks).await.expect("enqueue"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let terminated = killer.await.expect("killer");
    eprintln!("terminated {terminated} backends of the instance in 5 rounds");
    assert!(terminated >= 5, "the instance had backends to kill");
    let store = db.store.clone();
    eventually("every task completed", Duration::from_secs(60), || async {
        let c = store.counts().await.expect("counts");
        (c.completed == 300).then_some(())
    })
    .await;
    let counts = store.counts().await.expect("counts");
    assert_eq!(
        (counts.pending, counts.processing, counts.failed),
        (0, 0, 0)
    );
    for batch in 0..30 {
        for i in 0..10 {
            assert!(probe.runs(&format!("k{batch}-{i}")) >= 1);
        }
    }
    assert_eq!(ids.len(), 300);
    runtime.shutdown(Duration::from_secs(5)).await;
}

// ---------------------------------------------------------------------------------------------
// Several instances on one database.

const LOGGED_TASKS: u32 = 5000;
const LOGGED_MAX_ATTEMPTS: u32 = 6;
/// Set (to the schema) in the child process of `three_instances_share_5000_tasks`.
const CHILD_SCHEMA_VAR: &str = "DURABLE_TEST_CHILD_SCHEMA";

/// What a logged attempt reports to.
#[derive(Clone, Debug)]
struct LogState {
    pool: PgPool,
    instance: i32,
    running: Arc<Mutex<HashSet<TaskId>>>,
    violations: Arc<Mutex<Vec<String>>>,
}

impl LogState {
    fn new(pool: PgPool, instance: i32) -> Self {
        Self {
            pool,
            instance,
            running: Arc::default(),
            violations: Arc::default(),
        }
    }

    fn violation(&self, what: String) {
        self.violations.lock().expect("lock").push(what);
    }
}

/// Writes one row per attempt into `exec_log` (primary key (task_id, attempt)); fails about
/// 20% of attempts (never the last one) with a retryable error.
#[derive(Debug, Serialize, Deserialize)]
struct Logged {
    n: u32,
}

fn planned_failure(id: TaskId, attempt: u32) -> bool {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (id, attempt).hash(&mut h);
    attempt < LOGGED_MAX_ATTEMPTS && h.finish().is_multiple_of(5)
}

impl Task for Logged {
    const NAME: &'static str = "logged";
    type State = LogState;
    async fn run(self, cx: TaskContext<LogState>) -> Result<(), TaskError> {
        let state = cx.state();
        let (id, attempt) = (cx.id(), cx.attempt());
        if !state.running.lock().expect("lock").insert(id) {
            state.violation(format!(
                "task {id} attempt {attempt} started while another attempt ran"
            ));
        }
        let started: DateTime<Utc> = Utc::now();
        tokio::time::sleep(Duration::from_millis(u64::from(self.n % 3))).await;
        let fail = planned_failure(id, attempt);
        state.running.lock().expect("lock").remove(&id);
        let finished: DateTime<Utc> = Utc::now();
        let logged = sqlx::query(
            "INSERT INTO exec_log (task_id, attempt, instance, started_at, finished_at, ok)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.as_uuid())
        .bind(attempt as i32)
        .bind(state.instance)
        .bind(started)
        .bind(finished)
        .bind(!fail)
        .execute(&state.pool)
        .await;
        if let Err(e) = logged {
            state.violation(format!(
                "task {id} attempt {attempt}: exec_log insert failed: {e}"
            ));
        }
        if fail {
            return Err(TaskError::retryable(format!("planned failure {attempt}")));
        }
        Ok(())
    }
    fn options() -> TaskOptions {
        TaskOptions::default()
            .max_attempts(LOGGED_MAX_ATTEMPTS)
            .backoff(Backoff::constant(Duration::from_millis(10)).jitter(0.0))
    }
}

fn logged_runtime(store: PostgresStore, instance: i32) -> (Runtime, LogState) {
    let state = LogState::new(store.pool().clone(), instance);
    let runtime = Runtime::builder(store, Registry::new().register::<Logged>(state.clone()))
        .concurrency(16)
        .poll_interval(Duration::from_millis(200))
        .lease(Duration::from_secs(10))
        .start();
    (runtime, state)
}

/// The instance in another OS process: this test binary, re-run with only this test selected
/// and the schema in `DURABLE_TEST_CHILD_SCHEMA`. Without that variable (a normal run) it
/// does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process_instance() {
    let Ok(schema) = std::env::var(CHILD_SCHEMA_VAR) else {
        return;
    };
    let url = std::env::var(URL_VAR).expect("the parent passes the database URL");
    let store = store_on(&url, &schema, &format!("{schema}-p")).await;
    let (runtime, state) = logged_runtime(store.clone(), 2);
    let deadline = Instant::now() + Duration::from_secs(120);
    while store.counts().await.expect("counts").completed < u64::from(LOGGED_TASKS) {
        assert!(
            Instant::now() < deadline,
            "child: tasks did not complete in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    runtime.shutdown(Duration::from_secs(5)).await;
    println!("child process stats: {:?}", runtime.stats());
    let violations = state.violations.lock().expect("lock").clone();
    assert!(violations.is_empty(), "{violations:#?}");
}

/// Starts the child-process instance on `schema`.
fn spawn_child_instance(schema: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "child_process_instance",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_SCHEMA_VAR, schema)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the child instance")
}

/// Three instances on separate pools — two in this process, one in a child process — share
/// 5,000 tasks with ~20% retryable failures: every task completes, no attempt runs twice or
/// overlaps another attempt of its task, none exceeds its attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_5000_tasks() {
    let Some(db) = pg_db_or_skip().await else {
        return;
    };
    sqlx::query(
        "CREATE TABLE exec_log (
            task_id uuid NOT NULL, attempt integer NOT NULL, instance integer NOT NULL,
            started_at timestamptz NOT NULL, finished_at timestamptz NOT NULL, ok boolean NOT NULL,
            PRIMARY KEY (task_id, attempt))",
    )
    .execute(db.pool())
    .await
    .expect("exec_log");
    let child = spawn_child_instance(&db.schema);
    let mut local = Vec::new();
    for i in 0..2 {
        local.push(logged_runtime(db.store_named(&format!("i{i}")).await, i));
    }
    // Start once the child listens too, so all three take part from the beginning.
    listener_pid(db.pool(), &format!("{}-p", db.schema), None).await;
    let started = Instant::now();
    // Enqueued through both local instances' clients, 250 per transaction.
    let mut enqueuers = Vec::new();
    for chunk in 0..(LOGGED_TASKS / 250) {
        let client = local[chunk as usize % 2].0.client();
        enqueuers.push(tokio::spawn(async move {
            client
                .enqueue_many((chunk * 250..(chunk + 1) * 250).map(|n| Logged { n }))
                .await
                .expect("enqueue")
        }));
    }
    for e in enqueuers {
        e.await.expect("enqueuer");
    }
    let store = db.store.clone();
    eventually("every task completed", Duration::from_secs(120), || async {
        let c = store.counts().await.expect("counts");
        (u64::from(LOGGED_TASKS) == c.completed).then_some(())
    })
    .await;
    let elapsed = started.elapsed();
    for (rt, _) in &local {
        rt.shutdown(Duration::from_secs(5)).await;
    }
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("child output");
    let child_out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child instance failed: {child_out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM exec_log")
        .fetch_one(db.pool())
        .await
        .expect("count");
    eprintln!(
        "3 instances (2 in-process, 1 child process), {LOGGED_TASKS} tasks, {attempts} attempts \
         in {elapsed:.2?} ({:.0} tasks/s); in-process stats: {:?}; {}",
        f64::from(LOGGED_TASKS) / elapsed.as_secs_f64(),
        local.iter().map(|(rt, _)| rt.stats()).collect::<Vec<_>>(),
        child_out
            .find("child process stats")
            .map_or(child_out.as_ref(), |at| child_out[at..]
                .lines()
                .next()
                .unwrap_or_default())
    );
    for (_, state) in &local {
        let violations = state.violations.lock().expect("lock").clone();
        assert!(violations.is_empty(), "{violations:#?}");
    }
    check_execution_log(&db).await;
}

/// Every task completed once, its attempts ran one after another, each exactly once, within
/// its max attempts; every instance took part.
async fn check_execution_log(db: &PgDb) {
    let counts = db.store.counts().await.expect("counts");
    assert_eq!(
        (
            counts.pending,
            counts.processing,
            counts.failed,
            counts.completed
        ),
        (0, 0, 0, u64::from(LOGGED_TASKS))
    );
    let (ok, distinct_ok, max_attempt): (i64, i64, i32) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE ok), count(DISTINCT task_id) FILTER (WHERE ok), max(attempt)
         FROM exec_log",
    )
    .fetch_one(db.pool())
    .await
    .expect("log");
    let tasks = i64::from(LOGGED_TASKS);
    assert_eq!((ok, distinct_ok), (tasks, tasks), "one success each");
    assert!(max_attempt <= LOGGED_MAX_ATTEMPTS as i32);
    let overlapping: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM exec_log a JOIN exec_log b
           ON a.task_id = b.task_id AND a.attempt < b.attempt AND b.started_at < a.finished_at",
    )
    .fetch_one(db.pool())
    .await
    .expect("overlap");
    assert_eq!(overlapping, 0, "attempts of one task overlapped in time");
    // Each task's stored attempt count is exactly the attempts that ran: 1..=attempts, once.
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM durable_tasks t
         LEFT JOIN (SELECT task_id, count(*) AS n, max(attempt) AS top FROM exec_log GROUP BY task_id) l
           ON l.task_id = t.id
         WHERE l.n IS DISTINCT FROM t.attempts OR l.top IS DISTINCT FROM t.attempts",
    )
    .fetch_one(db.pool())
    .await
    .expect("attempts");
    assert_eq!(mismatched, 0);
    let failures: i64 = sqlx::query_scalar("SELECT count(*) FROM exec_log WHERE NOT ok")
        .fetch_one(db.pool())
        .await
        .expect("failures");
    assert!(
        failures > tasks / 10,
        "about 20% of attempts fail: {failures}"
    );
    let instances: Vec<i32> =
        sqlx::query_scalar("SELECT DISTINCT instance FROM exec_log ORDER BY instance")
            .fetch_all(db.pool())
            .await
            .expect("instances");
    assert_eq!(instances, [0, 1, 2], "every instance ran tasks");
}
