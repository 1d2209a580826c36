//! Runtime cases outside the happy paths: panics anywhere in an attempt, a task cancelling
//! its own token, a runtime re-claiming its own task, outcome writes that hang at shutdown.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_core::store::{NewTask, Store};
use durable_core::{
    Backoff, Registry, Runtime, Task, TaskContext, TaskError, TaskOptions, TaskState,
};
use serde::{Deserialize, Deserializer, Serialize};

use super::faulty::{Faulty, Sticky};
use super::tasks::{Probe, Work};
use super::Writes;
use super::{eventually, row, wait_state, TestDb};

const WAIT: Duration = Duration::from_secs(10);

fn two_attempts() -> TaskOptions {
    TaskOptions::default()
        .max_attempts(2)
        .backoff(Backoff::constant(Duration::from_millis(20)).jitter(0.0))
}

/// Counts attempts per task type, across runs.
#[derive(Debug, Clone, Default)]
pub struct Attempts(Arc<AtomicU32>);

/// Panics in the synchronous part of `run` (before its future exists) on its first attempt.
#[derive(Debug, Serialize, Deserialize)]
pub struct SyncPanic;

impl Task for SyncPanic {
    const NAME: &'static str = "sync_panic";
    type State = Attempts;
    #[allow(clippy::manual_async_fn)]
    fn run(self, cx: TaskContext<Attempts>) -> impl Future<Output = Result<(), TaskError>> + Send {
        assert!(cx.attempt() > 1, "boom before the first await");
        async { Ok(()) }
    }
    fn options() -> TaskOptions {
        two_attempts()
    }
}

/// Its payload's `Deserialize` panics: every attempt fails.
#[derive(Debug, Serialize)]
pub struct DecodePanic;

impl<'de> Deserialize<'de> for DecodePanic {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        panic!("boom in Deserialize")
    }
}

impl Task for DecodePanic {
    const NAME: &'static str = "decode_panic";
    type State = Attempts;
    async fn run(self, _cx: TaskContext<Attempts>) -> Result<(), TaskError> {
        Ok(())
    }
    fn options() -> TaskOptions {
        two_attempts()
    }
}

/// An error whose `Display` panics.
#[derive(Debug)]
struct Unprintable;

impl std::fmt::Display for Unprintable {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("boom in Display")
    }
}

impl std::error::Error for Unprintable {}

/// Returns an error that panics when displayed on its first attempt, then succeeds.
#[derive(Debug, Serialize, Deserialize)]
pub struct DisplayPanic;

impl Task for DisplayPanic {
    const NAME: &'static str = "display_panic";
    type State = Attempts;
    async fn run(self, cx: TaskContext<Attempts>) -> Result<(), TaskError> {
        cx.state().0.fetch_add(1, Ordering::SeqCst);
        if cx.attempt() == 1 {
            return Err(TaskError::retryable(Unprintable));
        }
        Ok(())
    }
    fn options() -> TaskOptions {
        two_attempts()
    }
}

/// Fails once with a backoff whose delay does not fit a `Duration`.
#[derive(Debug, Serialize, Deserialize)]
pub struct HugeBackoff;

impl Task for HugeBackoff {
    const NAME: &'static str = "huge_backoff";
    type State = Attempts;
    async fn run(self, _cx: TaskContext<Attempts>) -> Result<(), TaskError> {
        Err(TaskError::retryable(
            "fails once, retried in a very long time",
        ))
    }
    fn options() -> TaskOptions {
        TaskOptions::default()
            .max_attempts(3)
            .backoff(Backoff::constant(Duration::MAX))
    }
}

/// Cancels its own token, then fails, on its first attempt; succeeds on the second.
#[derive(Debug, Serialize, Deserialize)]
pub struct CancelsItself;

impl Task for CancelsItself {
    const NAME: &'static str = "cancels_itself";
    type State = Attempts;
    async fn run(self, cx: TaskContext<Attempts>) -> Result<(), TaskError> {
        cx.state().0.fetch_add(1, Ordering::SeqCst);
        if cx.attempt() == 1 {
            // A helper the task handed its token to gives up and cancels it.
            cx.cancellation_token().cancel();
            return Err(TaskError::retryable("helper gave up"));
        }
        Ok(())
    }
    fn options() -> TaskOptions {
        two_attempts()
    }
}

fn panicky_registry(attempts: &Attempts) -> Registry {
    Registry::new()
        .register::<SyncPanic>(attempts.clone())
        .register::<DecodePanic>(attempts.clone())
        .register::<DisplayPanic>(attempts.clone())
        .register::<HugeBackoff>(attempts.clone())
        .register::<CancelsItself>(attempts.clone())
}

/// A panic anywhere in an attempt — the synchronous part of `run`, the payload's
/// `Deserialize`, the error's `Display` — is a failed attempt: retried or failed as its
/// attempts say, its slot freed, nothing left `processing`.
pub async fn panics_anywhere_in_an_attempt_are_failed_attempts(db: &impl TestDb) {
    let store = db.store();
    let attempts = Attempts::default();
    let rt = Runtime::builder(Arc::clone(&store), panicky_registry(&attempts))
        .poll_interval(Duration::from_millis(50))
        .lease(Duration::from_secs(5))
        .start();
    let client = rt.client();
    let sync = client.enqueue(SyncPanic).await.expect("enqueue");
    let decode = client.enqueue(DecodePanic).await.expect("enqueue");
    let display = client.enqueue(DisplayPanic).await.expect("enqueue");
    let huge = client.enqueue(HugeBackoff).await.expect("enqueue");
    let r = wait_state(&store, sync, TaskState::Completed, WAIT).await;
    assert_eq!(r.attempts, 2);
    let r = wait_state(&store, decode, TaskState::Failed, WAIT).await;
    assert_eq!(r.attempts, 2);
    assert!(
        r.last_error.as_deref().is_some_and(|e| e.contains("panic")),
        "{r:?}"
    );
    let r = wait_state(&store, display, TaskState::Completed, WAIT).await;
    assert_eq!(r.attempts, 2);
    let r = wait_state(&store, huge, TaskState::Pending, WAIT).await;
    assert_eq!(r.attempts, 1);
    assert!(
        r.run_at > chrono::Utc::now() + chrono::Duration::days(365),
        "retried far in the future: {r:?}"
    );
    eventually("every slot to be free", WAIT, || async {
        (rt.running() == 0).then_some(())
    })
    .await;
    let report = rt.shutdown(Duration::from_secs(2)).await;
    assert!(report.drained, "{report:?}");
    assert_eq!(report.requeued, 0);
}

/// A task that cancels the token its context handed out, then fails, is retried like any
/// failed attempt: it is not taken for one stopped by shutdown.
pub async fn task_cancelling_its_own_token_is_retried(db: &impl TestDb) {
    let store = db.store();
    let attempts = Attempts::default();
    let rt = Runtime::builder(Arc::clone(&store), panicky_registry(&attempts))
        .poll_interval(Duration::from_millis(50))
        .lease(Duration::from_secs(5))
        .start();
    let id = rt.client().enqueue(CancelsItself).await.expect("enqueue");
    let r = wait_state(&store, id, TaskState::Completed, WAIT).await;
    assert_eq!(r.attempts, 2);
    assert_eq!(attempts.0.load(Ordering::SeqCst), 2);
    rt.shutdown(Duration::from_secs(2)).await;
}

/// When attempt 1 loses its lease and the same runtime claims attempt 2 while attempt 1
/// still runs, both attempts are accounted for: attempt 1 is told it lost its lease (and
/// stops), and every slot comes back.
pub async fn reclaim_by_the_same_runtime_keeps_every_slot(db: &impl TestDb) {
    let faulty = Faulty::new(db.store());
    let store: Arc<dyn Store> = Arc::clone(&faulty) as Arc<dyn Store>;
    let probe = Probe::default();
    let registry = super::tasks::registry(&probe).register::<Sticky>(probe.clone());
    let lease = Duration::from_millis(400);
    let rt = Runtime::builder(Arc::clone(&store), registry)
        .concurrency(3)
        .lease(lease)
        .cancel_grace(Duration::from_millis(100))
        .poll_interval(Duration::from_millis(50))
        .start();
    faulty.skip_heartbeats.store(true, Ordering::SeqCst);
    let id = rt.client().enqueue(Sticky).await.expect("enqueue");
    // Attempt 1's lease expires (no heartbeat reaches the store); the runtime's own sweep
    // hands the row back and its claim loop takes attempt 2 while attempt 1 still runs.
    eventually("attempt 2 to be claimed", WAIT, || async {
        (row(&store, id).await.attempts >= 2).then_some(())
    })
    .await;
    faulty.skip_heartbeats.store(false, Ordering::SeqCst);
    wait_state(&store, id, TaskState::Completed, WAIT).await;
    eventually(
        "attempt 1 to be stopped and every slot free",
        WAIT,
        || async { (rt.running() == 0).then_some(()) },
    )
    .await;
    // Every one of the 3 slots is usable again.
    let client = rt.client();
    for i in 0..3 {
        client
            .enqueue(Work::sleeping(format!("slot-{i}"), 1_500))
            .await
            .expect("enqueue");
    }
    eventually("3 tasks running at once", WAIT, || async {
        (probe.peak() >= 3).then_some(())
    })
    .await;
    rt.shutdown(Duration::ZERO).await;
}

/// Shutdown keeps its grace even when every write of an attempt's outcome hangs, the
/// hand-back's included (it writes that outcome rather than hand the finished attempt back
/// uncounted): the report counts it as not handed back and the row stays `processing` for
/// the lease sweep.
pub async fn shutdown_keeps_its_grace_when_outcome_writes_hang(db: &impl TestDb) {
    let faulty = Faulty::new(db.store());
    let store: Arc<dyn Store> = Arc::clone(&faulty) as Arc<dyn Store>;
    let probe = Probe::default();
    let rt = Runtime::builder(Arc::clone(&store), super::tasks::registry(&probe))
        .lease(Duration::from_secs(30))
        .poll_interval(Duration::from_millis(50))
        .cancel_grace(Duration::from_millis(200))
        .start();
    faulty.hang_outcomes.store(true, Ordering::SeqCst);
    let id = rt
        .client()
        .enqueue(Work::sleeping("quick", 10))
        .await
        .expect("enqueue");
    eventually("the attempt to finish executing", WAIT, || async {
        (probe.runs("quick") == 1 && probe.live() == 0).then_some(())
    })
    .await;
    let grace = Duration::from_secs(1);
    let started = Instant::now();
    let report = rt.shutdown(grace).await;
    let took = started.elapsed();
    assert!(
        took < grace + Duration::from_millis(300),
        "shutdown took {took:?}"
    );
    assert_eq!(
        (
            report.finished,
            report.requeued,
            report.not_handed_back,
            report.drained
        ),
        (0, 0, 1, false),
        "{report:?}"
    );
    let r = row(&store, id).await;
    assert_eq!(
        (r.state, r.attempts),
        (TaskState::Processing, 1),
        "left for the lease sweep: {r:?}"
    );
}

/// A locally dispatched insert that commits after a forced shutdown handed the running
/// attempts back starts already cancelled: it hands itself back at once instead of staying
/// `processing` until its lease expires.
pub async fn insert_committed_after_a_forced_shutdown_is_handed_back(db: &impl TestDb) {
    let faulty = Faulty::new(db.store());
    let store: Arc<dyn Store> = Arc::clone(&faulty) as Arc<dyn Store>;
    let probe = Probe::default();
    let rt = Runtime::builder(Arc::clone(&store), super::tasks::registry(&probe))
        .lease(Duration::from_secs(60))
        .poll_interval(Duration::from_millis(50))
        .start();
    faulty.hold_inserts.store(true, Ordering::SeqCst);
    let client = rt.client();
    let enqueue = tokio::spawn(async move { client.enqueue(Work::sleeping("late", 60_000)).await });
    eventually("the insert to be held", WAIT, || async {
        faulty.held.load(Ordering::SeqCst).then_some(())
    })
    .await;
    rt.force_shutdown();
    rt.shutdown(Duration::from_secs(5)).await;
    faulty.hold_inserts.store(false, Ordering::SeqCst);
    faulty.release.notify_waiters();
    let id = enqueue.await.expect("join").expect("enqueue");
    let r = wait_state(&store, id, TaskState::Pending, Duration::from_secs(3)).await;
    assert_eq!((r.attempts, r.lease_owner), (0, None), "{r:?}");
}

/// A last attempt is marked started before the task's code runs: when its process dies
/// mid-run the task is `failed` (its attempts are used up), while a last attempt whose
/// process died before starting it is handed back uncounted and runs.
pub async fn a_last_attempt_is_marked_started_before_it_runs(db: &impl TestDb) {
    let lease = Duration::from_millis(600);
    // Dies mid-run: the doomed "process" has its own connections and Tokio runtime.
    let doomed_store = db.another().await;
    let crashed = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio");
        let id = rt.block_on(async {
            let probe = Probe::default();
            let runtime = Runtime::builder(doomed_store, super::tasks::registry(&probe))
                .lease(lease)
                .start();
            let id = runtime
                .client()
                .enqueue_with(
                    Work::sleeping("mid-run", 60_000),
                    durable_core::EnqueueOptions::new().max_attempts(1),
                )
                .await
                .expect("enqueue");
            eventually("the last attempt to run", WAIT, || async {
                (probe.live() == 1).then_some(())
            })
            .await;
            std::mem::forget(runtime);
            id
        });
        rt.shutdown_background();
        id
    })
    .join()
    .expect("doomed process");
    // Dies before starting: a row inserted already claimed by a process that is gone.
    let store = db.store();
    let mut never = NewTask::new(
        "work",
        serde_json::json!({"key": "never-started"}).to_string(),
    )
    .with_max_attempts(1)
    .claimed_by(durable_core::WorkerId::new(), lease);
    never.queue = "default".into();
    let unstarted = never.id;
    store.insert(&[never]).await.expect("insert");
    let probe = Probe::default();
    let rt = Runtime::builder(Arc::clone(&store), super::tasks::registry(&probe))
        .lease(lease)
        .poll_interval(Duration::from_millis(50))
        .start();
    let r = wait_state(&store, crashed, TaskState::Failed, WAIT).await;
    assert_eq!(r.attempts, 1, "{r:?}");
    assert!(
        r.last_error
            .as_deref()
            .is_some_and(|e| e.contains("no attempts left")),
        "{r:?}"
    );
    let r = wait_state(&store, unstarted, TaskState::Completed, WAIT).await;
    assert_eq!(
        r.attempts, 1,
        "the attempt that never started was not counted: {r:?}"
    );
    assert_eq!(
        probe.runs("mid-run"),
        0,
        "a used-up task does not run again"
    );
    rt.shutdown(Duration::ZERO).await;
}

/// Counts how often its synchronous part (before the future exists) runs.
#[derive(Debug, Serialize, Deserialize)]
pub struct Counted;

impl Task for Counted {
    const NAME: &'static str = "counted";
    type State = Attempts;
    #[allow(clippy::manual_async_fn)]
    fn run(self, cx: TaskContext<Attempts>) -> impl Future<Output = Result<(), TaskError>> + Send {
        cx.state().0.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    }
}

/// A claim in flight when shutdown gave up waiting for it commits after the hand-back: its
/// tasks are handed back unstarted — none of their code runs under the stopping runtime,
/// and no row waits out its lease.
pub async fn claim_landing_after_the_hand_back_starts_nothing(db: &impl TestDb) {
    let faulty = Faulty::new(db.store());
    let store: Arc<dyn Store> = Arc::clone(&faulty) as Arc<dyn Store>;
    let started = Attempts::default();
    let registry = Registry::new().register::<Counted>(started.clone());
    let rt = Runtime::builder(Arc::clone(&store), registry)
        .lease(Duration::from_secs(60))
        .poll_interval(Duration::from_millis(20))
        .start();
    // The runtime's next claim is held before its statement runs; the task is stored by
    // another process meanwhile, so that claim takes it once released. The task is stored
    // only once the claim is held: a claim already past the hold when the flag was set
    // would take it and run it before the shutdown.
    faulty.hold_claims.store(true, Ordering::SeqCst);
    eventually("a claim to be held", WAIT, || async {
        faulty.held.load(Ordering::SeqCst).then_some(())
    })
    .await;
    let id = durable_core::Client::builder(db.store())
        .max_payload_bytes(1 << 20)
        .build()
        .enqueue(Counted)
        .await
        .expect("enqueue");
    rt.shutdown(Duration::from_millis(300)).await;
    faulty.hold_claims.store(false, Ordering::SeqCst);
    faulty.release.notify_waiters();
    eventually(
        "the held claim to land and be handed back",
        WAIT,
        || async {
            let r = row(&store, id).await;
            let back = r.state == TaskState::Pending && r.lease_owner.is_none();
            (rt.stats().claimed == 1 && back).then_some(r)
        },
    )
    .await;
    let r = row(&store, id).await;
    // Handed back as it was: it never started, so neither an attempt nor a requeue counts.
    assert_eq!(
        (r.attempts, r.requeues, r.lease_owner),
        (0, 0, None),
        "{r:?}"
    );
    eventually("nothing left running", WAIT, || async {
        (rt.running() == 0).then_some(())
    })
    .await;
    assert_eq!(
        started.0.load(Ordering::SeqCst),
        0,
        "no task code ran after the hand-back"
    );
}
