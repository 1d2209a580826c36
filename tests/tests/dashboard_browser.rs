//! The admin dashboard in a real browser: headless Chromium, driven over WebDriver, against
//! the `example-signup` binary with the dashboard mounted at `/admin`, on a SQLite file.
//!
//! An operator logs in through the form, opens the failed list from the overview, opens a
//! failed welcome email, presses "retry" and sees the task `pending`; the database and the
//! JSON API agree.
//! A logged-out browser is sent to the login page; a read-only user sees no action buttons.
//!
//! Needs `chromium` and `chromedriver` (Debian: `chromium`, `chromium-driver`); without them
//! the tests print why and pass, except with `CI` set, where they fail. With
//! `DURABLE_SCREENSHOT_DIR` set (relative to the workspace root), the test saves
//! `dashboard.png` (the overview) and `dashboard-task.png` (a failed task) there.

#[path = "dashboard_browser/browser.rs"]
mod browser;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use durable_tests::chromedriver::Chromium;
use durable_tests::{wait_until, Backend, Inspector, Server, TestDb};

use crate::browser::Browser;

/// Where screenshots go, if anywhere.
const SCREENSHOT_ENV: &str = "DURABLE_SCREENSHOT_DIR";

const OPERATOR: (&str, &str) = ("operator", "correct horse battery staple");
const VIEWER: (&str, &str) = ("viewer", "read only, please");

/// The dashboard's credentials, for every server of the scenario.
const ADMIN_ENV: [(&str, &str); 4] = [
    ("ADMIN_USER", OPERATOR.0),
    ("ADMIN_PASSWORD", OPERATOR.1),
    ("ADMIN_VIEWER_USER", VIEWER.0),
    ("ADMIN_VIEWER_PASSWORD", VIEWER.1),
];

/// The harness itself: Chromium starts, loads a page of the example and shows its text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_loads_a_page_of_the_example() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let db = TestDb::create(Backend::Sqlite)
        .await
        .expect("SQLite needs no setup");
    let server = Server::start(&db, &[]).await;
    let browser = Browser::launch(&chromium, db.dir()).await;
    browser.goto(&server.url("/health")).await;
    assert_eq!(browser.path().await, "/health");
    assert_eq!(browser.text("body").await, "ok");
    browser.quit().await;
}

/// Signs up `email` over HTTP; the welcome email's task id.
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
    answer["task_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no task id in {answer}"))
        .to_ascii_lowercase()
}

/// Waits until the task table has `n` rows in `state`; their ids.
async fn wait_state(db: &Inspector, state: &str, n: usize, timeout: Duration) -> BTreeSet<String> {
    wait_until(&format!("{n} tasks are {state}"), timeout, async || {
        let snapshot = db.snapshot().await;
        let ids: BTreeSet<String> = snapshot
            .tasks
            .iter()
            .filter(|t| t.state == state)
            .map(|t| t.id.clone())
            .collect();
        if ids.len() == n {
            Ok(ids)
        } else {
            Err(snapshot.counts())
        }
    })
    .await
}

/// `GET /admin/api/tasks/{id}` as the operator.
async fn api_task(server: &Server, id: &str) -> serde_json::Value {
    let response = durable_tests::http::client()
        .get(server.url(&format!("/admin/api/tasks/{id}")))
        .basic_auth(OPERATOR.0, Some(OPERATOR.1))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), reqwest::StatusCode::OK, "GET task {id}");
    response.json().await.expect("a JSON answer")
}

/// Stops a server the way a deploy does, and checks it went cleanly.
async fn stop(mut server: Server) {
    let end = server.terminate(Duration::from_secs(10)).await;
    assert!(
        end.status.success() && !end.killed,
        "{} did not stop cleanly: {end:?}",
        server.name()
    );
}

/// Logs in through the form as `(user, password)` and waits for the overview.
async fn log_in(browser: &Browser, server: &Server, (user, password): (&str, &str)) {
    browser.goto(&server.url("/admin/login")).await;
    browser.fill("input[name=username]", user).await;
    browser.fill("input[name=password]", password).await;
    browser.click("button[type=submit]").await;
    browser.wait_path("/admin/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_operator_retries_a_failed_email_in_the_browser() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    // A relative directory is taken from the workspace root, not this crate's directory
    // (where `cargo test` runs the test).
    let shots = std::env::var_os(SCREENSHOT_ENV)
        .filter(|dir| !dir.is_empty())
        .map(|dir| durable_tests::binary::workspace_root().join(PathBuf::from(dir)));
    let db = TestDb::create(Backend::Sqlite)
        .await
        .expect("SQLite needs no setup");
    let (inspector, failed) = history(&db).await;
    let target = failed.first().expect("two failed tasks").clone();
    let other = failed.last().expect("two failed tasks").clone();

    // The mail relay is now reliable but takes ten minutes to come up: a retried email
    // runs, snoozes (no attempt used) and waits `pending` — visibly so, for the browser.
    let mut env = ADMIN_ENV.to_vec();
    env.extend([
        ("EMAIL_FAIL_RATE", "0"),
        ("EMAIL_RELAY_WARMUP_MS", "600000"),
    ]);
    let server = Server::start(&db, &env).await;
    let browser = Browser::launch(&chromium, db.dir()).await;

    // Logged out, the overview and a deep link both lead to the login form.
    for path in ["/admin/".to_owned(), format!("/admin/tasks/{target}")] {
        browser.goto(&server.url(&path)).await;
        browser.wait_path("/admin/login").await;
        browser.wait_for("input[name=username]").await;
    }

    log_in(&browser, &server, OPERATOR).await;
    if let Some(dir) = &shots {
        browser.wait_for("a#nav-failed").await;
        browser.screenshot(&dir.join("dashboard.png")).await;
    }
    browser.click("a#nav-failed").await;
    assert_eq!(
        failed_list(&browser).await,
        failed,
        "the failed list shows the failed tasks"
    );

    retry(&browser, &server, &target, shots.as_deref()).await;
    // The database agrees: the row is pending, the other stays failed, nothing else moved.
    let snapshot = wait_until(
        "the retried task's row is pending",
        Duration::from_secs(20),
        async || {
            let snapshot = inspector.snapshot().await;
            match snapshot.task(&target) {
                Some(row) if row.state == "pending" => Ok(snapshot),
                row => Err(row.cloned()),
            }
        },
    )
    .await;
    assert_eq!(
        snapshot.task(&other).map(|t| t.state.as_str()),
        Some("failed")
    );
    assert_eq!(snapshot.count("completed"), 6);
    // So does the JSON API (Basic auth with the same user).
    wait_until(
        "the JSON API shows the retried task pending",
        Duration::from_secs(20),
        async || {
            let task = api_task(&server, &target).await;
            if task["state"] == "pending" {
                Ok(())
            } else {
                Err(task)
            }
        },
    )
    .await;

    viewer_cannot_act(&browser, &server, &other).await;
    browser.quit().await;
    stop(server).await;
}

/// Some history for the overview's chart, made by two servers one after the other: six
/// welcome emails that went out, and two that failed every attempt until they were
/// `failed`. Returns a connection to the database and the failed tasks' ids.
async fn history(db: &TestDb) -> (Inspector, BTreeSet<String>) {
    let server = Server::start(db, &[("EMAIL_DELAY_MS", "20")]).await;
    let inspector = Inspector::connect(db).await;
    for name in ["ada", "grace", "alan", "edsger", "barbara", "donald"] {
        signup(&server, &format!("{name}@example.com")).await;
    }
    wait_state(&inspector, "completed", 6, Duration::from_secs(30)).await;
    stop(server).await;

    // The email task allows 25 attempts with backoff capped at 2 s: about 45 s to `failed`.
    let server = Server::start(db, &[("EMAIL_FAIL_RATE", "1.0"), ("EMAIL_DELAY_MS", "1")]).await;
    let mut failed = BTreeSet::new();
    for name in ["kathleen", "niklaus"] {
        failed.insert(signup(&server, &format!("{name}@example.com")).await);
    }
    assert_eq!(
        wait_state(&inspector, "failed", 2, Duration::from_secs(120)).await,
        failed
    );
    stop(server).await;
    (inspector, failed)
}

/// The ids of the rows of the list shown, each checked to say `failed`.
async fn failed_list(browser: &Browser) -> BTreeSet<String> {
    browser.wait_for("tr.task").await;
    let mut listed = BTreeSet::new();
    for row in browser.find_all("tr.task").await {
        let id = row.attr("data-id").await.expect("read data-id");
        let id = id
            .expect("every tr.task has a data-id")
            .to_ascii_lowercase();
        let state = row
            .find(fantoccini::Locator::Css(".task-state"))
            .await
            .expect("every row shows its state")
            .text()
            .await
            .expect("read the state");
        assert!(
            state.trim().eq_ignore_ascii_case("failed"),
            "task {id} listed as {state:?} in the failed list"
        );
        listed.insert(id);
    }
    listed
}

/// From the failed list: opens `target`, presses retry, and waits for the page to say
/// `pending` and for the server to have run the task again.
async fn retry(browser: &Browser, server: &Server, target: &str, shots: Option<&Path>) {
    browser
        .click(&format!(
            "tr.task[data-id=\"{target}\"] a[href$=\"tasks/{target}\"]"
        ))
        .await;
    let detail = format!("/admin/tasks/{target}");
    browser.wait_path(&detail).await;
    assert!(browser
        .text("#task-state")
        .await
        .eq_ignore_ascii_case("failed"));
    if let Some(dir) = shots {
        browser.screenshot(&dir.join("dashboard-task.png")).await;
    }
    browser.click("button#retry").await;
    browser.wait_path(&detail).await;
    // The retried email runs at once and snoozes; between looks it may be `processing` for
    // a moment (each snooze is at most 1 s), so look until the page says `pending`.
    browser.wait_text_reloading("#task-state", "pending").await;
    wait_until(
        "the retried email ran and snoozed",
        Duration::from_secs(20),
        async || {
            let snoozed = server
                .log_text()
                .lines()
                .any(|l| l.contains(target) && l.contains("snoozing"));
            if snoozed {
                Ok(())
            } else {
                Err("no snooze logged yet")
            }
        },
    )
    .await;
}

/// A read-only user, logged in afresh, sees the failed task `id` but no button to act on it.
async fn viewer_cannot_act(browser: &Browser, server: &Server, id: &str) {
    browser.delete_cookies().await;
    log_in(browser, server, VIEWER).await;
    browser
        .goto(&server.url(&format!("/admin/tasks/{id}")))
        .await;
    assert!(browser
        .text("#task-state")
        .await
        .eq_ignore_ascii_case("failed"));
    for action in ["retry", "cancel", "delete", "requeue"] {
        assert!(
            browser
                .find_all(&format!("button#{action}"))
                .await
                .is_empty(),
            "a read-only user is offered `{action}`"
        );
    }
}
