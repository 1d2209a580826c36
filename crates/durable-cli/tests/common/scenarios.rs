//! What the command must do on every backend; `tests/sqlite.rs` and `tests/postgres.rs`
//! run each scenario on a database of their kind.

use std::time::Duration;

use durable_core::{EnqueueOptions, TaskId, TaskState};
use serde_json::Value;

use super::{code, seed, stderr, stdout, wait_for, Db, Endless, FailingEmail};

fn ids(list: &Value) -> Vec<String> {
    list["tasks"]
        .as_array()
        .expect("tasks array")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect()
}

/// `stats`, `list` with its filters and pages, `show`.
pub async fn inspect(db: &Db) {
    let seeded = seed(db).await;
    let (failed, completed, pending) = (
        seeded.failed.to_string(),
        seeded.completed.to_string(),
        seeded.pending.to_string(),
    );

    let stats = db.json(&["stats"]);
    for (state, n) in [
        ("pending", 1),
        ("processing", 0),
        ("completed", 1),
        ("failed", 1),
    ] {
        assert_eq!(stats["states"][state]["count"], n, "{state}: {stats}");
        assert_eq!(stats["states"][state]["kind"], "exact", "{state}: {stats}");
    }
    assert_eq!(
        stats["due"]["count"], 0,
        "the pending task is due in an hour: {stats}"
    );
    assert_eq!(stats["queues"][0]["queue"], "default", "{stats}");
    assert_eq!(stats["queues"][0]["pending"]["count"], 1, "{stats}");
    let human = db.run(&["stats"]);
    assert_eq!(code(&human), 0, "{}", stderr(&human));
    assert!(stdout(&human).contains("failed"), "{}", stdout(&human));

    let all = db.json(&["list"]);
    assert_eq!(
        ids(&all),
        [failed.as_str(), completed.as_str(), pending.as_str()]
    );
    assert_eq!(all["next"], Value::Null);

    let dead = db.json(&["list", "--state", "failed"]);
    assert_eq!(ids(&dead), [failed.as_str()]);
    let error = dead["tasks"][0]["last_error"].as_str().expect("last_error");
    assert!(error.contains("mailbox ada@example.com is full"), "{error}");

    let first = db.json(&["list", "--type", "report", "--limit", "1"]);
    assert_eq!(ids(&first), [completed.as_str()]);
    let next = first["next"].as_str().expect("a next page");
    let second = db.json(&["list", "--type", "report", "--limit", "1", "--after", next]);
    assert_eq!(ids(&second), [pending.as_str()]);

    assert_eq!(
        ids(&db.json(&["list", "--search", "ada@example.com"])),
        [failed.as_str()]
    );
    assert_eq!(
        ids(&db.json(&["list", "--newest", "--limit", "1"])),
        [pending.as_str()]
    );
    assert_eq!(ids(&db.json(&["list", "--since", "1h"])).len(), 3);
    assert!(ids(&db.json(&["list", "--until", "1h"])).is_empty());
    assert!(ids(&db.json(&["list", "--queue", "elsewhere"])).is_empty());

    let table = db.run(&["list", "--state", "failed"]);
    assert_eq!(code(&table), 0, "{}", stderr(&table));
    let text = stdout(&table);
    assert!(text.starts_with("ID "), "{text}");
    assert!(
        text.contains(&failed) && text.contains("failing_email"),
        "{text}"
    );

    let shown = db.json(&["show", &failed]);
    assert_eq!(shown["payload"]["email"], "ada@example.com");
    assert_eq!(shown["state"], "failed");
    assert_eq!(shown["attempts"], 1);
    assert_eq!(shown["errors"][0]["attempt"], 1);
    let message = shown["errors"][0]["message"].as_str().expect("message");
    assert!(message.contains("mailbox"), "{message}");

    let report = db.json(&["show", &completed]);
    assert_eq!(report["steps"][0]["name"], "render", "{report}");
    assert_eq!(
        report["steps"][0]["output"], "report for 2026-01",
        "{report}"
    );
    let text = stdout(&db.run(&["show", &completed]));
    assert!(
        text.contains("render") && text.contains("2026-01"),
        "{text}"
    );

    let unknown = TaskId::new().to_string();
    let missing = db.run(&["show", &unknown]);
    assert_eq!(code(&missing), 3, "{}", stderr(&missing));
    assert!(stderr(&missing).contains("no task"), "{}", stderr(&missing));
}

/// `retry`, `cancel`, `delete`, `prune` and their exit codes.
pub async fn act(db: &Db) {
    let seeded = seed(db).await;
    let (failed, completed, pending) = (
        seeded.failed.to_string(),
        seeded.completed.to_string(),
        seeded.pending.to_string(),
    );
    let unknown = TaskId::new().to_string();

    let refused = db.run(&["retry", &completed]);
    assert_eq!(code(&refused), 4, "{}", stderr(&refused));
    assert!(stdout(&refused).contains("refused"), "{}", stdout(&refused));

    let cancelled = db.run(&["cancel", &pending]);
    assert_eq!(code(&cancelled), 0, "{}", stderr(&cancelled));
    let log = stderr(&cancelled);
    assert!(
        log.contains("cli-test") && log.contains("cancel") && log.contains(&pending),
        "{log}"
    );
    assert_eq!(
        db.get(seeded.pending).await.expect("row").state,
        TaskState::Cancelled
    );
    assert_eq!(code(&db.run(&["cancel", &pending])), 4);
    assert_eq!(code(&db.run(&["cancel", &unknown])), 3);

    let unconfirmed = db.run(&["prune", "--older-than", "0s"]);
    assert_eq!(code(&unconfirmed), 2, "{}", stderr(&unconfirmed));
    let none = db.json(&["prune", "--older-than", "1h", "--yes"]);
    assert_eq!(none["count"], 0, "{none}");
    let pruned = db.json(&["prune", "--older-than", "0s", "--yes"]);
    assert_eq!(
        pruned["count"], 2,
        "the completed and the cancelled task: {pruned}"
    );
    assert!(db.get(seeded.completed).await.is_none());
    assert!(db.get(seeded.pending).await.is_none());
    assert!(
        db.get(seeded.failed).await.is_some(),
        "failed tasks are kept"
    );

    let other_type = db.json(&["retry", "--failed", "--type", "report", "--yes"]);
    assert_eq!(other_type["count"], 0, "{other_type}");
    assert_eq!(
        code(&db.run(&["retry", "--failed"])),
        2,
        "bulk retry needs --yes"
    );
    let retried = db.json(&["retry", "--failed", "--yes"]);
    assert_eq!(retried["count"], 1, "{retried}");
    let row = db.get(seeded.failed).await.expect("row");
    assert_eq!(row.state, TaskState::Pending);
    assert_eq!(row.errors.len(), 1, "the error history stays");

    // Every id is tried; not found (3) wins over refused (4).
    let mixed = db.json_code(&["retry", &unknown, &failed], 3);
    assert_eq!(mixed["results"][0]["outcome"], "not_found", "{mixed}");
    assert_eq!(mixed["results"][1]["outcome"], "conflict", "{mixed}");
    assert_eq!(mixed["results"][1]["state"], "pending", "{mixed}");

    let deleted = db.json(&["delete", &failed]);
    assert_eq!(deleted["results"][0]["outcome"], "done", "{deleted}");
    assert!(db.get(seeded.failed).await.is_none());
    assert_eq!(code(&db.run(&["delete", &failed])), 3);

    // A retry that would make a second live task of one unique key is refused.
    let runtime = super::runtime(db);
    let client = runtime.client();
    let keyed = |email: &str| FailingEmail {
        email: email.to_owned(),
    };
    let options = || EnqueueOptions::new().unique_key("grace");
    let dead = client
        .enqueue_with(keyed("grace@example.com"), options())
        .await
        .expect("enqueue keyed");
    tokio::time::timeout(super::DEADLINE, client.wait(dead))
        .await
        .expect("failed in time")
        .expect("wait");
    let holder = client
        .enqueue_with(
            keyed("grace@example.com"),
            options().delay(Duration::from_secs(3600)),
        )
        .await
        .expect("enqueue the key's new holder");
    runtime.shutdown(Duration::from_secs(5)).await;
    let held = db.json_code(&["retry", &dead.to_string()], 4);
    assert_eq!(held["results"][0]["outcome"], "key_held", "{held}");
    assert_eq!(held["results"][0]["holder"], holder.to_string(), "{held}");
    assert_eq!(db.get(dead).await.expect("row").state, TaskState::Failed);
}

/// `requeue-stuck` by id and in bulk, and `cancel` of a running task.
pub async fn requeue(db: &Db) {
    let runtime = super::runtime(db);
    let client = runtime.client();
    let id = client.enqueue(Endless).await.expect("enqueue");
    wait_for(db, id, "started", |t| t.state == TaskState::Processing).await;
    let task = id.to_string();

    let young = db.json(&["requeue-stuck", "--running-for", "1h", "--yes"]);
    assert_eq!(young["count"], 0, "{young}");
    assert_eq!(code(&db.run(&["requeue-stuck", "--running-for", "1ms"])), 2);

    let requeued = db.run(&["requeue-stuck", &task]);
    assert_eq!(code(&requeued), 0, "{}", stderr(&requeued));
    assert!(
        stdout(&requeued).contains("requeued"),
        "{}",
        stdout(&requeued)
    );
    wait_for(db, id, "counted a requeue", |t| t.requeues == 1).await;
    wait_for(db, id, "restarted", |t| t.state == TaskState::Processing).await;

    let bulk = db.json(&[
        "requeue-stuck",
        "--running-for",
        "1ms",
        "--type",
        "endless",
        "--yes",
    ]);
    assert_eq!(bulk["count"], 1, "{bulk}");
    wait_for(db, id, "counted a second requeue", |t| t.requeues == 2).await;
    wait_for(db, id, "restarted again", |t| {
        t.state == TaskState::Processing
    })
    .await;

    let cancel = db.json(&["cancel", &task]);
    assert_eq!(cancel["results"][0]["done"], "cancel requested", "{cancel}");
    wait_for(db, id, "cancelled", |t| t.state == TaskState::Cancelled).await;
    runtime.shutdown(Duration::from_secs(5)).await;

    let finished = db.run(&["requeue-stuck", &task]);
    assert_eq!(code(&finished), 4, "{}", stderr(&finished));
}

/// `retry --failed` goes on past a batch that came back short because two of its failed
/// tasks share a unique key (only one of them can be pending): the failures behind that
/// batch are retried too; only the task whose key is now held stays failed.
pub async fn retry_failed_past_a_shared_key(db: &Db) {
    use durable_core::store::{
        ClaimRequest, ClaimedTask, NewTask, Outcome, Settle, WriteBatch, MAX_LIST_LIMIT,
    };
    use durable_core::{Task as _, WorkerId};

    let store = &db.store;
    let client = durable_core::client::ClientBuilder::new(std::sync::Arc::clone(store)).build();
    let claim = |limit: usize| {
        let request = ClaimRequest::new(
            WorkerId::new(),
            Duration::from_secs(60),
            limit,
            [FailingEmail::NAME],
        );
        async move {
            store
                .write(WriteBatch::new().claim(&request))
                .await
                .claimed
                .expect("claim")
        }
    };
    let fail = |claimed: Vec<ClaimedTask>| async move {
        let settles: Vec<Settle> = claimed
            .iter()
            .map(|task| {
                let error = "full".to_owned();
                Settle::new(task.fence(), Outcome::Failed { error })
            })
            .collect();
        let settled = store
            .write(WriteBatch::new().settle(&settles))
            .await
            .settled
            .expect("fail");
        assert_eq!(settled.len(), claimed.len());
    };
    // The two oldest failures share a key.
    let mut keyed = Vec::new();
    for _ in 0..2 {
        let id = client
            .enqueue_with(
                FailingEmail {
                    email: "twice@example.com".into(),
                },
                EnqueueOptions::new().unique_key("user:twice"),
            )
            .await
            .expect("enqueue keyed");
        let claimed = claim(1).await;
        assert_eq!(claimed[0].id, id);
        fail(claimed).await;
        keyed.push(id);
    }
    // Then as many failures as one batch holds.
    let plain: Vec<NewTask> = (0..MAX_LIST_LIMIT)
        .map(|_| NewTask::new(FailingEmail::NAME, r#"{"email":"many@example.com"}"#))
        .collect();
    store
        .write(WriteBatch::new().insert(&plain))
        .await
        .inserted
        .expect("insert");
    loop {
        let claimed = claim(250).await;
        if claimed.is_empty() {
            break;
        }
        fail(claimed).await;
    }

    let retried = db.json(&["retry", "--failed", "--yes"]);
    assert_eq!(
        retried["count"],
        u64::from(MAX_LIST_LIMIT) + 1,
        "every failure but the second of the shared key: {retried}"
    );
    let left = db.json(&["list", "--state", "failed"]);
    assert_eq!(ids(&left), [keyed[1].to_string()], "{left}");
}
