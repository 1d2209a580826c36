//! Idempotent signups through the real `example-signup` process: the process dies (aborts)
//! right after a signup's transaction commits and before its response is written; the client
//! retries with the same `Idempotency-Key` against the restarted process and gets the
//! recorded answer — one user, one email task, one email sent, the same status and body.
//!
//! On both backends; the PostgreSQL variant needs `DURABLE_TEST_DATABASE_URL` (skipped
//! without it, except in CI).

use std::time::Duration;

use durable_tests::{wait_until, Backend, Inspector, Server, TestDb};

const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_crash_between_commit_and_response_then_retry() {
    crash_then_retry(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crash_between_commit_and_response_then_retry() {
    crash_then_retry(Backend::Postgres).await;
}

async fn signup(
    client: &reqwest::Client,
    server: &Server,
    key: &str,
    email: &str,
) -> reqwest::Result<(u16, Option<String>, String)> {
    let response = client
        .post(server.url("/signup"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(format!(r#"{{"email":"{email}"}}"#))
        .send()
        .await?;
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((status, replayed, response.text().await?))
}

async fn crash_then_retry(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let email = "retry@example.test";
    let key = "6f1c2a4e-signup-1";
    let client = durable_tests::http::client();

    // The first attempt: committed, then the process dies before answering.
    let mut crashing = Server::start(&db, &[("CRASH_AFTER_SIGNUP_COMMIT", "1")]).await;
    let inspector = Inspector::connect(&db).await; // once the server created the database
    let lost = signup(&client, &crashing, key, email).await;
    assert!(lost.is_err(), "the client must get no answer: {lost:?}");
    let status = crashing.wait_exit(DEADLINE).await;
    assert!(!status.success(), "the process died: {status:?}");
    let after_crash = inspector.snapshot().await;
    assert!(
        after_crash.has_user(email),
        "the user was committed before the crash"
    );

    // The client retries with the same key against the restarted process.
    let server = Server::start(&db, &[("EMAIL_DELAY_MS", "10")]).await;
    let (status, replayed, body) = signup(&client, &server, key, email)
        .await
        .expect("the retry is answered");
    assert_eq!(status, 201, "the recorded answer: {body}");
    assert_eq!(replayed.as_deref(), Some("true"), "a replay, not a rerun");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    let task_id = answer["task_id"].as_str().expect("task id").to_owned();
    assert!(answer["user_id"].is_i64(), "{body}");

    // A retry of the retry: byte for byte the same answer.
    let (again_status, _, again) = signup(&client, &server, key, email)
        .await
        .expect("answered");
    assert_eq!((again_status, again.as_str()), (201, body.as_str()));

    // One user, one email task, one email sent — the task the answer names.
    let snapshot = wait_until("the welcome email is sent", DEADLINE, async || {
        let snapshot = inspector.snapshot().await;
        if snapshot.sent_count(email) == 1 {
            Ok(snapshot)
        } else {
            Err(snapshot.counts())
        }
    })
    .await;
    assert_eq!(
        snapshot.users.iter().filter(|u| *u == email).count(),
        1,
        "one user: {:?}",
        snapshot.users
    );
    assert_eq!(snapshot.tasks.len(), 1, "one task: {:?}", snapshot.tasks);
    assert!(
        snapshot.task(&task_id).is_some(),
        "the answer names the stored task"
    );
    assert_eq!(snapshot.sent, [(email.to_owned(), task_id)]);

    // Another body under the same key is refused; a new key runs (and meets the
    // duplicate email).
    let (status, _, _) = signup(&client, &server, key, "other@example.test")
        .await
        .expect("answered");
    assert_eq!(status, 422);
    let (status, replayed, _) = signup(&client, &server, "another-key", email)
        .await
        .expect("answered");
    assert_eq!(
        (status, replayed),
        (409, None),
        "a new key runs the handler"
    );
}
