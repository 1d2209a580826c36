//! Steps survive a crash: `example-signup`'s three-step onboarding task, killed with SIGKILL
//! between its second and third step, then recovered by a restarted process. Steps 1 and 2
//! must not run again (their side effects are counted), step 3 runs once, and the task
//! completes in the transaction that writes its `onboarded` row — once.
//!
//! Runs on both backends (PostgreSQL with `DURABLE_TEST_DATABASE_URL`).

use std::time::Duration;

use durable_tests::{wait_until, Backend, Inspector, Server, TestDb};

/// Deadline for any condition that should hold "soon" (generous: 2 cores, parallel tests).
const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_steps_survive_sigkill_between_steps() {
    steps_survive_sigkill(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_steps_survive_sigkill_between_steps() {
    steps_survive_sigkill(Backend::Postgres).await;
}

async fn steps_survive_sigkill(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    // A short lease: the restarted process recovers the killed one's task soon.
    let lease = ("LEASE_MS", "1000");
    let mut first = Server::start(&db, &[lease, ("ONBOARD_PAUSE_AFTER_STEP", "2")]).await;
    let inspector = Inspector::connect(&db).await;
    let task_id = onboard(&first, "grace@example.com").await;

    // Steps 1 and 2 ran and are checkpointed; the attempt now waits before step 3.
    wait_until("steps 1 and 2 are checkpointed", DEADLINE, async || {
        let steps = checkpoints(&inspector, &task_id).await;
        if steps == ["create-workspace", "grant-credits"] {
            Ok(())
        } else {
            Err(steps)
        }
    })
    .await;
    assert_eq!(
        effects(&inspector, &task_id).await,
        [
            ("create-workspace".to_owned(), 1),
            ("grant-credits".to_owned(), 1)
        ]
    );
    first.sigkill();

    let second = Server::start(&db, &[lease]).await;
    wait_until("the onboarding task completes", DEADLINE, async || {
        let snapshot = inspector.snapshot().await;
        match snapshot.task(&task_id) {
            Some(row) if row.state == "completed" => Ok(row.attempts),
            other => Err(other.cloned()),
        }
    })
    .await;
    assert_eq!(
        effects(&inspector, &task_id).await,
        [
            ("create-workspace".to_owned(), 1),
            ("grant-credits".to_owned(), 1),
            ("notify-team".to_owned(), 1)
        ],
        "steps 1 and 2 must not run again after the crash, step 3 once"
    );
    assert_eq!(onboarded(&inspector, &task_id).await, 1);
    let row = inspector.snapshot().await;
    let row = row.task(&task_id).expect("the task");
    assert_eq!(
        row.attempts, 2,
        "one attempt killed, one recovered: {row:?}"
    );
    assert_eq!(
        second.log_count("onboarding step ran"),
        1,
        "{}",
        second.log_tail(40)
    );
}

/// `POST /onboard`; the stored task's id.
async fn onboard(server: &Server, email: &str) -> String {
    let response = durable_tests::http::client()
        .post(server.url("/onboard"))
        .json(&serde_json::json!({ "email": email }))
        .send()
        .await
        .expect("POST /onboard");
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.expect("a JSON answer");
    body["task_id"]
        .as_str()
        .expect("task_id in the answer")
        .to_ascii_lowercase()
}

/// The task's checkpointed steps, by name.
async fn checkpoints(inspector: &Inspector, task_id: &str) -> Vec<String> {
    match inspector {
        Inspector::Sqlite(pool) => {
            sqlx::query_scalar("SELECT name FROM durable_steps WHERE task_id = ? ORDER BY name")
                .bind(task_id)
                .fetch_all(pool)
                .await
                .expect("read durable_steps")
        }
        Inspector::Postgres(pool) => sqlx::query_scalar(
            "SELECT name FROM durable_steps WHERE task_id = $1::uuid ORDER BY name",
        )
        .bind(task_id)
        .fetch_all(pool)
        .await
        .expect("read durable_steps"),
    }
}

/// How many times each step's side effect happened, by step name.
async fn effects(inspector: &Inspector, task_id: &str) -> Vec<(String, i64)> {
    match inspector {
        Inspector::Sqlite(pool) => sqlx::query_as(
            "SELECT step, count(*) FROM onboarding_effects WHERE task_id = ? \
             GROUP BY step ORDER BY step",
        )
        .bind(task_id)
        .fetch_all(pool)
        .await
        .expect("read onboarding_effects"),
        Inspector::Postgres(pool) => sqlx::query_as(
            "SELECT step, count(*) FROM onboarding_effects WHERE task_id = $1 \
             GROUP BY step ORDER BY step",
        )
        .bind(task_id)
        .fetch_all(pool)
        .await
        .expect("read onboarding_effects"),
    }
}

/// The task's `onboarded` rows.
async fn onboarded(inspector: &Inspector, task_id: &str) -> i64 {
    match inspector {
        Inspector::Sqlite(pool) => {
            sqlx::query_scalar("SELECT count(*) FROM onboarded WHERE task_id = ?")
                .bind(task_id)
                .fetch_one(pool)
                .await
        }
        Inspector::Postgres(pool) => {
            sqlx::query_scalar("SELECT count(*) FROM onboarded WHERE task_id = $1")
                .bind(task_id)
                .fetch_one(pool)
                .await
        }
    }
    .expect("read onboarded")
}
