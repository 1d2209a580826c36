//! Store-level cases: rows, claims, fencing, sweeps. No runtime involved.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use durable_core::store::{CancelOutcome, ClaimRequest, ClaimedTask, NewTask, Store, WriteBatch};
use durable_core::{TaskId, TaskState, WorkerId};

use super::Writes;
use super::{row, TestDb};

const LEASE: Duration = Duration::from_secs(30);

fn task(name: &str) -> NewTask {
    NewTask::new(name, r#"{"key":"x"}"#)
}

async fn claim_all(
    store: &Arc<dyn Store>,
    owner: WorkerId,
    limit: usize,
) -> Vec<durable_core::store::ClaimedTask> {
    store
        .claim(&ClaimRequest::new(owner, LEASE, limit, ["work"]))
        .await
        .expect("claim")
}

pub async fn insert_and_get(db: &impl TestDb) {
    let store = db.store();
    let t = task("work")
        .with_queue("q1")
        .with_priority(3)
        .with_max_attempts(7);
    store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    let r = row(&store, t.id).await;
    assert_eq!(r.id, t.id);
    assert_eq!(r.name, "work");
    assert_eq!(r.queue, "q1");
    assert_eq!(r.priority, 3);
    assert_eq!(r.state, TaskState::Pending);
    assert_eq!(r.attempts, 0);
    assert_eq!(r.max_attempts, 7);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&r.payload).expect("json")["key"],
        "x"
    );
    assert!(r.lease_owner.is_none() && r.lease_expires_at.is_none() && r.last_error.is_none());
    assert!((Utc::now() - r.created_at).num_seconds().abs() < 60);
    assert!(store
        .get(durable_core::TaskId::new())
        .await
        .expect("get")
        .is_none());
}

pub async fn insert_batch_is_atomic(db: &impl TestDb) {
    let store = db.store();
    let batch: Vec<_> = (0..500).map(|_| task("work")).collect();
    store.insert(&batch).await.expect("batch insert");
    assert_eq!(store.counts().await.expect("counts").pending, 500);
    // A batch containing an id that already exists fails as a whole.
    let mut bad: Vec<_> = (0..10).map(|_| task("work")).collect();
    bad.push(batch[0].clone());
    assert!(
        store.insert(&bad).await.is_err(),
        "duplicate id must fail the batch"
    );
    assert_eq!(store.counts().await.expect("counts").pending, 500);
    assert!(store.get(bad[0].id).await.expect("get").is_none());
}

pub async fn claim_respects_limit_and_order(db: &impl TestDb) {
    let store = db.store();
    let past = Utc::now() - chrono::Duration::seconds(10);
    let low_old = task("work").with_run_at(past);
    let high = task("work").with_priority(5);
    let low_new = task("work");
    store
        .insert(&[low_new.clone(), low_old.clone(), high.clone()])
        .await
        .expect("insert");
    let owner = WorkerId::new();
    let first = claim_all(&store, owner, 2).await;
    let ids: Vec<_> = first.iter().map(|c| c.id).collect();
    assert_eq!(ids.len(), 2, "limit respected");
    assert!(ids.contains(&high.id), "priority first");
    assert!(ids.contains(&low_old.id), "then oldest run_at");
    for c in &first {
        assert_eq!(c.attempt, 1);
        assert_eq!(c.owner, owner);
        let r = row(&store, c.id).await;
        assert_eq!(r.state, TaskState::Processing);
        assert_eq!(r.attempts, 1);
        assert_eq!(r.lease_owner, Some(owner));
        let expires = r.lease_expires_at.expect("lease expiry");
        assert!(expires > Utc::now() + chrono::Duration::seconds(20));
    }
    let rest = claim_all(&store, owner, 10).await;
    assert_eq!(
        rest.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![low_new.id]
    );
    assert!(claim_all(&store, owner, 10).await.is_empty());
}

pub async fn claim_skips_future_tasks(db: &impl TestDb) {
    let store = db.store();
    let later = task("work").with_run_at(Utc::now() + chrono::Duration::milliseconds(300));
    store
        .insert(std::slice::from_ref(&later))
        .await
        .expect("insert");
    assert!(claim_all(&store, WorkerId::new(), 10).await.is_empty());
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(claim_all(&store, WorkerId::new(), 10).await.len(), 1);
}

pub async fn claim_caps_per_queue(db: &impl TestDb) {
    let store = db.store();
    let mut rows = Vec::new();
    for _ in 0..5 {
        rows.push(task("work").with_queue("mail"));
        rows.push(task("work"));
    }
    store.insert(&rows).await.expect("insert");
    let owner = WorkerId::new();
    let claimed = store
        .claim(&ClaimRequest::new(owner, LEASE, 4, ["work"]).cap("mail", 1))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 4);
    assert_eq!(claimed.iter().filter(|c| c.queue == "mail").count(), 1);
    // A full queue (cap 0) yields nothing from it.
    let claimed = store
        .claim(&ClaimRequest::new(owner, LEASE, 10, ["work"]).cap("mail", 0))
        .await
        .expect("claim");
    assert!(claimed.iter().all(|c| c.queue != "mail"));
    assert_eq!(claimed.len(), 2);
}

pub async fn claimed_insert_is_processing(db: &impl TestDb) {
    let store = db.store();
    let owner = WorkerId::new();
    let t = task("work").claimed_by(owner, LEASE);
    store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    let r = row(&store, t.id).await;
    assert_eq!(r.state, TaskState::Processing);
    assert_eq!(r.attempts, 1);
    assert_eq!(r.lease_owner, Some(owner));
    assert!(
        claim_all(&store, WorkerId::new(), 10).await.is_empty(),
        "not claimable twice"
    );
    let fence = durable_core::store::Fence {
        id: t.id,
        owner,
        attempt: 1,
    };
    assert_eq!(
        store.complete(&[fence]).await.expect("complete"),
        vec![t.id]
    );
}

/// The deterministic stale-worker interleaving: A claims, A's lease expires, the sweep
/// requeues, B claims; every write by A is rejected and B's state is untouched.
pub async fn fencing_rejects_stale_worker(db: &impl TestDb) {
    let store = db.store();
    let t = task("work");
    store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    let a = WorkerId::new();
    let b = WorkerId::new();
    let claimed_a = store
        .claim(&ClaimRequest::new(
            a,
            Duration::from_millis(50),
            1,
            ["work"],
        ))
        .await
        .expect("claim a");
    let fence_a = claimed_a[0].fence();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let rescued = store.rescue_expired().await.expect("rescue");
    assert_eq!(rescued.requeued, 1);
    let claimed_b = claim_all(&store, b, 1).await;
    let fence_b = claimed_b[0].fence();
    assert_eq!(fence_b.attempt, 2);
    // Every stale write by A is rejected.
    assert!(store
        .complete(&[fence_a])
        .await
        .expect("complete a")
        .is_empty());
    assert!(!store.fail(&fence_a, "stale").await.expect("fail a"));
    assert!(!store
        .retry_attempt(&fence_a, Duration::ZERO, "stale")
        .await
        .expect("retry a"));
    assert!(store
        .heartbeat(&[fence_a], LEASE)
        .await
        .expect("hb a")
        .is_empty());
    assert_eq!(
        store.requeue_attempts(&[fence_a]).await.expect("requeue a"),
        0
    );
    let r = row(&store, t.id).await;
    assert_eq!(
        (r.state, r.attempts, r.lease_owner),
        (TaskState::Processing, 2, Some(b))
    );
    // B's completion applies, and afterwards nobody can change the row.
    assert_eq!(
        store.complete(&[fence_b]).await.expect("complete b"),
        vec![t.id]
    );
    assert!(!store.fail(&fence_b, "late").await.expect("fail b"));
    let r = row(&store, t.id).await;
    assert_eq!(r.state, TaskState::Completed);
    assert!(r.finished_at.is_some());
}

pub async fn heartbeat_extends_and_reports_lost(db: &impl TestDb) {
    let store = db.store();
    let rows = [task("work"), task("work")];
    store.insert(&rows).await.expect("insert");
    let owner = WorkerId::new();
    let claimed = store
        .claim(&ClaimRequest::new(
            owner,
            Duration::from_millis(200),
            2,
            ["work"],
        ))
        .await
        .expect("claim");
    let fences: Vec<_> = claimed
        .iter()
        .map(durable_core::store::ClaimedTask::fence)
        .collect();
    let before = row(&store, fences[0].id)
        .await
        .lease_expires_at
        .expect("lease");
    let mut held = store.heartbeat(&fences, LEASE).await.expect("heartbeat");
    held.sort_by_key(|f| f.id);
    let mut expected = fences.clone();
    expected.sort_by_key(|f| f.id);
    assert_eq!(held, expected);
    let after = row(&store, fences[0].id)
        .await
        .lease_expires_at
        .expect("lease");
    assert!(
        after > before + chrono::Duration::seconds(20),
        "lease extended"
    );
    // Lose one: complete it (someone else's doing, as far as the heartbeat knows).
    store.complete(&fences[..1]).await.expect("complete");
    let held = store.heartbeat(&fences, LEASE).await.expect("heartbeat");
    assert_eq!(held, vec![fences[1]]);
}

pub async fn retry_returns_to_pending_later(db: &impl TestDb) {
    let store = db.store();
    let t = task("work");
    store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    let c = claim_all(&store, WorkerId::new(), 1).await.remove(0);
    assert!(store
        .retry_attempt(&c.fence(), Duration::from_millis(300), "smtp 451")
        .await
        .expect("retry"));
    let r = row(&store, t.id).await;
    assert_eq!(r.state, TaskState::Pending);
    assert_eq!(r.attempts, 1);
    assert_eq!(r.last_error.as_deref(), Some("smtp 451"));
    assert!(r.lease_owner.is_none());
    assert!(r.run_at > Utc::now() + chrono::Duration::milliseconds(100));
    assert!(
        claim_all(&store, WorkerId::new(), 1).await.is_empty(),
        "not before its run_at"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let again = claim_all(&store, WorkerId::new(), 1).await;
    assert_eq!(again[0].attempt, 2);
}

pub async fn fail_keeps_error(db: &impl TestDb) {
    let store = db.store();
    let t = task("work");
    store
        .insert(std::slice::from_ref(&t))
        .await
        .expect("insert");
    let c = claim_all(&store, WorkerId::new(), 1).await.remove(0);
    assert!(store.fail(&c.fence(), "bad address").await.expect("fail"));
    let r = row(&store, t.id).await;
    assert_eq!(r.state, TaskState::Failed);
    assert_eq!(r.last_error.as_deref(), Some("bad address"));
    assert!(r.finished_at.is_some());
    assert!(claim_all(&store, WorkerId::new(), 1).await.is_empty());
}

pub async fn requeue_does_not_count_attempt(db: &impl TestDb) {
    let store = db.store();
    let rows: Vec<_> = (0..3).map(|_| task("work")).collect();
    store.insert(&rows).await.expect("insert");
    let owner = WorkerId::new();
    let claimed = claim_all(&store, owner, 3).await;
    let fences: Vec<_> = claimed
        .iter()
        .map(durable_core::store::ClaimedTask::fence)
        .collect();
    assert_eq!(store.requeue_attempts(&fences).await.expect("requeue"), 3);
    for f in &fences {
        let r = row(&store, f.id).await;
        assert_eq!((r.state, r.attempts), (TaskState::Pending, 0));
        assert!(r.lease_owner.is_none() && r.lease_expires_at.is_none());
        assert!(r.run_at <= Utc::now());
    }
    assert_eq!(
        claim_all(&store, WorkerId::new(), 10).await.len(),
        3,
        "claimable at once"
    );
}

pub async fn rescue_requeues_or_fails_expired(db: &impl TestDb) {
    let store = db.store();
    let retryable = task("work").with_max_attempts(3);
    let last = task("work").with_max_attempts(1);
    let healthy = task("work");
    store
        .insert(&[retryable.clone(), last.clone()])
        .await
        .expect("insert");
    let short = ClaimRequest::new(WorkerId::new(), Duration::from_millis(50), 10, ["work"]);
    let claimed = store.claim(&short).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    // The last attempt started running (a last attempt that never started is spared:
    // `attempts::rescue_spares_a_last_attempt_that_never_started`).
    let on_last = claimed.iter().find(|c| c.id == last.id).expect("claimed");
    assert!(store.mark_started(&on_last.fence()).await.expect("mark"));
    store
        .insert(std::slice::from_ref(&healthy))
        .await
        .expect("insert");
    assert_eq!(claim_all(&store, WorkerId::new(), 10).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(80)).await;
    let report = store.rescue_expired().await.expect("rescue");
    assert_eq!((report.requeued, report.failed), (1, 1));
    let r = row(&store, retryable.id).await;
    assert_eq!(r.state, TaskState::Pending);
    assert!(
        r.last_error
            .as_deref()
            .is_some_and(|e| e.contains("lease expired")),
        "{:?}",
        r.last_error
    );
    let r = row(&store, last.id).await;
    assert_eq!(r.state, TaskState::Failed);
    assert!(
        r.last_error
            .as_deref()
            .is_some_and(|e| e.contains("no attempts left")),
        "{:?}",
        r.last_error
    );
    assert_eq!(
        row(&store, healthy.id).await.state,
        TaskState::Processing,
        "live lease untouched"
    );
}

pub async fn cancel_only_pending(db: &impl TestDb) {
    let store = db.store();
    let a = task("work");
    let b = task("work");
    store.insert(&[a.clone(), b.clone()]).await.expect("insert");
    assert_eq!(
        store.cancel(a.id).await.expect("cancel"),
        CancelOutcome::Cancelled
    );
    assert_eq!(row(&store, a.id).await.state, TaskState::Cancelled);
    assert_eq!(
        store.cancel(a.id).await.expect("cancel twice"),
        CancelOutcome::AlreadyFinished
    );
    let c = claim_all(&store, WorkerId::new(), 10).await;
    assert_eq!(c.len(), 1, "a cancelled task is never claimed");
    assert_eq!(
        store.cancel(b.id).await.expect("cancel processing"),
        CancelOutcome::Requested,
        "a processing task's cancellation is requested, not done"
    );
    assert_eq!(row(&store, b.id).await.state, TaskState::Processing);
    assert_eq!(
        store.cancel(TaskId::new()).await.expect("cancel unknown"),
        CancelOutcome::NotFound
    );
}

pub async fn prune_bounded_and_keeps_failed(db: &impl TestDb) {
    let store = db.store();
    let rows: Vec<_> = (0..7).map(|_| task("work")).collect();
    store.insert(&rows).await.expect("insert");
    let claimed = claim_all(&store, WorkerId::new(), 7).await;
    let fences: Vec<_> = claimed
        .iter()
        .map(durable_core::store::ClaimedTask::fence)
        .collect();
    store.complete(&fences[..5]).await.expect("complete");
    store.fail(&fences[5], "dead").await.expect("fail");
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        store
            .prune(Duration::from_secs(3600), 100)
            .await
            .expect("prune"),
        0,
        "too recent"
    );
    assert_eq!(
        store
            .prune(Duration::from_millis(1), 3)
            .await
            .expect("prune"),
        3,
        "bounded batch"
    );
    assert_eq!(
        store
            .prune(Duration::from_millis(1), 100)
            .await
            .expect("prune"),
        2
    );
    let counts = store.counts().await.expect("counts");
    assert_eq!(
        (counts.completed, counts.failed, counts.processing),
        (0, 1, 1)
    );
}

pub async fn counts_per_state(db: &impl TestDb) {
    let store = db.store();
    let rows: Vec<_> = (0..4).map(|_| task("work")).collect();
    store.insert(&rows).await.expect("insert");
    store.cancel(rows[3].id).await.expect("cancel");
    let claimed = claim_all(&store, WorkerId::new(), 2).await;
    store
        .complete(&[claimed[0].fence()])
        .await
        .expect("complete");
    let counts = store.counts().await.expect("counts");
    assert_eq!(
        (
            counts.pending,
            counts.processing,
            counts.completed,
            counts.failed,
            counts.cancelled
        ),
        (1, 1, 1, 0, 1)
    );
    assert_eq!(counts.unfinished(), 2);
}

pub async fn concurrent_claimers_never_share_a_task(db: &impl TestDb) {
    let store = db.store();
    let other = db.another().await;
    let rows: Vec<_> = (0..600).map(|_| task("work")).collect();
    store.insert(&rows).await.expect("insert");
    let mut handles = Vec::new();
    for i in 0..8 {
        let s = if i % 2 == 0 {
            Arc::clone(&store)
        } else {
            Arc::clone(&other)
        };
        handles.push(tokio::spawn(async move {
            let owner = WorkerId::new();
            let mut mine = Vec::new();
            loop {
                let got = s
                    .claim(&ClaimRequest::new(owner, LEASE, 7, ["work"]))
                    .await
                    .expect("claim");
                if got.is_empty() {
                    return mine;
                }
                assert!(got.len() <= 7);
                mine.extend(got.into_iter().map(|c| c.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    for h in handles {
        for id in h.await.expect("claimer") {
            assert!(seen.insert(id), "task {id} claimed twice");
        }
    }
    assert_eq!(seen.len(), 600);
}

/// The fencing interleaving across two independent connections ("processes").
pub async fn two_stores_fencing_interleaving(db: &impl TestDb) {
    let one = db.store();
    let two = db.another().await;
    let t = task("work");
    one.insert(std::slice::from_ref(&t)).await.expect("insert");
    let a = one
        .claim(&ClaimRequest::new(
            WorkerId::new(),
            Duration::from_millis(50),
            1,
            ["work"],
        ))
        .await
        .expect("claim")
        .remove(0);
    tokio::time::sleep(Duration::from_millis(80)).await;
    two.rescue_expired().await.expect("rescue");
    let b = two
        .claim(&ClaimRequest::new(WorkerId::new(), LEASE, 1, ["work"]))
        .await
        .expect("claim")
        .remove(0);
    assert!(one
        .complete(&[a.fence()])
        .await
        .expect("stale complete")
        .is_empty());
    assert!(!one
        .retry_attempt(&a.fence(), Duration::ZERO, "x")
        .await
        .expect("stale retry"));
    assert_eq!(
        two.complete(&[b.fence()]).await.expect("complete"),
        vec![t.id]
    );
    assert_eq!(row(&one, t.id).await.state, TaskState::Completed);
}

pub async fn migrate_is_idempotent(db: &impl TestDb) {
    let store = db.store();
    store.migrate().await.expect("second migrate");
    let other = db.another().await;
    other
        .migrate()
        .await
        .expect("migrate from another connection");
    store
        .insert(&[task("work")])
        .await
        .expect("insert after migrations");
}

fn fence_of(t: &NewTask, owner: WorkerId) -> durable_core::store::Fence {
    durable_core::store::Fence {
        id: t.id,
        owner,
        attempt: 1,
    }
}

/// One `write` does the completions, the inserts and a claim that sees the new rows — at
/// every batch size (stores may switch statement shapes with the size: 1, 3, 17, 128, 129
/// and 600 rows here).
pub async fn write_combines_completions_inserts_and_claim(db: &impl TestDb) {
    let store = db.store();
    let owner = WorkerId::new();
    let mut held: Vec<NewTask> = Vec::new();
    for n in [1usize, 3, 17, 128, 129, 600] {
        // `n` rows inserted already claimed, `n` pending ones; the previous round's rows
        // completed; a claim of up to 2 rows.
        let claimed: Vec<NewTask> = (0..n)
            .map(|_| task("work").claimed_by(owner, LEASE))
            .collect();
        let pending: Vec<NewTask> = (0..n).map(|_| task("work")).collect();
        let rows: Vec<NewTask> = claimed.iter().chain(&pending).cloned().collect();
        let fences: Vec<_> = held.iter().map(|t| fence_of(t, owner)).collect();
        let request = ClaimRequest::new(owner, LEASE, 2, ["work"]);
        let outcome = store
            .write(
                WriteBatch::new()
                    .insert(&rows)
                    .complete(&fences)
                    .claim(&request),
            )
            .await;
        outcome.inserted.expect("insert part");
        let completed: HashSet<_> = outcome
            .completed
            .expect("complete part")
            .into_iter()
            .collect();
        assert_eq!(
            completed,
            held.iter().map(|t| t.id).collect::<HashSet<_>>(),
            "n={n}"
        );
        let got = outcome.claimed.expect("claim part");
        assert_eq!(
            got.len(),
            2.min(n),
            "n={n}: the claim sees the rows inserted before it"
        );
        for c in &got {
            assert_eq!((c.owner, c.attempt), (owner, 1));
            assert_eq!(row(&store, c.id).await.state, TaskState::Processing);
        }
        for t in &held {
            let r = row(&store, t.id).await;
            assert_eq!(r.state, TaskState::Completed, "n={n}");
            assert!(r.finished_at.is_some() && r.lease_expires_at.is_none());
        }
        for t in &claimed {
            let r = row(&store, t.id).await;
            assert_eq!(
                (r.state, r.attempts, r.lease_owner),
                (TaskState::Processing, 1, Some(owner))
            );
            let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).expect("json");
            assert_eq!(json(&r.payload), json(&t.payload));
        }
        // Leave the rest pending for good: cancel them so the next claim starts clean.
        let claimed_ids: HashSet<_> = got.iter().map(|c| c.id).collect();
        for t in pending.iter().filter(|t| !claimed_ids.contains(&t.id)) {
            assert_eq!(
                store.cancel(t.id).await.expect("cancel"),
                CancelOutcome::Cancelled
            );
        }
        let done: Vec<_> = got
            .iter()
            .map(durable_core::store::ClaimedTask::fence)
            .collect();
        assert_eq!(
            store.complete(&done).await.expect("complete").len(),
            done.len()
        );
        held = claimed;
    }
    let counts = store.counts().await.expect("counts");
    assert_eq!(counts.processing, 600, "the last round's claimed rows");
}

/// A part that fails alone does not fail the others: a duplicate id fails the insert (none
/// of its rows stored), while the completions and the claim riding with it still apply.
/// (The duplicate is of a task that stays live: on PostgreSQL an id is unique within each
/// partition, and one the batch completes may already have moved to the history.)
/// A stale fence is left out of the completed ids without failing the rest.
pub async fn write_parts_fail_alone(db: &impl TestDb) {
    let store = db.store();
    let owner = WorkerId::new();
    let held: Vec<NewTask> = (0..3)
        .map(|_| task("work").claimed_by(owner, LEASE))
        .collect();
    let waiting = task("work");
    let mut seed = held.clone();
    seed.push(waiting.clone());
    store.insert(&seed).await.expect("seed");
    let fresh = task("work");
    let duplicate = vec![fresh.clone(), held[2].clone()];
    let mut fences: Vec<_> = held.iter().map(|t| fence_of(t, owner)).collect();
    // A fence of another owner: stale, must not apply.
    fences[2].owner = WorkerId::new();
    let request = ClaimRequest::new(owner, LEASE, 5, ["work"]);
    let outcome = store
        .write(
            WriteBatch::new()
                .insert(&duplicate)
                .complete(&fences)
                .claim(&request),
        )
        .await;
    assert!(
        outcome.inserted.is_err(),
        "the duplicate id fails the insert"
    );
    assert!(
        store.get(fresh.id).await.expect("get").is_none(),
        "none of its rows stored"
    );
    let mut completed = outcome.completed.expect("completions still apply");
    completed.sort_by_key(ToString::to_string);
    let mut expected = vec![held[0].id, held[1].id];
    expected.sort_by_key(ToString::to_string);
    assert_eq!(completed, expected, "the stale fence is left out");
    assert_eq!(row(&store, held[2].id).await.state, TaskState::Processing);
    let claimed = outcome.claimed.expect("the claim still applies");
    assert_eq!(
        claimed.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![waiting.id]
    );

    // Everything valid but one stale fence: one transaction, the stale fence left out.
    let more: Vec<NewTask> = (0..4)
        .map(|_| task("work").claimed_by(owner, LEASE))
        .collect();
    store.insert(&more).await.expect("insert");
    let mut fences: Vec<_> = more.iter().map(|t| fence_of(t, owner)).collect();
    fences[1].attempt = 2;
    let rows = vec![task("work")];
    let outcome = store
        .write(WriteBatch::new().insert(&rows).complete(&fences))
        .await;
    outcome.inserted.expect("insert part");
    let completed: HashSet<_> = outcome
        .completed
        .expect("complete part")
        .into_iter()
        .collect();
    let expected: HashSet<_> = [more[0].id, more[2].id, more[3].id].into_iter().collect();
    assert_eq!(completed, expected);
    assert_eq!(row(&store, more[1].id).await.state, TaskState::Processing);
    assert_eq!(row(&store, rows[0].id).await.state, TaskState::Pending);
}

/// The backlog a load shedder looks at counts due `pending` rows only: tasks scheduled for
/// later and retries waiting out their backoff are not work waiting for a worker.
pub async fn backlog_counts_due_rows_only(db: &impl TestDb) {
    let store = db.store();
    let first = task("work");
    let second = task("work");
    let tomorrow = task("work").with_run_at(Utc::now() + chrono::Duration::hours(24));
    store
        .insert(&[first.clone(), second.clone(), tomorrow])
        .await
        .expect("insert");
    assert_eq!(store.backlog().await.expect("backlog"), 2);
    let claimed = claim_all(&store, WorkerId::new(), 1).await;
    assert_eq!(claimed[0].id, first.id);
    assert_eq!(
        store.backlog().await.expect("backlog"),
        1,
        "processing is not backlog"
    );
    assert!(store
        .retry_attempt(&claimed[0].fence(), Duration::from_secs(3600), "later")
        .await
        .expect("retry"));
    assert_eq!(
        store.backlog().await.expect("backlog"),
        1,
        "a retry waiting out its backoff is not backlog"
    );
    assert_eq!(store.counts().await.expect("counts").pending, 3);
}

/// A claim takes only the task types it names, in every shape — the plain and the capped
/// claim, and the writer cycles of each store (SQLite: bound parameters, JSON arrays past 512
/// rows, a capped claim statement by statement): rows of other types stay `pending`,
/// untouched, for an instance that knows them. A claim naming no type takes nothing.
pub async fn claim_takes_only_named_task_types(db: &impl TestDb) {
    let store = db.store();
    let owner = WorkerId::new();
    let mut unknown = Vec::new();
    for (shape, fresh, capped) in [
        ("claim", None, false),
        ("capped claim", None, true),
        ("cycle", Some(3), false),
        ("large cycle", Some(600), false),
        ("capped cycle", Some(3), true),
    ] {
        // The unknown rows first, so they are ahead of the known ones in claim order.
        let newer = [task("newer"), task("newer").with_queue("mail")];
        store.insert(&newer).await.expect("insert");
        unknown.extend(newer.iter().map(|t| t.id));
        let known = [task("work"), task("work").with_queue("mail")];
        store.insert(&known).await.expect("insert");
        let rows: Vec<NewTask> = (0..fresh.unwrap_or(0)).map(|_| task("work")).collect();
        let request = ClaimRequest::new(owner, LEASE, 10_000, ["work", "mail"]);
        let request = if capped {
            request.cap("mail", 10)
        } else {
            request
        };
        let claimed = if fresh.is_some() {
            let outcome = store
                .write(WriteBatch::new().insert(&rows).claim(&request))
                .await;
            outcome.inserted.expect("insert");
            outcome.claimed.expect("claim")
        } else {
            store.claim(&request).await.expect("claim")
        };
        let got: HashSet<TaskId> = claimed.iter().map(|c| c.id).collect();
        let want: HashSet<TaskId> = known.iter().chain(&rows).map(|t| t.id).collect();
        assert_eq!(got, want, "{shape}: the known rows, and only those");
        for id in &unknown {
            let r = row(&store, *id).await;
            assert_eq!(
                (r.state, r.attempts, r.lease_owner),
                (TaskState::Pending, 0, None),
                "{shape}: a row of an unknown type is left alone"
            );
        }
        let fences: Vec<_> = claimed.iter().map(ClaimedTask::fence).collect();
        store.complete(&fences).await.expect("complete");
    }
    let known = task("work");
    store
        .insert(std::slice::from_ref(&known))
        .await
        .expect("insert");
    let nothing = ClaimRequest::new(owner, LEASE, 10, Vec::<String>::new());
    assert!(store.claim(&nothing).await.expect("claim").is_empty());
    let outcome = store.write(WriteBatch::new().claim(&nothing)).await;
    assert!(outcome.claimed.expect("claim").is_empty());
    assert_eq!(row(&store, known.id).await.state, TaskState::Pending);
}

/// `unclaimable` counts the due `pending` rows of task types outside the known ones, per
/// name, most first — only rows due for at least the wait; not rows scheduled for later, not
/// known types, not rows that are no longer pending.
pub async fn unclaimable_counts_waiting_unknown_types(db: &impl TestDb) {
    let store = db.store();
    let long_ago = Utc::now() - chrono::Duration::minutes(5);
    let cancelled = task("gone").with_run_at(long_ago);
    let rows = vec![
        task("newer").with_run_at(long_ago),
        task("newer").with_run_at(long_ago).with_queue("mail"),
        task("newer").with_run_at(long_ago).with_priority(5),
        task("older").with_run_at(long_ago),
        task("newer"),
        task("newer").with_run_at(Utc::now() + chrono::Duration::hours(24)),
        task("work").with_run_at(long_ago),
        task("work"),
        cancelled.clone(),
    ];
    store.insert(&rows).await.expect("insert");
    assert_eq!(
        store.cancel(cancelled.id).await.expect("cancel"),
        CancelOutcome::Cancelled
    );
    let known = ["work".to_owned()];
    assert_eq!(
        store
            .unclaimable(&known, Duration::from_secs(60))
            .await
            .expect("unclaimable"),
        vec![("newer".to_owned(), 3), ("older".to_owned(), 1)]
    );
    assert_eq!(
        store
            .unclaimable(&known, Duration::ZERO)
            .await
            .expect("unclaimable"),
        vec![("newer".to_owned(), 4), ("older".to_owned(), 1)],
        "due now counts once the wait is zero; due tomorrow does not"
    );
    let all = ["work", "newer", "older"].map(str::to_owned);
    assert!(store
        .unclaimable(&all, Duration::ZERO)
        .await
        .expect("unclaimable")
        .is_empty());
}

/// `list` filters by state, name and queue and pages by id (creation order), a keyset page
/// at a time.
pub async fn list_filters_and_pages_in_id_order(db: &impl TestDb) {
    use durable_core::store::ListQuery;
    let store = db.store();
    let mut ids = Vec::new();
    for i in 0..25 {
        let (name, queue) = if i % 5 == 0 {
            ("report", "slow")
        } else {
            ("work", "default")
        };
        let t = NewTask::new(name, format!(r#"{{"key":"list-{i}"}}"#)).with_queue(queue);
        store
            .insert(std::slice::from_ref(&t))
            .await
            .expect("insert");
        ids.push(t.id);
    }
    // Two `work` rows processing, one of them then failed.
    let claimed = claim_all(&store, WorkerId::new(), 2).await;
    assert!(store.fail(&claimed[0].fence(), "boom").await.expect("fail"));

    let mut paged = Vec::new();
    let mut query = ListQuery::new(10);
    loop {
        let page = store.list(&query).await.expect("list");
        assert!(page.tasks.len() <= 10);
        paged.extend(page.tasks.iter().map(|r| r.id));
        match page.next {
            Some(next) => query = query.after(next),
            None => break,
        }
    }
    assert_eq!(paged, ids, "every row once, in creation order");

    let reports = store
        .list(&ListQuery::new(100).name("report"))
        .await
        .expect("list")
        .tasks;
    assert_eq!(reports.len(), 5);
    assert!(reports
        .iter()
        .all(|r| r.name == "report" && r.queue == "slow"));
    let slow = store
        .list(&ListQuery::new(100).queue("slow").state(TaskState::Pending))
        .await
        .expect("list")
        .tasks;
    assert_eq!(slow.len(), 5);
    let failed = store
        .list(&ListQuery::new(100).state(TaskState::Failed))
        .await
        .expect("list")
        .tasks;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, claimed[0].id);
    assert_eq!(failed[0].last_error.as_deref(), Some("boom"));
    let processing = store
        .list(
            &ListQuery::new(100)
                .state(TaskState::Processing)
                .name("work"),
        )
        .await
        .expect("list")
        .tasks;
    assert_eq!(processing.len(), 1);
    assert!(store
        .list(&ListQuery::new(100).name("nothing"))
        .await
        .expect("list")
        .tasks
        .is_empty());
}
