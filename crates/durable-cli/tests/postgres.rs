//! The `durable` binary against real PostgreSQL schemas (skipped without
//! `DURABLE_TEST_DATABASE_URL`).

mod common;

use common::{code, scenarios, stderr, Db};
use durable_testkit::PgSchema;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_list_and_show() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    scenarios::inspect(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_cancel_delete_and_prune() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    scenarios::act(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_stuck_and_cancel_running() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    scenarios::requeue(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_failed_past_a_shared_key() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    scenarios::retry_failed_past_a_shared_key(&db).await;
}

fn durable(url: &str, schema: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_durable"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("DURABLE_SCHEMA", schema)
        .output()
        .expect("run the durable binary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_an_empty_schema_and_hide_database_messages() {
    let Some(server) = durable_testkit::database_url() else {
        return;
    };
    let schema = PgSchema::new(&server).await;

    let before = durable(&server, schema.name(), &["list"]);
    assert_eq!(code(&before), 1, "{}", stderr(&before));
    let message = stderr(&before);
    assert!(message.contains("--verbose"), "{message}");
    assert!(
        !message.contains("durable_tasks"),
        "no database text: {message}"
    );
    let verbose = durable(&server, schema.name(), &["list", "--verbose"]);
    assert!(
        stderr(&verbose).contains("caused by"),
        "{}",
        stderr(&verbose)
    );

    let migrated = durable(&server, schema.name(), &["migrate"]);
    assert_eq!(code(&migrated), 0, "{}", stderr(&migrated));
    let listed = durable(&server, schema.name(), &["--json", "list"]);
    assert_eq!(code(&listed), 0, "{}", stderr(&listed));
    let doc: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(doc["tasks"], serde_json::json!([]));
}

#[test]
fn an_unreachable_server_is_an_error_without_its_details() {
    let out = Command::new(env!("CARGO_BIN_EXE_durable"))
        .args(["stats", "--connect-timeout", "1s"])
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env_remove("DURABLE_SCHEMA")
        .output()
        .expect("run");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot open the database"),
        "{}",
        stderr(&out)
    );
}
