//! Cancellation and snoozing: cancelling a pending task, a running one (in this process, from
//! another instance, across an expired lease), and tasks that snooze without using up an
//! attempt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use durable_core::store::{
    CancelOutcome, ClaimRequest, NewTask, Outcome, RescueReport, Settle, Store, WriteBatch,
};
use durable_core::{
    CancelReason, Client, EnqueueOptions, Registry, Runtime, Task, TaskContext, TaskError, TaskId,
    TaskOptions, TaskState, WorkerId,
};
use serde::{Deserialize, Serialize};

use super::{eventually, row, TestDb, Writes};

const DEADLINE: Duration = Duration::from_secs(10);

/// What the tasks of these cases saw: runs per key (with when and at which attempt), and the
/// reason each one was stopped for.
#[derive(Debug, Default, Clone)]
struct Seen {
    runs: Runs,
    reasons: Arc<Mutex<HashMap<String, Option<CancelReason>>>>,
}

impl Seen {
    fn run(&self, key: &str, attempt: u32) -> usize {
        let mut runs = self.runs.lock().expect("seen");
        let list = runs.entry(key.to_owned()).or_default();
        list.push((Instant::now(), attempt));
        list.len()
    }
    fn runs(&self, key: &str) -> Vec<(Instant, u32)> {
        self.runs
            .lock()
            .expect("seen")
            .get(key)
            .cloned()
            .unwrap_or_default()
    }
    /// The reason `key` saw once its token fired (`None`: none, or not fired yet).
    fn reason(&self, key: &str) -> Option<CancelReason> {
        self.reasons
            .lock()
            .expect("seen")
            .get(key)
            .copied()
            .flatten()
    }
}

/// Runs per key: when each started, and at which attempt.
type Runs = Arc<Mutex<HashMap<String, Vec<(Instant, u32)>>>>;

/// How a [`Cancellable`] ends once its token fires.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum End {
    /// Returns an error (a task giving up).
    Error,
    /// Returns `Ok` (it finished its work anyway).
    Ok,
    /// Ignores the token: the runtime drops it after its cancel grace.
    Ignore,
}

/// Runs until its token fires, records why, then ends as `end` says.
#[derive(Debug, Serialize, Deserialize)]
struct Cancellable {
    key: String,
    end: End,
}

impl Task for Cancellable {
    const NAME: &'static str = "conformance_cancellable";
    type State = Seen;

    async fn run(self, cx: TaskContext<Seen>) -> Result<(), TaskError> {
        cx.state().run(&self.key, cx.attempt());
        if matches!(self.end, End::Ignore) {
            std::future::pending::<()>().await;
        }
        cx.cancelled().await;
        cx.state()
            .reasons
            .lock()
            .expect("seen")
            .insert(self.key.clone(), cx.cancel_reason());
        match self.end {
            End::Ok => Ok(()),
            _ => Err(TaskError::retryable("gave up")),
        }
    }

    fn options() -> TaskOptions {
        TaskOptions::default().max_attempts(3).no_timeout()
    }
}

/// Snoozes `times` times for `delay_ms`, then completes (`times: u32::MAX`: forever).
#[derive(Debug, Serialize, Deserialize)]
struct Snoozes {
    key: String,
    times: u32,
    delay_ms: u64,
}

impl Task for Snoozes {
    const NAME: &'static str = "conformance_snoozes";
    type State = Seen;

    async fn run(self, cx: TaskContext<Seen>) -> Result<(), TaskError> {
        let n = cx.state().run(&self.key, cx.attempt());
        if n <= self.times as usize {
            return Err(TaskError::snooze(Duration::from_millis(self.delay_ms)));
        }
        Ok(())
    }

    fn options() -> TaskOptions {
        TaskOptions::default().max_attempts(1)
    }
}

fn registry(seen: &Seen) -> Registry {
    Registry::new()
        .register::<Cancellable>(seen.clone())
        .register::<Snoozes>(seen.clone())
}

fn runtime(store: Arc<dyn Store>, seen: &Seen) -> Runtime {
    Runtime::builder(store, registry(seen))
        .poll_interval(Duration::from_millis(50))
        .cancel_grace(Duration::from_millis(200))
        .start()
}

async fn wait(client: &Client, id: TaskId) -> durable_core::store::TaskRecord {
    tokio::time::timeout(DEADLINE, client.wait(id))
        .await
        .expect("final state within the deadline")
        .expect("wait")
}

async fn started(seen: &Seen, key: &str) {
    eventually(&format!("{key} to start"), DEADLINE, || async {
        (!seen.runs(key).is_empty()).then_some(())
    })
    .await;
}

/// A pending task cancelled before any runtime looks at it never runs, and `wait` reports it.
pub async fn cancel_pending_never_runs(db: &impl TestDb) {
    let store = db.store();
    let seen = Seen::default();
    let enqueuer = Client::new(Arc::clone(&store));
    let id = enqueuer
        .enqueue(Cancellable {
            key: "never".into(),
            end: End::Ok,
        })
        .await
        .expect("enqueue");
    assert_eq!(
        enqueuer.cancel(id).await.expect("cancel"),
        CancelOutcome::Cancelled
    );
    let rt = runtime(Arc::clone(&store), &seen);
    // A task enqueued after it runs to its end: the cancelled one, due earlier, would have
    // been claimed first.
    let later = rt
        .client()
        .enqueue(Snoozes {
            key: "after".into(),
            times: 0,
            delay_ms: 0,
        })
        .await
        .expect("enqueue");
    assert_eq!(wait(&rt.client(), later).await.state, TaskState::Completed);
    let done = wait(&rt.client(), id).await;
    assert_eq!(done.state, TaskState::Cancelled);
    assert!(seen.runs("never").is_empty(), "a cancelled task never runs");
    assert_eq!(
        rt.client().cancel(id).await.expect("cancel again"),
        CancelOutcome::AlreadyFinished
    );
    assert_eq!(
        rt.client()
            .cancel(TaskId::new())
            .await
            .expect("cancel unknown"),
        CancelOutcome::NotFound
    );
    rt.shutdown(Duration::from_secs(2)).await;
}

/// Cancelling a running task through the runtime's own client fires its token at once with
/// `CancelReason::Requested`: an attempt that then fails, or is dropped for ignoring the
/// token, ends `cancelled` (not retried); one that returns `Ok` ends `completed`.
pub async fn cancel_running_fires_the_token_and_ends_cancelled(db: &impl TestDb) {
    let store = db.store();
    let seen = Seen::default();
    let rt = Runtime::builder(Arc::clone(&store), registry(&seen))
        .poll_interval(Duration::from_millis(50))
        .cancel_grace(Duration::from_millis(200))
        // Nothing but the client's own link may tell the runtime in time.
        .lease(Duration::from_secs(60))
        .heartbeat_interval(Duration::from_secs(20))
        .start();
    let client = rt.client();
    for (key, end, state) in [
        ("gives-up", End::Error, TaskState::Cancelled),
        ("ignores", End::Ignore, TaskState::Cancelled),
        ("finishes", End::Ok, TaskState::Completed),
    ] {
        let id = client
            .enqueue(Cancellable {
                key: key.into(),
                end,
            })
            .await
            .expect("enqueue");
        started(&seen, key).await;
        let asked = Instant::now();
        assert_eq!(
            client.cancel(id).await.expect("cancel"),
            CancelOutcome::Requested,
            "{key}"
        );
        let done = wait(&client, id).await;
        assert_eq!(done.state, state, "{key}: {:?}", done.last_error);
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "{key}: ended {:?} after the request",
            asked.elapsed()
        );
        assert_eq!(seen.runs(key).len(), 1, "{key}: not run again");
        assert_eq!(done.attempts, 1, "{key}");
        if state == TaskState::Cancelled {
            assert!(
                done.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("cancelled")),
                "{key}: {:?}",
                done.last_error
            );
        }
        if !matches!(end, End::Ignore) {
            assert_eq!(seen.reason(key), Some(CancelReason::Requested), "{key}");
        }
    }
    rt.shutdown(Duration::from_secs(2)).await;
}

/// A second runtime on the same database (another process) cancels a task the first runs:
/// on PostgreSQL its `NOTIFY` stops the attempt well within a heartbeat interval; on SQLite
/// the first runtime finds the request at its next heartbeat.
pub async fn another_instance_cancels_a_running_task(db: &impl TestDb) {
    let store = db.store();
    let postgres = store.backend() == "postgres";
    // PostgreSQL must not need the heartbeat: make it far longer than the bound asserted.
    let (lease, heartbeat, bound) = if postgres {
        (
            Duration::from_secs(60),
            Duration::from_secs(20),
            Duration::from_secs(3),
        )
    } else {
        (
            Duration::from_secs(6),
            Duration::from_millis(300),
            Duration::from_secs(3),
        )
    };
    let seen = Seen::default();
    let rt = Runtime::builder(Arc::clone(&store), registry(&seen))
        .poll_interval(Duration::from_millis(50))
        .cancel_grace(Duration::from_millis(200))
        .lease(lease)
        .heartbeat_interval(heartbeat)
        .start();
    let other = Runtime::builder(db.another().await, Registry::new())
        .poll_interval(Duration::from_millis(50))
        .start();
    let id = rt
        .client()
        .enqueue(Cancellable {
            key: "elsewhere".into(),
            end: End::Error,
        })
        .await
        .expect("enqueue");
    started(&seen, "elsewhere").await;
    let asked = Instant::now();
    assert_eq!(
        other.client().cancel(id).await.expect("cancel"),
        CancelOutcome::Requested
    );
    let done = wait(&other.client(), id).await;
    let took = asked.elapsed();
    assert_eq!(done.state, TaskState::Cancelled, "{:?}", done.last_error);
    assert!(took < bound, "cancelled after {took:?} (lease {lease:?})");
    assert_eq!(seen.reason("elsewhere"), Some(CancelReason::Requested));
    other.shutdown(Duration::from_secs(2)).await;
    rt.shutdown(Duration::from_secs(2)).await;
}

/// A cancel-requested row whose worker died (its lease expires) is made `cancelled` by the
/// lease sweep, not handed back to `pending`.
pub async fn rescue_of_a_cancel_requested_row_cancels_it(db: &impl TestDb) {
    let store = db.store();
    let doomed = NewTask::new("work", "{}");
    let healthy = NewTask::new("work", "{}");
    store
        .insert(&[doomed.clone(), healthy.clone()])
        .await
        .expect("insert");
    let short = ClaimRequest::new(WorkerId::new(), Duration::from_millis(50), 2, ["work"]);
    let claimed = store.claim(&short).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    assert_eq!(
        store.cancel(doomed.id).await.expect("cancel"),
        CancelOutcome::Requested
    );
    let fences: Vec<_> = claimed
        .iter()
        .map(durable_core::store::ClaimedTask::fence)
        .collect();
    assert_eq!(
        store.cancel_requested(&fences).await.expect("look"),
        vec![doomed.id],
        "the heartbeat's look finds the request"
    );
    // Both leases expire; sweeps (a sweep may come between the two expiries) put the
    // healthy row back and cancel the requested one.
    let until = Instant::now() + DEADLINE;
    let mut swept = RescueReport::default();
    while swept.requeued + swept.failed + swept.cancelled < 2 {
        assert!(Instant::now() < until, "leases not swept: {swept:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
        let r = store.rescue_expired().await.expect("rescue");
        swept.requeued += r.requeued;
        swept.failed += r.failed;
        swept.cancelled += r.cancelled;
    }
    assert_eq!((swept.requeued, swept.failed, swept.cancelled), (1, 0, 1));
    let r = row(&store, doomed.id).await;
    assert_eq!(r.state, TaskState::Cancelled);
    assert!(r.finished_at.is_some());
    assert_eq!(row(&store, healthy.id).await.state, TaskState::Pending);
}

/// Whatever an attempt of a cancel-requested task writes — a retry, a failure, a shutdown's
/// hand-back, a snooze — the row ends `cancelled`; a completion stays `completed`.
pub async fn outcomes_of_a_cancel_requested_task(db: &impl TestDb) {
    let store = db.store();
    let rows: Vec<NewTask> = (0..5).map(|_| NewTask::new("work", "{}")).collect();
    store.insert(&rows).await.expect("insert");
    let request = ClaimRequest::new(WorkerId::new(), Duration::from_secs(30), 5, ["work"]);
    let claimed = store.claim(&request).await.expect("claim");
    assert_eq!(claimed.len(), 5);
    for task in &rows {
        assert_eq!(
            store.cancel(task.id).await.expect("cancel"),
            CancelOutcome::Requested
        );
    }
    let fence = |id: TaskId| {
        claimed
            .iter()
            .find(|c| c.id == id)
            .map(durable_core::store::ClaimedTask::fence)
            .expect("claimed")
    };
    let settle = [
        Settle::new(
            fence(rows[0].id),
            Outcome::Retry {
                delay: Duration::ZERO,
                error: "boom".into(),
            },
        ),
        Settle::new(
            fence(rows[1].id),
            Outcome::Failed {
                error: "boom".into(),
            },
        ),
        Settle::new(fence(rows[2].id), Outcome::Requeued),
        Settle::new(
            fence(rows[3].id),
            Outcome::Snoozed {
                delay: Duration::ZERO,
            },
        ),
    ];
    let complete = [fence(rows[4].id)];
    let outcome = store
        .write(WriteBatch::new().settle(&settle).complete(&complete))
        .await;
    assert_eq!(outcome.settled.expect("settled").len(), 4);
    assert_eq!(outcome.completed.expect("completed"), vec![rows[4].id]);
    for task in &rows[..4] {
        let r = row(&store, task.id).await;
        assert_eq!(r.state, TaskState::Cancelled, "{:?}", r.last_error);
        assert!(r.finished_at.is_some());
    }
    assert_eq!(row(&store, rows[4].id).await.state, TaskState::Completed);
    let again = ClaimRequest::new(WorkerId::new(), Duration::from_secs(30), 5, ["work"]);
    assert!(
        store.claim(&again).await.expect("claim").is_empty(),
        "nothing went back to pending"
    );
}

/// A snooze puts the task back to `pending` for the delay without using up its attempt:
/// with one attempt allowed, it snoozes three times and then completes, each run at attempt
/// 1 and no earlier than the delay after the one before.
pub async fn snooze_keeps_the_attempt_and_runs_again_after_the_delay(db: &impl TestDb) {
    let store = db.store();
    let seen = Seen::default();
    let rt = runtime(Arc::clone(&store), &seen);
    let client = rt.client();
    let delay = Duration::from_millis(200);
    let id = client
        .enqueue(Snoozes {
            key: "snoozer".into(),
            times: 3,
            delay_ms: delay.as_millis() as u64,
        })
        .await
        .expect("enqueue");
    let done = wait(&client, id).await;
    assert_eq!(done.state, TaskState::Completed, "{:?}", done.last_error);
    assert_eq!(done.attempts, 1, "snoozes used no attempt");
    let runs = seen.runs("snoozer");
    assert_eq!(runs.len(), 4);
    assert!(runs.iter().all(|(_, attempt)| *attempt == 1), "{runs:?}");
    for pair in runs.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        // The store's clock and this one may differ by a millisecond's rounding.
        assert!(
            gap + Duration::from_millis(5) >= delay,
            "ran again after {gap:?}"
        );
    }
    rt.shutdown(Duration::from_secs(2)).await;
}

/// A task with one attempt that snoozes forever keeps running again; cancelling it between
/// two runs cancels it at once.
pub async fn snoozing_forever_with_one_attempt_still_runs_again(db: &impl TestDb) {
    let store = db.store();
    let seen = Seen::default();
    let rt = runtime(Arc::clone(&store), &seen);
    let client = rt.client();
    let id = client
        .enqueue_with(
            Snoozes {
                key: "forever".into(),
                times: u32::MAX,
                delay_ms: 20,
            },
            EnqueueOptions::new(),
        )
        .await
        .expect("enqueue");
    eventually("five runs", DEADLINE, || async {
        (seen.runs("forever").len() >= 5).then_some(())
    })
    .await;
    let r = row(&store, id).await;
    assert!(
        matches!(r.state, TaskState::Pending | TaskState::Processing),
        "{:?}",
        r.state
    );
    assert!(r.attempts <= 1, "attempts {}", r.attempts);
    assert!(client.cancel(id).await.expect("cancel").took_effect());
    assert_eq!(wait(&client, id).await.state, TaskState::Cancelled);
    rt.shutdown(Duration::from_secs(2)).await;
}
