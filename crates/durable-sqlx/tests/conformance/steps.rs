//! Steps and transactional completion: `TaskContext::step` runs each step once per task,
//! checkpoints are fenced and pruned with their task, and `complete_in` / `step_in` commit a
//! task's own rows with its completion — never those of an attempt that lost its lease.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable_core::store::{
    async_trait, AdminStore, CommitMode, Fence, NewTask, RescueReport, StepRecord, StepStore,
    Store, Wakeups, WorkerStore, WriteBatch, WriteOutcome,
};
use durable_core::{
    Backoff, Error, Registry, Runtime, Task, TaskContext, TaskError, TaskId, TaskOptions,
    TaskState, WorkerId,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{eventually, row, wait_state, TestDb, Writes};

const WAIT: Duration = Duration::from_secs(15);

/// A boxed future, for the backends' application-database hooks.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The application's own table on the store's database, reached through a connection of
/// its own (SQLite: a second connection to the same file; PostgreSQL: another pool).
pub trait AppDb: Send + Sync + 'static {
    /// In one transaction: inserts `(task id, tag)` into the application's table, then
    /// `complete_in`; commits if `commit`, else drops the transaction.
    fn complete_with_row<'a>(
        &'a self,
        cx: &'a TaskContext<TxState>,
        tag: &'a str,
        commit: bool,
    ) -> BoxFuture<'a, Result<(), durable_sqlx::Error>>;
    /// In one transaction: inserts `(task id, tag)`, then `step_in(step, tag)`; commits.
    fn step_with_row<'a>(
        &'a self,
        cx: &'a TaskContext<TxState>,
        step: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<(), durable_sqlx::Error>>;
    /// The tags of task `id`'s rows in the application's table, sorted.
    fn rows(&self, id: TaskId) -> BoxFuture<'_, Vec<String>>;
}

/// A test database whose application tables can be written in transactions.
pub trait TxDb: TestDb {
    /// The application's database (creates its table).
    fn app(&self) -> BoxFuture<'_, Arc<dyn AppDb>>;
}

// ---------------------------------------------------------------------------------------------
// Steps run once per task.

/// Counts the runs of each step.
#[derive(Debug, Clone, Default)]
pub struct StepProbe {
    runs: Arc<Mutex<HashMap<String, u32>>>,
    result: Arc<Mutex<Option<u32>>>,
}

impl StepProbe {
    fn ran(&self, step: &str) {
        *self
            .runs
            .lock()
            .expect("probe")
            .entry(step.to_owned())
            .or_default() += 1;
    }
    fn runs(&self, step: &str) -> u32 {
        self.runs
            .lock()
            .expect("probe")
            .get(step)
            .copied()
            .unwrap_or(0)
    }
}

/// Three steps; the first attempt fails after step two ran (so step two is not stored).
#[derive(Debug, Serialize, Deserialize)]
pub struct ThreeSteps;

impl Task for ThreeSteps {
    const NAME: &'static str = "three_steps";
    type State = StepProbe;

    async fn run(self, cx: TaskContext<StepProbe>) -> Result<(), TaskError> {
        let probe = cx.state();
        let one: u32 = cx
            .step("one", || async {
                probe.ran("one");
                Ok::<_, TaskError>(1)
            })
            .await?;
        let two: u32 = cx
            .step("two", || async {
                probe.ran("two");
                if cx.attempt() == 1 {
                    return Err(TaskError::retryable("step two fails once"));
                }
                Ok(20)
            })
            .await?;
        let three: u32 = cx
            .step("three", || async {
                probe.ran("three");
                Ok::<_, TaskError>(one + two + 300)
            })
            .await?;
        *probe.result.lock().expect("probe") = Some(three);
        Ok(())
    }

    fn options() -> TaskOptions {
        TaskOptions::default()
            .max_attempts(3)
            .backoff(Backoff::constant(Duration::from_millis(10)))
    }
}

/// A retried task gets its finished steps' results without running them; a failed step is
/// not stored and runs again.
pub async fn steps_run_once_per_task(db: &impl TestDb) {
    let store = db.store();
    let probe = StepProbe::default();
    let registry = Registry::new().register::<ThreeSteps>(probe.clone());
    let rt = Runtime::builder(Arc::clone(&store), registry)
        .poll_interval(Duration::from_millis(50))
        .start();
    let id = rt.client().enqueue(ThreeSteps).await.expect("enqueue");
    let r = wait_state(&store, id, TaskState::Completed, WAIT).await;
    rt.shutdown(Duration::from_secs(5)).await;
    assert_eq!(r.attempts, 2);
    assert_eq!(
        (probe.runs("one"), probe.runs("two"), probe.runs("three")),
        (1, 2, 1)
    );
    // Step one's result came back from the store on the second attempt.
    assert_eq!(*probe.result.lock().expect("probe"), Some(321));
    let mut steps = store.steps(id).await.expect("steps");
    steps.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        steps,
        [
            StepRecord::new("one", "1", 1),
            StepRecord::new("three", "321", 2),
            StepRecord::new("two", "20", 2),
        ]
    );
}

/// Uses one step name twice.
#[derive(Debug, Serialize, Deserialize)]
pub struct SameStepTwice;

impl Task for SameStepTwice {
    const NAME: &'static str = "same_step_twice";
    type State = StepProbe;

    async fn run(self, cx: TaskContext<StepProbe>) -> Result<(), TaskError> {
        for _ in 0..2 {
            cx.step("send", || async {
                cx.state().ran("send");
                Ok::<_, TaskError>(())
            })
            .await?;
        }
        Ok(())
    }
}

/// A step name used twice in one run fails the task at once, saying why.
pub async fn duplicate_step_names_fail_the_task(db: &impl TestDb) {
    let store = db.store();
    let probe = StepProbe::default();
    let registry = Registry::new().register::<SameStepTwice>(probe.clone());
    let rt = Runtime::builder(Arc::clone(&store), registry)
        .poll_interval(Duration::from_millis(50))
        .start();
    let id = rt.client().enqueue(SameStepTwice).await.expect("enqueue");
    let r = wait_state(&store, id, TaskState::Failed, WAIT).await;
    rt.shutdown(Duration::from_secs(5)).await;
    assert_eq!(r.attempts, 1, "a duplicate step name is not retried");
    let error = r.last_error.unwrap_or_default();
    assert!(
        error.contains("step `send`") && error.contains("used twice"),
        "{error}"
    );
    assert_eq!(probe.runs("send"), 1);
}

/// A checkpoint is written only by the attempt that holds the task, once per name, and is
/// deleted with its task.
pub async fn step_checkpoints_are_fenced_and_pruned(db: &impl TestDb) {
    let store = db.store();
    let owner = WorkerId::new();
    let task = NewTask::new("stepped", "{}").claimed_by(owner, Duration::from_secs(30));
    let id = task.id;
    store.insert(&[task]).await.expect("insert");
    let held = Fence {
        id,
        owner,
        attempt: 1,
    };
    let stranger = Fence {
        owner: WorkerId::new(),
        ..held
    };
    let earlier = Fence { attempt: 2, ..held };
    for fence in [stranger, earlier] {
        assert!(!store.save_step(&fence, "a", "1").await.expect("save"));
    }
    assert!(store.steps(id).await.expect("steps").is_empty());
    assert!(store
        .save_step(&held, "a", "{\"n\":1}")
        .await
        .expect("save"));
    let again = store.save_step(&held, "a", "2").await;
    assert!(matches!(again, Err(Error::Rejected { .. })), "{again:?}");
    let steps = store.steps(id).await.expect("steps");
    assert_eq!(steps.len(), 1);
    assert_eq!((steps[0].name.as_str(), steps[0].attempt), ("a", 1));
    let output: serde_json::Value = serde_json::from_str(&steps[0].output).expect("JSON");
    assert_eq!(output, serde_json::json!({"n": 1}));

    // Finished: no more checkpoints; pruned: its steps go with it.
    assert_eq!(store.complete(&[held]).await.expect("complete"), [id]);
    assert!(!store.save_step(&held, "b", "1").await.expect("save"));
    eventually("the task to be pruned", WAIT, || async {
        let pruned = store.prune(Duration::ZERO, 10).await.expect("prune");
        (pruned == 1).then_some(())
    })
    .await;
    assert!(store.steps(id).await.expect("steps").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Transactional completion.

/// What the transactional task does, per attempt.
#[derive(Clone)]
pub struct TxState {
    app: Arc<dyn AppDb>,
    /// Attempt 1 waits until this turns `true` (ignoring cancellation: a stalled process).
    release: watch::Receiver<bool>,
    /// Attempt 1 started.
    stalled: Arc<AtomicBool>,
    /// What attempt 1's `complete_in` answered.
    zombie: Arc<Mutex<Option<Result<(), String>>>>,
}

/// How [`TxTask`] behaves.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum TxMode {
    /// Attempt 1 stalls until released, then writes its row and completes in a transaction.
    StallThenComplete,
    /// Attempt 1 writes its row and completes in a transaction it does not commit, then
    /// returns `Ok`.
    RollBackThenReturnOk,
    /// Step `order` writes its row with `step_in`; attempt 1 then fails.
    StepThenFail,
}

/// Writes the application's rows in its own transactions.
#[derive(Debug, Serialize, Deserialize)]
pub struct TxTask(TxMode);

impl Task for TxTask {
    const NAME: &'static str = "tx_task";
    type State = TxState;

    async fn run(self, cx: TaskContext<TxState>) -> Result<(), TaskError> {
        let state = cx.state();
        let first = cx.attempt() == 1;
        let tag = format!("attempt-{}", cx.attempt());
        match self.0 {
            TxMode::StallThenComplete if first => {
                state.stalled.store(true, Ordering::SeqCst);
                let mut release = state.release.clone();
                release.wait_for(|go| *go).await?;
                let answer = state.app.complete_with_row(&cx, &tag, true).await;
                *state.zombie.lock().expect("zombie") =
                    Some(answer.as_ref().copied().map_err(ToString::to_string));
                answer?;
            }
            TxMode::RollBackThenReturnOk if first => {
                state.app.complete_with_row(&cx, &tag, false).await?;
            }
            TxMode::StepThenFail => {
                let order: Option<String> = cx.finished_step("order").await?;
                if order.is_none() {
                    state.app.step_with_row(&cx, "order", "order-row").await?;
                }
                if first {
                    return Err(TaskError::retryable("failing after the step committed"));
                }
                state.app.complete_with_row(&cx, &tag, true).await?;
            }
            _ => state.app.complete_with_row(&cx, &tag, true).await?,
        }
        Ok(())
    }

    fn options() -> TaskOptions {
        TaskOptions::default()
            .max_attempts(5)
            .backoff(Backoff::constant(Duration::from_millis(10)))
    }
}

fn tx_state(app: Arc<dyn AppDb>) -> (TxState, watch::Sender<bool>) {
    let (go, release) = watch::channel(false);
    let state = TxState {
        app,
        release,
        stalled: Arc::default(),
        zombie: Arc::default(),
    };
    (state, go)
}

/// A store whose heartbeats renew nothing and report every attempt still held: its runtime
/// never notices that a lease expired, like a process stalled past its lease.
#[derive(Debug)]
struct NoRenewal {
    inner: Arc<dyn Store>,
}

#[async_trait]
impl WorkerStore for NoRenewal {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.now()
    }
    fn commit_mode(&self) -> CommitMode {
        self.inner.commit_mode()
    }
    fn wakeups(&self) -> Wakeups {
        self.inner.wakeups()
    }
    async fn write(&self, batch: WriteBatch<'_>) -> WriteOutcome {
        self.inner.write(batch).await
    }
    async fn heartbeat(&self, held: &[Fence], _: Duration) -> durable_core::Result<Vec<Fence>> {
        Ok(held.to_vec())
    }
    async fn mark_started(&self, fence: &Fence) -> durable_core::Result<bool> {
        self.inner.mark_started(fence).await
    }
    async fn cancel_requested(&self, held: &[Fence]) -> durable_core::Result<Vec<TaskId>> {
        self.inner.cancel_requested(held).await
    }
    async fn rescue_expired(&self) -> durable_core::Result<RescueReport> {
        self.inner.rescue_expired().await
    }
    async fn check_enqueue(&self) -> durable_core::Result<()> {
        self.inner.check_enqueue().await
    }
    async fn backlog(&self) -> durable_core::Result<u64> {
        self.inner.backlog().await
    }
    async fn unclaimable(
        &self,
        known: &[String],
        waiting: Duration,
    ) -> durable_core::Result<Vec<(String, u64)>> {
        self.inner.unclaimable(known, waiting).await
    }
}

super::forward::forward_admin_store!(NoRenewal);
super::forward::forward_step_and_schedule_stores!(NoRenewal);

/// A zombie attempt — stalled past its lease while another worker took the task over and
/// completed it with its rows — resumes: its `complete_in` is refused, its rows never
/// appear, and the new attempt's rows appear once.
pub async fn zombie_completion_never_commits(db: &impl TxDb) {
    let store = db.store();
    let app = db.app().await;
    let (state, go) = tx_state(Arc::clone(&app));
    let zombie_rt = Runtime::builder(
        NoRenewal {
            inner: Arc::clone(&store),
        },
        Registry::new().register::<TxTask>(state.clone()),
    )
    .lease(Duration::from_millis(300))
    .poll_interval(Duration::from_millis(50))
    // Its one slot is held by the stalled attempt: the takeover is the other worker's.
    .concurrency(1)
    .start();
    let id = zombie_rt
        .client()
        .enqueue(TxTask(TxMode::StallThenComplete))
        .await
        .expect("enqueue");
    eventually("attempt 1 to stall", WAIT, || async {
        state.stalled.load(Ordering::SeqCst).then_some(())
    })
    .await;

    // Another worker, on connections of its own, recovers the expired lease and completes.
    let other = db.another().await;
    let other_rt = Runtime::builder(
        Arc::clone(&other),
        Registry::new().register::<TxTask>(state.clone()),
    )
    .poll_interval(Duration::from_millis(50))
    .lease(Duration::from_secs(5))
    .start();
    let r = wait_state(&store, id, TaskState::Completed, WAIT).await;
    assert_eq!((r.attempts, r.lease_owner), (2, Some(other_rt.worker_id())));
    assert_eq!(app.rows(id).await, ["attempt-2"]);

    // The zombie resumes and tries to commit its rows with its completion.
    go.send_replace(true);
    let answer = eventually("the zombie to try its completion", WAIT, || async {
        state.zombie.lock().expect("zombie").clone()
    })
    .await;
    let error = answer.expect_err("the zombie's completion must be refused");
    assert!(error.contains("no longer holds the task"), "{error}");
    zombie_rt.shutdown(Duration::from_secs(5)).await;
    other_rt.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        app.rows(id).await,
        ["attempt-2"],
        "the zombie's rows never appear"
    );
    let r = row(&store, id).await;
    assert_eq!(
        (r.state, r.attempts, r.lease_owner),
        (TaskState::Completed, 2, Some(other_rt.worker_id())),
        "the zombie wrote nothing"
    );
}

/// A task that wrote its completion in a transaction that did not commit, then returned
/// `Ok`, did not complete: the attempt fails and the next one commits.
pub async fn uncommitted_completion_is_a_failed_attempt(db: &impl TxDb) {
    let store = db.store();
    let app = db.app().await;
    let (state, _go) = tx_state(Arc::clone(&app));
    let rt = Runtime::builder(
        Arc::clone(&store),
        Registry::new().register::<TxTask>(state),
    )
    .poll_interval(Duration::from_millis(50))
    .start();
    let id = rt
        .client()
        .enqueue(TxTask(TxMode::RollBackThenReturnOk))
        .await
        .expect("enqueue");
    let r = wait_state(&store, id, TaskState::Completed, WAIT).await;
    assert_eq!(r.attempts, 2);
    let error = r.last_error.unwrap_or_default();
    assert!(error.contains("did not commit"), "{error}");
    assert_eq!(app.rows(id).await, ["attempt-2"]);
    // The completion written in the transaction is the one the runtime counts: once.
    eventually("the runtime to count the completion", WAIT, || async {
        (rt.stats().completed == 1).then_some(())
    })
    .await;
    rt.shutdown(Duration::from_secs(5)).await;
}

/// A step recorded with `step_in` commits with the step's rows; the next attempt finds it
/// finished and does not write them again.
pub async fn step_in_commits_with_its_rows(db: &impl TxDb) {
    let store = db.store();
    let app = db.app().await;
    let (state, _go) = tx_state(Arc::clone(&app));
    let rt = Runtime::builder(
        Arc::clone(&store),
        Registry::new().register::<TxTask>(state),
    )
    .poll_interval(Duration::from_millis(50))
    .start();
    let id = rt
        .client()
        .enqueue(TxTask(TxMode::StepThenFail))
        .await
        .expect("enqueue");
    let r = wait_state(&store, id, TaskState::Completed, WAIT).await;
    rt.shutdown(Duration::from_secs(5)).await;
    assert_eq!(r.attempts, 2);
    assert_eq!(app.rows(id).await, ["attempt-2", "order-row"]);
    let steps = store.steps(id).await.expect("steps");
    assert_eq!(steps, [StepRecord::new("order", "\"order-row\"", 1)]);
}
