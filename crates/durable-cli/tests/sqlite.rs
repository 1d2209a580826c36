//! The `durable` binary against real SQLite files.

mod common;

use common::{code, missing_sqlite, scenarios, stderr, stdout, Db};
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_list_and_show() {
    scenarios::inspect(&Db::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_cancel_delete_and_prune() {
    scenarios::act(&Db::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_stuck_and_cancel_running() {
    scenarios::requeue(&Db::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_failed_past_a_shared_key() {
    scenarios::retry_failed_past_a_shared_key(&Db::sqlite().await).await;
}

fn durable(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_durable"))
        .args(args)
        .env("DATABASE_URL", url)
        .env_remove("DURABLE_SCHEMA")
        .output()
        .expect("run the durable binary")
}

#[test]
fn migrate_creates_an_empty_database_and_nothing_else_does() {
    let (file, url) = missing_sqlite();
    let list = durable(&url, &["list"]);
    assert_eq!(code(&list), 1, "{}", stderr(&list));
    assert!(stderr(&list).contains("no database"), "{}", stderr(&list));
    assert!(!file.path().exists(), "list must not create the file");

    let migrated = durable(&url, &["--json", "migrate"]);
    assert_eq!(code(&migrated), 0, "{}", stderr(&migrated));
    let doc: serde_json::Value = serde_json::from_slice(&migrated.stdout).expect("json");
    assert_eq!(doc["migrated"], true);
    assert_eq!(
        code(&durable(&url, &["migrate"])),
        0,
        "migrate is idempotent"
    );

    let listed = durable(&url, &["--json", "list"]);
    assert_eq!(code(&listed), 0, "{}", stderr(&listed));
    let doc: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(doc["tasks"], serde_json::json!([]));
    assert!(stdout(&durable(&url, &["list"])).contains("no tasks"));
}

#[test]
fn usage_errors_exit_with_2() {
    let (_file, url) = missing_sqlite();
    for args in [
        &["list", "--state", "nope"][..],
        &["list", "--since", "yesterday"],
        &["retry"],
        &[
            "retry",
            "--type",
            "report",
            "0190c0de-0000-7000-8000-000000000000",
        ],
        &["cancel"],
        &["show", "not-a-uuid"],
        &["--schema", "app", "migrate"],
    ] {
        let out = durable(&url, args);
        assert_eq!(code(&out), 2, "durable {args:?}: {}", stderr(&out));
    }
    let no_url = Command::new(env!("CARGO_BIN_EXE_durable"))
        .arg("stats")
        .env_remove("DATABASE_URL")
        .output()
        .expect("run");
    assert_eq!(code(&no_url), 2, "{}", stderr(&no_url));
    let help = durable(&url, &["--help"]);
    assert_eq!(code(&help), 0);
    assert!(stdout(&help).contains("4  conflict"), "{}", stdout(&help));
}
