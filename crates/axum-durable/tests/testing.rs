//! The test harness (`axum_durable::testing`) on both backends: what handlers spawned, runs
//! until idle, and the clock.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use axum_durable::core::store::{ClaimRequest, NewTask, WorkerStore as _, WriteBatch};
use axum_durable::core::WorkerId;
use axum_durable::testing::TestDurable;
use axum_durable::{
    Backoff, Durable, EnqueueOptions, Registry, Task, TaskContext, TaskError, TaskOptions,
    TaskState,
};
use serde::{Deserialize, Serialize};
use tower::ServiceExt as _;

/// Counts attempts per task; fails the first `fail_first` of each.
#[derive(Clone, Default)]
struct Calls(Arc<AtomicU32>);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Greet {
    name: String,
    #[serde(default)]
    fail_first: u32,
}

impl Task for Greet {
    const NAME: &'static str = "harness_greet";
    type State = Calls;
    async fn run(self, cx: TaskContext<Calls>) -> Result<(), TaskError> {
        let n = cx.state().0.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= self.fail_first {
            return Err(TaskError::retryable(format!("planned failure {n}")));
        }
        Ok(())
    }
    fn options() -> TaskOptions {
        // A retry ten minutes later: only the clock makes it due within a test.
        TaskOptions::default()
            .max_attempts(5)
            .backoff(Backoff::constant(Duration::from_secs(600)))
    }
}

/// Spawns the next link until `left` is zero.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Link {
    left: u32,
}

impl Task for Link {
    const NAME: &'static str = "harness_link";
    type State = Calls;
    async fn run(self, cx: TaskContext<Calls>) -> Result<(), TaskError> {
        cx.state().0.fetch_add(1, Ordering::SeqCst);
        if self.left > 0 {
            cx.client()
                .enqueue(Link {
                    left: self.left - 1,
                })
                .await
                .map_err(TaskError::retryable)?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Body_ {
    name: String,
}

async fn greet(durable: Durable, Json(body): Json<Body_>) -> StatusCode {
    durable.spawn(Greet {
        name: body.name,
        fail_first: 0,
    });
    StatusCode::ACCEPTED
}

fn registry(calls: &Calls) -> Registry {
    Registry::new()
        .register::<Greet>(calls.clone())
        .register::<Link>(calls.clone())
}

/// The harness on each available backend: a SQLite file, and a PostgreSQL schema when
/// `DURABLE_TEST_DATABASE_URL` is set.
macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let calls = super::Calls::default();
                    let t = axum_durable::testing::TestDurable::new(super::registry(&calls))
                        .await
                        .expect("harness");
                    super::$case(t, calls).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(url) = durable_testkit::database_url() else { return };
                    let schema = durable_testkit::PgSchema::new(&url).await;
                    let store = axum_durable::postgres::PostgresStore::builder(url.as_str())
                        .schema(schema.name())
                        .max_connections(8)
                        .connect()
                        .await
                        .expect("connect");
                    let calls = super::Calls::default();
                    let t = axum_durable::testing::TestDurable::with_postgres(
                        store,
                        super::registry(&calls),
                    )
                    .await
                    .expect("harness");
                    super::$case(t, calls).await;
                }
            )*
        }
    };
}

on_both!(
    a_handler_spawn_is_asserted_and_run,
    assert_spawned_names_what_was_spawned_instead,
    run_until_idle_runs_chains,
    advance_makes_delays_and_retries_due,
    advance_past_a_lease_hands_a_task_back,
);

async fn post_greet(t: &TestDurable, name: &str) -> StatusCode {
    let app = Router::new().route("/greet", post(greet)).layer(t.layer());
    let request = Request::post("/greet")
        .header("content-type", "application/json")
        .body(Body::from(format!(r#"{{"name":"{name}"}}"#)))
        .expect("request");
    app.oneshot(request).await.expect("response").status()
}

async fn a_handler_spawn_is_asserted_and_run(t: TestDurable, calls: Calls) {
    assert_eq!(post_greet(&t, "ada").await, StatusCode::ACCEPTED);
    let ada = Greet {
        name: "ada".into(),
        fail_first: 0,
    };
    t.assert_spawned(&ada).await;
    assert_eq!(t.spawned::<Greet>().await, [ada]);
    assert_eq!(
        calls.0.load(Ordering::SeqCst),
        0,
        "nothing runs before run_until_idle"
    );

    let report = t.run_until_idle().await;
    assert_eq!(report.completed_names(), ["harness_greet"]);
    assert_eq!(report.ran(), 1);
    assert_eq!(calls.0.load(Ordering::SeqCst), 1);
    // Idle: a second run has nothing to do.
    assert_eq!(t.run_until_idle().await.ran(), 0);
}

async fn assert_spawned_names_what_was_spawned_instead(t: TestDurable, _calls: Calls) {
    let t = Arc::new(t);
    let expected = Greet {
        name: "ada".into(),
        fail_first: 0,
    };
    let missing = {
        let t = Arc::clone(&t);
        tokio::spawn(async move { t.assert_spawned(&expected).await })
    };
    let message = panic_message(missing.await);
    assert!(
        message.contains("but no `harness_greet` task was spawned"),
        "{message}"
    );

    assert_eq!(post_greet(&t, "bob").await, StatusCode::ACCEPTED);
    let other = {
        let t = Arc::clone(&t);
        tokio::spawn(async move {
            t.assert_spawned(&Greet {
                name: "ada".into(),
                fail_first: 0,
            })
            .await;
        })
    };
    let message = panic_message(other.await);
    assert!(
        message.contains(
            "expected a spawned `harness_greet` task equal to\n    Greet { name: \"ada\""
        ),
        "{message}"
    );
    assert!(
        message.contains("the 1 spawned `harness_greet` task is:\n    Greet { name: \"bob\", fail_first: 0 } (pending"),
        "{message}"
    );
}

fn panic_message(joined: Result<(), tokio::task::JoinError>) -> String {
    let payload = joined.expect_err("the assertion panics").into_panic();
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

async fn run_until_idle_runs_chains(t: TestDurable, calls: Calls) {
    t.client().enqueue(Link { left: 3 }).await.expect("enqueue");
    let report = t.run_until_idle().await;
    assert_eq!(report.completed.len(), 4, "{report:?}");
    assert_eq!(calls.0.load(Ordering::SeqCst), 4);
    let mut left: Vec<u32> = t.spawned::<Link>().await.iter().map(|l| l.left).collect();
    left.sort_unstable();
    assert_eq!(left, [0, 1, 2, 3]);
}

async fn advance_makes_delays_and_retries_due(t: TestDurable, calls: Calls) {
    let hour = Duration::from_secs(3600);
    let client = t.client();
    client
        .enqueue_with(
            Greet {
                name: "later".into(),
                fail_first: 0,
            },
            EnqueueOptions::new().delay(hour),
        )
        .await
        .expect("enqueue");
    assert_eq!(t.run_until_idle().await.ran(), 0, "not due yet");
    t.clock().advance(hour).await.expect("advance");
    assert_eq!(t.run_until_idle().await.completed.len(), 1);

    // Fails once; its retry waits ten minutes.
    client
        .enqueue(Greet {
            name: "flaky".into(),
            fail_first: 2, // the counter is shared: it already counted one call
        })
        .await
        .expect("enqueue");
    let first = t.run_until_idle().await;
    assert_eq!(first.retrying.len(), 1, "{first:?}");
    assert!(first.retrying[0].run_at > t.clock().now());
    t.clock().advance(hour).await.expect("advance");
    let second = t.run_until_idle().await;
    assert_eq!(second.completed.len(), 1, "{second:?}");
    assert_eq!(second.completed[0].attempts, 2);
    assert_eq!(calls.0.load(Ordering::SeqCst), 3);
}

async fn advance_past_a_lease_hands_a_task_back(t: TestDurable, calls: Calls) {
    let task =
        NewTask::new("harness_greet", r#"{"name":"crashed","fail_first":0}"#).with_max_attempts(3);
    let store = t.store();
    store
        .write(WriteBatch::new().insert(std::slice::from_ref(&task)))
        .await
        .inserted
        .expect("insert");
    // A worker that claims it and dies.
    let claim = ClaimRequest::new(
        WorkerId::new(),
        Duration::from_secs(60),
        1,
        ["harness_greet"],
    );
    let claimed = store
        .write(WriteBatch::new().claim(&claim))
        .await
        .claimed
        .expect("claim");
    assert_eq!(claimed.len(), 1);

    t.clock()
        .advance(Duration::from_secs(61))
        .await
        .expect("advance");
    let report = t.run_until_idle().await;
    assert_eq!(report.completed.len(), 1, "{report:?}");
    let record = &report.completed[0];
    assert_eq!((record.id, record.attempts), (task.id, 2));
    assert_eq!(record.state, TaskState::Completed);
    assert_eq!(calls.0.load(Ordering::SeqCst), 1);
}

/// `TestDurable::postgres` makes a schema of its own, where the tasks are stored and run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_constructor_uses_a_fresh_schema() {
    let Some(url) = durable_testkit::database_url() else {
        return;
    };
    let calls = Calls::default();
    let t = TestDurable::postgres(&url, registry(&calls))
        .await
        .expect("harness");
    let pool = t
        .postgres_store()
        .expect("a PostgreSQL harness")
        .pool()
        .clone();
    let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(&pool)
        .await
        .expect("schema");
    assert!(schema.starts_with("durable_test_"), "{schema}");
    t.client().enqueue(Link { left: 1 }).await.expect("enqueue");
    assert_eq!(t.run_until_idle().await.completed.len(), 2);
    assert_eq!(calls.0.load(Ordering::SeqCst), 2);
    drop(t);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&pool)
    .await
    .expect("drop the schema");
}
