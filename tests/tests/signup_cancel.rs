//! Whole-system tests of `example-signup`'s cancellation and snooze: `POST /tasks/{id}/cancel`
//! on a welcome email being sent, and an email task that snoozes while the mail relay is not
//! up. The real binary as a child process, on both backends (PostgreSQL needs
//! `DURABLE_TEST_DATABASE_URL`).

use std::time::{Duration, Instant};

use durable_tests::{Backend, Server, TestDb};

macro_rules! on_both_backends {
    ($scenario:ident => $sqlite:ident, $postgres:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            $scenario(Backend::Sqlite).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            $scenario(Backend::Postgres).await;
        }
    };
}

on_both_backends!(
    cancel_stops_the_email => sqlite_cancel_stops_the_email, postgres_cancel_stops_the_email
);
on_both_backends!(
    email_snoozes_until_the_relay_is_up => sqlite_email_snoozes_until_the_relay_is_up,
    postgres_email_snoozes_until_the_relay_is_up
);

/// Signs up `email`; the welcome email's task id.
async fn signup(server: &Server, email: &str) -> String {
    let answer: serde_json::Value = durable_tests::http::client()
        .post(server.url("/signup"))
        .json(&serde_json::json!({ "email": email }))
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("a JSON answer");
    answer["task_id"].as_str().expect("a task id").to_owned()
}

/// `GET /tasks/{id}`: waits for the final state (up to the example's 10 s).
async fn task_state(server: &Server, id: &str) -> serde_json::Value {
    durable_tests::http::client()
        .get(server.url(&format!("/tasks/{id}")))
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("a JSON answer")
}

/// `POST /tasks/{id}/cancel`: the status and the `outcome` field.
async fn cancel(server: &Server, id: &str) -> (u16, serde_json::Value) {
    let response = durable_tests::http::client()
        .post(server.url(&format!("/tasks/{id}/cancel")))
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

/// An email being sent (a 20 s send) is cancelled: the task ends `cancelled` long before the
/// send would have finished; cancelling it again is a 409, an unknown id a 404.
async fn cancel_stops_the_email(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let server = Server::start(&db, &[("EMAIL_DELAY_MS", "20000")]).await;
    let id = signup(&server, "ada@example.com").await;
    let asked = Instant::now();
    let (status, answer) = cancel(&server, &id).await;
    // Dispatched at once to the local runtime, the task is normally running already; a
    // cancel that beats it to the start finds it pending.
    assert!(
        matches!(
            (status, answer["outcome"].as_str()),
            (202, Some("requested")) | (200, Some("cancelled"))
        ),
        "{status} {answer}"
    );
    let state = task_state(&server, &id).await;
    assert_eq!(state["state"], "cancelled", "{state}");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "cancelled after {:?}",
        asked.elapsed()
    );
    let (status, answer) = cancel(&server, &id).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (409, Some("already_finished"))
    );
    let (status, _) = cancel(&server, "01a24759-a732-718c-9b9d-37fd5e8c52d9").await;
    assert_eq!(status, 404);
}

/// While the mail relay is not up (the first 3 s after start), the email task snoozes: it
/// is sent once the relay is up, on its first attempt.
async fn email_snoozes_until_the_relay_is_up(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let server = Server::start(
        &db,
        &[("EMAIL_DELAY_MS", "10"), ("EMAIL_RELAY_WARMUP_MS", "3000")],
    )
    .await;
    let id = signup(&server, "grace@example.com").await;
    let state = task_state(&server, &id).await;
    assert_eq!(state["state"], "completed", "{state}");
    assert_eq!(state["attempts"], 1, "snoozes use no attempt: {state}");
    // The relay was not up when the task first ran (the server answers well within 3 s of
    // starting), so it did snooze.
    if server.startup_time() < Duration::from_secs(2) {
        assert!(
            server.log_count("mail relay not up yet; snoozing") >= 1,
            "{}",
            server.log_tail(30)
        );
    }
}
