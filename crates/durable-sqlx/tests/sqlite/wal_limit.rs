//! A long read transaction lets the WAL grow past anything the automatic checkpoint allows
//! (no frame a reader may still need can be copied back); once the reader ends, the store's
//! writes checkpoint it and the file is cut back to `WAL_SIZE_LIMIT` instead of keeping its
//! peak size for good.

use std::time::Duration;

use durable_core::store::NewTask;
use durable_sqlx::sqlite::{SqliteStore, WAL_SIZE_LIMIT};
use sqlx::{Connection, SqliteConnection};

use crate::conformance::{eventually, Writes as _};

fn wal_bytes(path: &std::path::Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map_or(0, |m| m.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_given_back_after_a_long_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tasks.db");
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::connect(&url).await.expect("open");
    store.migrate().await.expect("migrate");
    store
        .insert(&[NewTask::new("work", "{}")])
        .await
        .expect("insert");

    // A reader that keeps its snapshot: a transaction that has read the table.
    let mut reader = SqliteConnection::connect(&url).await.expect("reader");
    sqlx::query("BEGIN")
        .execute(&mut reader)
        .await
        .expect("begin");
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM durable_tasks")
        .fetch_one(&mut reader)
        .await
        .expect("read");

    // More than the limit of WAL while it holds on: 100 KB payloads, 50 a batch.
    let payload = format!(r#"{{"blob":"{}"}}"#, "x".repeat(100_000));
    let mut batches = 0;
    while wal_bytes(&path) <= WAL_SIZE_LIMIT + WAL_SIZE_LIMIT / 4 {
        let rows: Vec<NewTask> = (0..50).map(|_| NewTask::new("work", &payload)).collect();
        store.insert(&rows).await.expect("insert");
        batches += 1;
        assert!(batches < 100, "the WAL does not grow: {}", wal_bytes(&path));
    }
    let peak = wal_bytes(&path);

    sqlx::query("COMMIT")
        .execute(&mut reader)
        .await
        .expect("end");
    drop(reader);

    // Each small write after the reader ended lets the automatic checkpoint copy the
    // frames back, then restarts the WAL from its start, cut to the limit.
    eventually(
        "the WAL cut back to the limit",
        Duration::from_secs(20),
        || async {
            store
                .insert(&[NewTask::new("work", "{}")])
                .await
                .expect("insert");
            (wal_bytes(&path) <= WAL_SIZE_LIMIT).then_some(())
        },
    )
    .await;
    assert!(peak > WAL_SIZE_LIMIT, "peak {peak}");
}
