//! Runs `#[task]` functions for real: a SQLite store, the runtime, retries, permanent
//! failures, and the stored JSON.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable_core::store::{AdminStore as _, TaskRecord};
use durable_core::{Registry, Runtime, Task, TaskContext, TaskError, TaskId, TaskState};
use durable_macros::task;
use durable_sqlx::sqlite::SqliteStore;

/// The application state every task here receives: a log of what ran.
#[derive(Clone, Default)]
struct AppState {
    log: Arc<Mutex<Vec<String>>>,
}

impl AppState {
    fn record(&self, line: String) {
        self.log.lock().expect("log lock").push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }
}

/// An application error that is only `Display` (not `std::error::Error`).
#[derive(Debug)]
struct MailError(String);

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mail server said: {}", self.0)
    }
}

/// The example of the issue: state first, then serde arguments.
#[task]
async fn send_welcome_email(state: AppState, user_id: i64, email: String) -> Result<(), MailError> {
    state.record(format!("welcome {user_id} <{email}>"));
    Ok(())
}

/// Fails its first attempt with an `std::error::Error`, succeeds on the second.
#[task(
    name = "test.flaky",
    max_attempts = 3,
    timeout = "10s",
    queue = "default"
)]
async fn flaky(cx: TaskContext<AppState>, key: String) -> Result<(), std::io::Error> {
    cx.state()
        .record(format!("flaky {key} attempt {}", cx.attempt()));
    if cx.attempt() == 1 {
        return Err(std::io::Error::other("connection reset"));
    }
    Ok(())
}

/// Fails for good at once: `TaskError::permanent` passes through unchanged.
#[task(max_attempts = 5)]
async fn reject(state: &AppState, reason: String) -> Result<(), TaskError> {
    state.record(format!("reject {reason}"));
    Err(TaskError::permanent(format!("bad input: {reason}")))
}

/// A `Display` error on the last attempt: `failed`, with the message stored.
#[task(max_attempts = 1)]
async fn always_fails(_state: AppState, code: u16) -> Result<(), MailError> {
    Err(MailError(format!("code {code}")))
}

/// Returns `()`.
#[task(priority = -3, timeout = "none")]
async fn ping(cx: &TaskContext<AppState>, n: u32, tags: Vec<String>) {
    cx.state().record(format!("ping {n} {}", tags.join(",")));
}

struct Harness {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    runtime: Runtime,
    state: AppState,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("tasks.db").display());
    let store = SqliteStore::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let state = AppState::default();
    let registry = Registry::new()
        .register::<send_welcome_email>(state.clone())
        .register::<flaky>(state.clone())
        .register::<reject>(state.clone())
        .register::<always_fails>(state.clone())
        .register::<ping>(state.clone());
    let runtime = Runtime::builder(store.clone(), registry)
        .poll_interval(Duration::from_millis(50))
        .start();
    Harness {
        _dir: dir,
        store,
        runtime,
        state,
    }
}

/// Polls the row until it reaches `state`, failing after a deadline.
async fn wait_for(store: &SqliteStore, id: TaskId, state: TaskState) -> TaskRecord {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let record = store.get(id).await.expect("get").expect("row exists");
        if record.state == state {
            return record;
        }
        assert!(
            !record.state.is_terminal(),
            "task {id} ended {} instead of {state}: {record:?}",
            record.state
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {id} still {} after 30 s: {record:?}",
            record.state
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_task_runs_to_completion() {
    let h = harness().await;
    let id = h
        .runtime
        .client()
        .enqueue(send_welcome_email::task(7, "ada@example.com".to_owned()))
        .await
        .expect("enqueue");
    let record = wait_for(&h.store, id, TaskState::Completed).await;
    assert_eq!(record.name, "send_welcome_email");
    assert_eq!(record.attempts, 1);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&record.payload).expect("json"),
        serde_json::json!({ "user_id": 7, "email": "ada@example.com" })
    );
    assert_eq!(h.state.lines(), ["welcome 7 <ada@example.com>"]);
    h.runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_error_is_retried_then_completes() {
    let h = harness().await;
    let id = h
        .runtime
        .client()
        .enqueue(flaky::task("k1".to_owned()))
        .await
        .expect("enqueue");
    let record = wait_for(&h.store, id, TaskState::Completed).await;
    assert_eq!(record.name, "test.flaky");
    assert_eq!(record.attempts, 2);
    assert_eq!(record.max_attempts, 3);
    assert_eq!(
        h.state.lines(),
        ["flaky k1 attempt 1", "flaky k1 attempt 2"]
    );
    h.runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_error_fails_at_once_with_its_message() {
    let h = harness().await;
    let id = h
        .runtime
        .client()
        .enqueue(reject::task("negative amount".to_owned()))
        .await
        .expect("enqueue");
    let record = wait_for(&h.store, id, TaskState::Failed).await;
    assert_eq!(record.attempts, 1, "a permanent error is not retried");
    assert_eq!(record.max_attempts, 5);
    let last_error = record.last_error.expect("last_error is set");
    assert!(
        last_error.contains("bad input: negative amount"),
        "last_error: {last_error}"
    );
    assert_eq!(h.state.lines(), ["reject negative amount"]);
    h.runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn display_error_on_last_attempt_fails_with_its_message() {
    let h = harness().await;
    let id = h
        .runtime
        .client()
        .enqueue(always_fails::task(503))
        .await
        .expect("enqueue");
    let record = wait_for(&h.store, id, TaskState::Failed).await;
    assert_eq!(record.attempts, 1);
    let last_error = record.last_error.expect("last_error is set");
    assert!(
        last_error.contains("mail server said: code 503"),
        "last_error: {last_error}"
    );
    h.runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unit_returning_task_completes() {
    let h = harness().await;
    let id = h
        .runtime
        .client()
        .enqueue(ping::task(3, vec!["a".to_owned(), "b".to_owned()]))
        .await
        .expect("enqueue");
    let record = wait_for(&h.store, id, TaskState::Completed).await;
    assert_eq!(record.priority, -3);
    assert_eq!(h.state.lines(), ["ping 3 a,b"]);
    h.runtime.shutdown(Duration::from_secs(5)).await;
}

#[test]
fn arguments_round_trip_through_json() {
    let original = send_welcome_email::task(42, "grace@example.com".to_owned());
    let json = serde_json::to_string(&original).expect("serialize");
    assert_eq!(json, r#"{"user_id":42,"email":"grace@example.com"}"#);
    let back: send_welcome_email = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back.user_id, 42);
    assert_eq!(back.email, "grace@example.com");
    assert_eq!(format!("{back:?}"), format!("{original:?}"));
    assert_eq!(
        format!("{back:?}"),
        r#"send_welcome_email { user_id: 42, email: "grace@example.com" }"#
    );

    let ping = ping::task(1, vec!["x".to_owned()]);
    let json = serde_json::to_string(&ping).expect("serialize");
    let back: ping = serde_json::from_str(&json).expect("deserialize");
    assert_eq!((back.n, back.tags), (1, vec!["x".to_owned()]));
}

#[test]
fn names_and_options_come_from_the_attribute() {
    assert_eq!(send_welcome_email::NAME, "send_welcome_email");
    assert_eq!(<send_welcome_email as Task>::NAME, "send_welcome_email");
    assert_eq!(<flaky as Task>::NAME, "test.flaky");
    assert_eq!(flaky::NAME, "test.flaky");

    let defaults = durable_core::TaskOptions::default();
    assert_eq!(send_welcome_email::options(), defaults);

    let flaky = flaky::options();
    assert_eq!(flaky.max_attempts, 3);
    assert_eq!(flaky.timeout, Some(Duration::from_secs(10)));
    assert_eq!(flaky.queue, "default");

    let ping = ping::options();
    assert_eq!(ping.priority, -3);
    assert_eq!(ping.timeout, None);
    assert_eq!(ping.max_attempts, defaults.max_attempts);
}

#[tokio::test]
async fn the_function_stays_callable() {
    let state = AppState::default();
    send_welcome_email(state.clone(), 1, "direct@example.com".to_owned())
        .await
        .expect("direct call");
    let err = reject(&state, "x".to_owned())
        .await
        .expect_err("reject fails");
    assert!(err.is_permanent());
    assert_eq!(
        state.lines(),
        ["welcome 1 <direct@example.com>", "reject x"]
    );
}

/// Public tasks with awkward signatures: the generated code must stay clean under the
/// workspace's clippy lints (pedantic included), which this test target is checked with.
pub mod lint_surface {
    use durable_macros::task;

    /// A state.
    #[derive(Clone, Debug, Default)]
    pub struct State;

    /// Eight arguments, four of them `bool`, an underscore name and a raw identifier.
    #[task(name = "lint_surface.many")]
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
    pub async fn many(
        _state: State,
        a: bool,
        b: bool,
        c: bool,
        d: bool,
        r#type: String,
        _ignored: u8,
        items: Vec<u64>,
        total: f64,
    ) -> Result<(), String> {
        let _ = (a, b, c, d, r#type, items, total);
        Ok(())
    }

    /// No arguments at all.
    #[task]
    pub async fn nothing(_state: State) -> Result<(), std::io::Error> {
        Ok(())
    }
}

#[test]
fn awkward_signatures_build_tasks() {
    let task = lint_surface::many::task(true, false, true, false, "t".to_owned(), 0, vec![], 1.5);
    assert_eq!(
        serde_json::to_value(&task).expect("json")["type"],
        serde_json::json!("t")
    );
    assert_eq!(format!("{:?}", lint_surface::nothing::task()), "nothing");
}
