//! Runtime cases over a real store: outcomes, limits, shutdown, recovery, wakeups.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_core::runtime::RuntimeBuilder;
use durable_core::store::{AdminStore, ClaimRequest, Fence, NewTask, StateCounts, Store};
use durable_core::{Client, EnqueueOptions, Error, Runtime, TaskState};

use super::counting::{ClaimHold, Counting};
use super::tasks::{registry, Chain, Hangs, Mail, Panics, Probe, Rejects, Work};
use super::Writes;
use super::{eventually, row, wait_state, TestDb};

const WAIT: Duration = Duration::from_secs(10);

fn builder(store: Arc<dyn Store>, probe: &Probe) -> RuntimeBuilder {
    Runtime::builder(store, registry(probe))
        .poll_interval(Duration::from_millis(50))
        .lease(Duration::from_secs(5))
}

async fn done(runtime: &Runtime) {
    runtime.shutdown(Duration::from_secs(5)).await;
}

pub async fn runs_to_completion(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = builder(Arc::clone(&store), &probe).start();
    let id = rt.client().enqueue(Work::new("a")).await.expect("enqueue");
    let r = wait_state(&store, id, TaskState::Completed, WAIT).await;
    assert_eq!(r.attempts, 1);
    assert!(r.finished_at.is_some());
    assert_eq!(probe.runs("a"), 1);
    // The row is visible as completed a moment before the runtime hears its write applied.
    eventually("the runtime to count the completion", WAIT, || async {
        (rt.stats().completed == 1).then_some(())
    })
    .await;
    done(&rt).await;
}

pub async fn retries_then_succeeds(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = builder(Arc::clone(&store), &probe).start();
    let id = rt
        .client()
        .enqueue(Work {
            key: "r".into(),
            sleep_ms: 0,
            fail_first: 2,
        })
        .await
        .expect("enqueue");
    let r = wait_state(&store, id, TaskState::Completed, WAIT).await;
    assert_eq!(r.attempts, 3);
    assert_eq!(
        r.last_error.as_deref(),
        Some("planned failure 2"),
        "last error kept"
    );
    assert_eq!(probe.runs("r"), 3);
    assert_eq!(rt.stats().retried, 2);
    done(&rt).await;
}

pub async fn panic_is_caught_and_retried(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = builder(Arc::clone(&store), &probe).start();
    let id = rt.client().enqueue(Panics).await.expect("enqueue");
    let r = wait_state(&store, id, TaskState::Failed, WAIT).await;
    assert_eq!(
        r.attempts, 2,
        "panics count as failed attempts and are retried"
    );
    assert!(
        r.last_error
            .as_deref()
            .is_some_and(|e| e.contains("panicked: boom in task")),
        "{:?}",
        r.last_error
    );
    assert_eq!(probe.runs("panics"), 2);
    // The worker survived: it still runs other tasks.
    let ok = rt
        .client()
        .enqueue(Work::new("after-panic"))
        .await
        .expect("enqueue");
    wait_state(&store, ok, TaskState::Completed, WAIT).await;
    done(&rt).await;
}

pub async fn timeout_is_retryable(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = builder(Arc::clone(&store), &probe).start();
    let id = rt.client().enqueue(Hangs).await.expect("enqueue");
    let r = wait_state(&store, id, TaskState::Failed, WAIT).await;
    assert_eq!(r.attempts, 2);
    assert!(
        r.last_error
            .as_deref()
            .is_some_and(|e| e.contains("timed out after 50ms")),
        "{:?}",
        r.last_error
    );
    done(&rt).await;
}

pub async fn permanent_error_fails_at_once(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = builder(Arc::clone(&store), &probe).start();
    let id = rt.client().enqueue(Rejects).await.expect("enqueue");
    let r = wait_state(&store, id, TaskState::Failed, WAIT).await;
    assert_eq!(r.attempts, 1);
    assert_eq!(r.last_error.as_deref(), Some("user no longer exists"));
    done(&rt).await;
}

pub async fn exhausted_attempts_end_failed(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = builder(Arc::clone(&store), &probe).start();
    let id = rt
        .client()
        .enqueue_with(
            Work {
                key: "x".into(),
                sleep_ms: 0,
                fail_first: 100,
            },
            EnqueueOptions::new().max_attempts(3),
        )
        .await
        .expect("enqueue");
    let r = wait_state(&store, id, TaskState::Failed, WAIT).await;
    assert_eq!((r.attempts, r.max_attempts), (3, 3));
    assert_eq!(r.last_error.as_deref(), Some("planned failure 3"));
    assert_eq!(probe.runs("x"), 3, "never more than max_attempts");
    done(&rt).await;
}

/// A runtime that does not know a task type leaves its rows `pending`, unclaimed and
/// untouched (a newer version's tasks during a rolling deploy), and runs the rows it knows
/// around them; a runtime that knows the type runs them.
pub async fn unknown_task_type_waits_for_a_runtime_that_knows_it(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let old = builder(Arc::clone(&store), &probe).start();
    // Written straight to the store: the old runtime must claim them, not dispatch them.
    // The unknown row first, so it is ahead of the known one in claim order.
    let newer = NewTask::new("newer", r#"{"key":"n"}"#);
    let known = NewTask::new("work", r#"{"key":"k"}"#);
    store
        .insert(&[newer.clone(), known.clone()])
        .await
        .expect("insert");
    old.client().notify_committed();
    wait_state(&store, known.id, TaskState::Completed, WAIT).await;
    let r = row(&store, newer.id).await;
    assert_eq!(
        (r.state, r.attempts, r.last_error.as_deref()),
        (TaskState::Pending, 0, None),
        "a task of an unknown type is left for a runtime that knows it: {r:?}"
    );
    assert_eq!(old.stats().failed, 0);
    // A runtime of the newer version runs it (the old one is still claiming).
    let newer_probe = Probe::default();
    let registry =
        super::tasks::registry(&newer_probe).register::<super::tasks::Newer>(newer_probe.clone());
    let new = Runtime::builder(Arc::clone(&store), registry)
        .poll_interval(Duration::from_millis(50))
        .start();
    let r = wait_state(&store, newer.id, TaskState::Completed, WAIT).await;
    assert_eq!(r.attempts, 1);
    assert_eq!(newer_probe.runs("n"), 1);
    assert_eq!(probe.runs("n"), 0);
    done(&old).await;
    done(&new).await;
}

/// A runtime says which due tasks it will not run because it does not know their type — once
/// at start and then at most once a minute, with the names and counts, never per row.
pub async fn unknown_task_types_are_reported(db: &impl TestDb) {
    super::warnings();
    let probe = Probe::default();
    let store = db.store();
    // Due for five minutes: nobody took them, and nobody here will.
    let long_ago = chrono::Utc::now() - chrono::Duration::minutes(5);
    let retired: Vec<NewTask> = (0..3)
        .map(|_| NewTask::new("retired_report", "{}").with_run_at(long_ago))
        .collect();
    store.insert(&retired).await.expect("insert");
    let rt = builder(Arc::clone(&store), &probe).start();
    let line = eventually("the warning about the unknown type", WAIT, || async {
        super::warnings()
            .lines()
            .find(|l| l.contains("retired_report (3)"))
            .map(str::to_owned)
    })
    .await;
    assert!(
        line.contains("WARN") && line.contains("does not register") && line.contains("tasks=3"),
        "{line}"
    );
    for t in &retired {
        assert_eq!(row(&store, t.id).await.state, TaskState::Pending);
    }
    done(&rt).await;
    let reported = super::warnings().matches("retired_report (3)").count();
    assert_eq!(reported, 1, "one warning, not one per row or per claim");
}

/// A payload this code cannot decode (a field removed or retyped by another version) is a
/// failed attempt, retried with backoff within the task's attempts — not failed at once.
pub async fn undecodable_payload_is_retried_then_fails(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = builder(Arc::clone(&store), &probe).start();
    let bad = NewTask::new("work", r#"{"not_key": 1}"#).with_max_attempts(3);
    store
        .insert(std::slice::from_ref(&bad))
        .await
        .expect("insert");
    let r = wait_state(&store, bad.id, TaskState::Failed, WAIT).await;
    assert_eq!(r.attempts, 3, "every attempt was tried: {r:?}");
    let e = r.last_error.expect("error recorded");
    assert!(
        e.starts_with("cannot decode payload of task type `work`")
            && e.contains("missing field `key`"),
        "{e}"
    );
    let ok = rt
        .client()
        .enqueue(Work::new("still-alive"))
        .await
        .expect("enqueue");
    wait_state(&store, ok, TaskState::Completed, WAIT).await;
    done(&rt).await;
}

pub async fn oversized_payload_refused(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = builder(Arc::clone(&store), &probe)
        .max_payload_bytes(1024)
        .start();
    let err = rt
        .client()
        .enqueue(Work::new("x".repeat(2000)))
        .await
        .expect_err("payload over the limit");
    assert!(
        matches!(err, Error::PayloadTooLarge { limit: 1024, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("over the limit of 1024 bytes"),
        "{err}"
    );
    assert_eq!(
        store.counts().await.expect("counts"),
        StateCounts::default(),
        "nothing stored"
    );
    done(&rt).await;
}

pub async fn concurrency_limit_never_exceeded(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = builder(Arc::clone(&store), &probe).concurrency(4).start();
    let ids = rt
        .client()
        .enqueue_many((0..40).map(|i| Work::sleeping(format!("c{i}"), 20)))
        .await
        .expect("enqueue");
    for id in ids {
        wait_state(&store, id, TaskState::Completed, WAIT).await;
    }
    assert!(
        probe.peak() <= 4,
        "peak concurrency {} over the limit",
        probe.peak()
    );
    assert!(
        probe.peak() >= 2,
        "should run in parallel, peak {}",
        probe.peak()
    );
    done(&rt).await;
}

pub async fn queue_limit_never_exceeded(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = builder(Arc::clone(&store), &probe)
        .concurrency(10)
        .queue_limit("mail", 2)
        .start();
    let ids = rt
        .client()
        .enqueue_many((0..12).map(|i| Mail {
            key: format!("m{i}"),
            sleep_ms: 30,
        }))
        .await
        .expect("enqueue");
    for id in ids {
        wait_state(&store, id, TaskState::Completed, WAIT).await;
    }
    assert!(
        probe.peak() <= 2,
        "queue peak {} over its limit",
        probe.peak()
    );
    done(&rt).await;
}

pub async fn shutdown_requeues_unfinished(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = builder(Arc::clone(&store), &probe)
        .cancel_grace(Duration::from_millis(200))
        .start();
    let long = rt
        .client()
        .enqueue(Work::sleeping("long", 60_000))
        .await
        .expect("enqueue");
    eventually("task to start", WAIT, || async {
        (probe.live() == 1).then_some(())
    })
    .await;
    let started = Instant::now();
    let report = rt.shutdown(Duration::from_millis(200)).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert_eq!(report.requeued, 1);
    assert!(!report.drained);
    assert_eq!(probe.cancelled(), 1, "the task observed its cancellation");
    let r = row(&store, long).await;
    assert_eq!(r.state, TaskState::Pending);
    assert_eq!(r.attempts, 0, "the interrupted attempt is not counted");
    assert!(r.lease_owner.is_none());
    // The next process starts it at once.
    let probe2 = Probe::default();
    let rt2 = builder(Arc::clone(&store), &probe2).start();
    eventually("restart to pick it up", WAIT, || async {
        (probe2.runs("long") == 1).then_some(())
    })
    .await;
    rt2.shutdown(Duration::ZERO).await;
}

pub async fn shutdown_waits_for_finishing_tasks(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = builder(Arc::clone(&store), &probe).start();
    let id = rt
        .client()
        .enqueue(Work::sleeping("short", 300))
        .await
        .expect("enqueue");
    eventually("task to start", WAIT, || async {
        (probe.live() == 1).then_some(())
    })
    .await;
    let report = rt.shutdown(Duration::from_secs(5)).await;
    assert!(report.drained);
    assert_eq!((report.finished, report.requeued), (1, 0));
    assert_eq!(row(&store, id).await.state, TaskState::Completed);
    // After shutdown nothing is claimed.
    let client = Client::builder(Arc::clone(&store))
        .max_payload_bytes(1 << 20)
        .build();
    let later = client
        .enqueue(Work::new("after"))
        .await
        .expect("enqueue after shutdown");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(row(&store, later).await.state, TaskState::Pending);
}

pub async fn local_dispatch_starts_without_poll(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = builder(Arc::clone(&store), &probe)
        .poll_interval(Duration::from_secs(3600))
        .start();
    // Let the startup claim pass.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let id = rt
        .client()
        .enqueue(Work::new("fast"))
        .await
        .expect("enqueue");
    wait_state(&store, id, TaskState::Completed, Duration::from_secs(2)).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(rt.stats().dispatched_locally, 1);
    done(&rt).await;
}

pub async fn notify_committed_wakes_runtime(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = builder(Arc::clone(&store), &probe)
        .poll_interval(Duration::from_secs(3600))
        .start();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Written behind the client's back, as a caller's own transaction would.
    let row_ = rt
        .client()
        .prepare(&Work::new("tx"), &EnqueueOptions::new())
        .expect("prepare");
    store
        .insert(std::slice::from_ref(&row_))
        .await
        .expect("insert");
    rt.client().notify_committed();
    wait_state(
        &store,
        row_.id,
        TaskState::Completed,
        Duration::from_secs(2),
    )
    .await;
    done(&rt).await;
}

pub async fn scheduled_task_runs_when_due(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = builder(Arc::clone(&store), &probe)
        .poll_interval(Duration::from_secs(3600))
        .start();
    let started = Instant::now();
    let id = rt
        .client()
        .enqueue_with(
            Work::new("later"),
            EnqueueOptions::new().delay(Duration::from_millis(300)),
        )
        .await
        .expect("enqueue");
    assert_eq!(row(&store, id).await.state, TaskState::Pending);
    wait_state(&store, id, TaskState::Completed, Duration::from_secs(3)).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(290), "ran early: {took:?}");
    assert!(
        took < Duration::from_secs(2),
        "a known due time wakes the runtime without polling: {took:?}"
    );
    done(&rt).await;
}

/// A process dies mid-task (its Tokio runtime is torn down: no shutdown, no requeue, no more
/// heartbeats); a second runtime on another connection recovers the task within about one
/// lease.
pub async fn lease_expiry_recovered_by_second_runtime(db: &impl TestDb) {
    let store = db.store();
    let lease = Duration::from_millis(600);
    let doomed_probe = Probe::default();
    // The doomed process has its own connections, as a real process would: tearing down its
    // Tokio runtime must not break the pool the test reads with.
    let doomed_store = db.another().await;
    let id = {
        let store = doomed_store;
        let probe = doomed_probe.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("tokio");
            let id = rt.block_on(async {
                let runtime = builder(store, &probe).lease(lease).start();
                let id = runtime
                    .client()
                    .enqueue(Work::sleeping("crash", 60_000))
                    .await
                    .expect("enqueue");
                eventually("doomed start", WAIT, || async {
                    (probe.live() == 1).then_some(())
                })
                .await;
                std::mem::forget(runtime);
                id
            });
            rt.shutdown_background(); // the "SIGKILL"
            id
        })
        .join()
        .expect("doomed process")
    };
    let died = Instant::now();
    assert_eq!(
        row(&store, id).await.state,
        TaskState::Processing,
        "left behind by the dead process"
    );
    let other = db.another().await;
    let probe = Probe::default();
    let rt = builder(Arc::clone(&other), &probe).lease(lease).start();
    eventually("recovery", WAIT, || async {
        (probe.runs("crash") == 1).then_some(())
    })
    .await;
    let recovered = died.elapsed();
    assert!(
        recovered < lease * 3,
        "recovered after {recovered:?}, lease {lease:?}"
    );
    let r = row(&other, id).await;
    assert_eq!(r.attempts, 2);
    assert!(r
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("lease expired")));
    rt.shutdown(Duration::ZERO).await;
}

/// A worker whose lease was taken over stops its attempt and its late writes are rejected.
pub async fn lost_lease_cancels_zombie_attempt(db: &impl TestDb) {
    let store = db.store();
    let probe = Probe::default();
    let rt = builder(Arc::clone(&store), &probe)
        .lease(Duration::from_secs(10))
        .heartbeat_interval(Duration::from_millis(300))
        .poll_interval(Duration::from_secs(3600))
        // Its one slot is held by the zombie: a wakeup (PostgreSQL notifies on requeue)
        // cannot make it re-claim before the other worker below.
        .concurrency(1)
        .start();
    tokio::time::sleep(Duration::from_millis(100)).await; // let the startup claim pass
    let id = rt
        .client()
        .enqueue(Work::sleeping("zombie", 60_000))
        .await
        .expect("enqueue");
    eventually("start", WAIT, || async {
        (probe.live() == 1).then_some(())
    })
    .await;
    let zombie = Fence {
        id,
        owner: rt.worker_id(),
        attempt: 1,
    };
    // Another worker "takes over": the row is requeued and re-claimed behind this runtime's back.
    assert_eq!(store.requeue_attempts(&[zombie]).await.expect("requeue"), 1);
    let other = durable_core::WorkerId::new();
    let taken = store
        .claim(&ClaimRequest::new(
            other,
            Duration::from_secs(30),
            1,
            ["work"],
        ))
        .await
        .expect("claim");
    assert_eq!(
        taken.len(),
        1,
        "row after the takeover attempt: {:?}",
        row(&store, id).await
    );
    eventually("zombie to stop", WAIT, || async {
        (probe.live() == 0).then_some(())
    })
    .await;
    let r = row(&store, id).await;
    assert_eq!(
        (r.state, r.lease_owner),
        (TaskState::Processing, Some(other)),
        "new holder untouched"
    );
    assert!(store
        .complete(&[zombie])
        .await
        .expect("complete")
        .is_empty());
    rt.shutdown(Duration::ZERO).await;
    assert_eq!(
        row(&store, id).await.lease_owner,
        Some(other),
        "shutdown requeue does not touch it"
    );
}

pub async fn retention_prunes_completed_only(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = builder(Arc::clone(&store), &probe)
        .retention(Some(Duration::from_millis(1)))
        .prune_every(Duration::from_millis(50), 2)
        .start();
    let ok = rt
        .client()
        .enqueue_many((0..5).map(|i| Work::new(format!("p{i}"))))
        .await
        .expect("enqueue");
    let dead = rt.client().enqueue(Rejects).await.expect("enqueue");
    wait_state(&store, dead, TaskState::Failed, WAIT).await;
    for id in ok {
        eventually("pruned", WAIT, || async {
            store.get(id).await.expect("get").is_none().then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        row(&store, dead).await.state,
        TaskState::Failed,
        "failed rows are kept"
    );
    done(&rt).await;
}

/// Many enqueuers and two runtimes on two connections at once: no store error escapes
/// (SQLite: no `SQLITE_BUSY`) and every task completes exactly once.
pub async fn concurrent_enqueuers_and_workers(db: &impl TestDb) {
    let store = db.store();
    let other = db.another().await;
    let probe = Probe::default();
    let a = builder(Arc::clone(&store), &probe).concurrency(16).start();
    let b = builder(Arc::clone(&other), &probe).concurrency(16).start();
    let mut handles = Vec::new();
    for e in 0..16 {
        let client = if e % 2 == 0 { a.client() } else { b.client() };
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..40 {
                ids.push(
                    client
                        .enqueue(Work::new(format!("e{e}-{i}")))
                        .await
                        .expect("enqueue never fails"),
                );
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for h in handles {
        ids.extend(h.await.expect("enqueuer"));
    }
    eventually("all completed", Duration::from_secs(30), || async {
        (store.counts().await.expect("counts").completed == 640).then_some(())
    })
    .await;
    for e in 0..16 {
        for i in 0..40 {
            assert_eq!(probe.runs(&format!("e{e}-{i}")), 1);
        }
    }
    assert_eq!(a.stats().stale_writes + b.stats().stale_writes, 0);
    a.shutdown(Duration::from_secs(5)).await;
    b.shutdown(Duration::from_secs(5)).await;
}

pub async fn enqueue_from_task(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = builder(Arc::clone(&store), &probe).start();
    rt.client()
        .enqueue(Chain {
            next_key: "child".into(),
        })
        .await
        .expect("enqueue");
    eventually("child ran", WAIT, || async {
        (probe.runs("child") == 1).then_some(())
    })
    .await;
    done(&rt).await;
}

/// An idle runtime with default settings makes about one store call per poll interval and
/// does not spin.
pub async fn idle_runtime_is_quiet(db: &impl TestDb) {
    let store = Arc::new(Counting::new(db.store()));
    let calls = Arc::clone(&store);
    let probe = Probe::default();
    let rt = Runtime::builder(store, registry(&probe)).start();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = calls.calls.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let per_second = (calls.calls.load(Ordering::SeqCst) - before) as f64 / 3.0;
    assert!(
        per_second <= 2.0,
        "idle runtime made {per_second:.1} store calls/s"
    );
    rt.shutdown(Duration::ZERO).await;
}

pub async fn cancelled_task_never_runs(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let client = Client::builder(Arc::clone(&store))
        .max_payload_bytes(1 << 20)
        .build();
    let id = client
        .enqueue_with(
            Work::new("never"),
            EnqueueOptions::new().delay(Duration::from_millis(200)),
        )
        .await
        .expect("enqueue");
    assert_eq!(
        client.cancel(id).await.expect("cancel"),
        durable_core::store::CancelOutcome::Cancelled
    );
    let rt = builder(Arc::clone(&store), &probe).start();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(probe.runs("never"), 0);
    assert_eq!(row(&store, id).await.state, TaskState::Cancelled);
    done(&rt).await;
}

/// Shutdown begins while a claim is in flight (the claim loop was just woken by a commit):
/// the claimed tasks still run within the grace period, and so do the ones the claim did not
/// see (shutdown's last claim); none is left `processing` or `pending`.
pub async fn shutdown_during_claim_drains_claimed_tasks(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = builder(Arc::clone(&store), &probe)
        .local_dispatch(false) // force the claim path
        .poll_interval(Duration::from_secs(3600))
        .start();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ids = rt
        .client()
        .enqueue_many((0..5).map(|i| Work::sleeping(format!("s{i}"), 50)))
        .await
        .expect("enqueue");
    let report = rt.shutdown(Duration::from_secs(5)).await;
    assert!(report.drained, "{report:?}");
    for id in ids {
        let r = row(&store, id).await;
        assert_eq!(
            r.state,
            TaskState::Completed,
            "acknowledged before shutdown, so drained: {r:?}"
        );
    }
}

/// A request's own transaction commits tasks while a claim that cannot see them is in
/// flight, and shutdown begins before the claim loop looks again: shutdown claims them in a
/// last claim and drains them, rather than leaving acknowledged tasks for the next start.
pub async fn shutdown_drains_tasks_committed_after_the_last_claim(db: &impl TestDb) {
    let probe = Probe::default();
    let hold = Arc::new(ClaimHold::default());
    let inner = db.store();
    let store = Arc::new(Counting::holding(Arc::clone(&inner), Arc::clone(&hold)));
    let rt = builder(store, &probe)
        .local_dispatch(false)
        .poll_interval(Duration::from_secs(3600))
        .start();
    let client = rt.client();
    let stopping = rt.stopping();
    // Let the start-up claim pass, then hold the next one after its statement ran.
    tokio::time::sleep(Duration::from_millis(100)).await;
    hold.armed.store(true, Ordering::SeqCst);
    client.notify_committed();
    tokio::time::timeout(WAIT, hold.entered.notified())
        .await
        .expect("the claim loop claimed after the wakeup");

    // The handler's transaction commits (as `enqueue_in` + commit would) and says so.
    let tasks: Vec<NewTask> = (0..3)
        .map(|i| NewTask::new("work", format!(r#"{{"key":"late{i}"}}"#)))
        .collect();
    inner.insert(&tasks).await.expect("insert");
    client.notify_committed();

    let shutdown = tokio::spawn(async move { rt.shutdown(Duration::from_secs(5)).await });
    eventually("shutdown began", WAIT, || async {
        stopping.is_cancelled().then_some(())
    })
    .await;
    hold.release.notify_one();
    let report = shutdown.await.expect("shutdown task");
    assert!(report.drained, "{report:?}");
    for task in &tasks {
        let r = row(&inner, task.id).await;
        assert_eq!(
            r.state,
            TaskState::Completed,
            "a task committed here before the shutdown must be drained: {r:?}"
        );
    }
    assert_eq!(
        probe.runs("late0") + probe.runs("late1") + probe.runs("late2"),
        3
    );
}
