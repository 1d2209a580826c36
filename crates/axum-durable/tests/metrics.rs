//! Metrics through the `metrics` facade, read back with `metrics-util`'s debugging recorder
//! (installed for this test binary), on a real SQLite file.

use std::sync::Arc;
use std::time::Duration;

use axum_durable::core::store::Store;
use axum_durable::sqlite::SqliteStore;
use axum_durable::{Backoff, Registry, Runtime, Task, TaskContext, TaskError, TaskOptions};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Ok1;

impl Task for Ok1 {
    const NAME: &'static str = "metrics_ok";
    type State = ();
    fn options() -> TaskOptions {
        TaskOptions::default().queue("mail")
    }
    async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(())
    }
}

/// Fails both of its attempts: one retry, then failed.
#[derive(Serialize, Deserialize)]
struct Fails;

impl Task for Fails {
    const NAME: &'static str = "metrics_fails";
    type State = ();
    fn options() -> TaskOptions {
        TaskOptions::default()
            .max_attempts(2)
            .backoff(Backoff::constant(Duration::from_millis(10)))
    }
    async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
        Err(TaskError::retryable(std::io::Error::other("nope")))
    }
}

/// Slots of the runtime under test.
const SLOTS: usize = 4;

/// One snapshot (taking it resets counters and histograms), searched by name and labels.
type Snapshot = Vec<(CompositeKey, DebugValue)>;

fn value<'s>(
    snapshot: &'s Snapshot,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'s DebugValue> {
    snapshot
        .iter()
        .find(|(key, _)| {
            let key = key.key();
            key.name() == name
                && labels.iter().all(|(k, v)| {
                    key.labels()
                        .any(|label| label.key() == *k && label.value() == *v)
                })
        })
        .map(|(_, value)| value)
}

fn counter(snapshot: &Snapshot, name: &str, task: &str, queue: &str) -> u64 {
    match value(snapshot, name, &[("task", task), ("queue", queue)]) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        Some(other) => panic!("{name} is not a counter: {other:?}"),
    }
}

/// A waiter may see a final row before its runner has counted it: waits for the runner.
async fn runner_counted(runtime: &Runtime) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while {
        let stats = runtime.stats();
        (
            stats.completed,
            stats.retried,
            stats.failed,
            runtime.running(),
        ) != (2, 1, 1, 0)
    } {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            runtime.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits for the state gauges, refreshed from the store's counts every 50 ms (a snapshot
/// resets what it read, so each try reads a fresh refresh).
async fn state_gauges_reach(snapshotter: &Snapshotter) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let snapshot: Snapshot = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| (key, value))
            .collect();
        let state = |name: &str| match value(&snapshot, "durable_tasks", &[("state", name)]) {
            Some(DebugValue::Gauge(n)) => Some(n.into_inner()),
            _ => None,
        };
        if state("completed") == Some(2.0) && state("failed") == Some(1.0) {
            assert_eq!(state("pending"), Some(0.0));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "state gauges not refreshed: {:?}",
            (state("completed"), state("failed"))
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The runtime's own gauges once its tasks are done: nothing busy, and the claim-ahead count
/// of its last claim (`Auto` by default, at most twice the slots).
fn runtime_gauges(s: &Snapshot) {
    match value(s, "durable_runtime_busy_slots", &[]) {
        Some(DebugValue::Gauge(busy)) => assert!(busy.into_inner().abs() < f64::EPSILON, "{busy}"),
        other => panic!("busy gauge: {other:?}"),
    }
    match value(s, "durable_runtime_claim_ahead", &[]) {
        Some(DebugValue::Gauge(ahead)) => {
            let ahead = ahead.into_inner();
            assert!((0.0..=2.0 * SLOTS as f64).contains(&ahead), "{ahead}");
        }
        other => panic!("claim-ahead gauge: {other:?}"),
    }
}

#[tokio::test]
async fn counters_histograms_and_gauges_move() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let file = durable_testkit::SqliteFile::new();
    let store = SqliteStore::connect(file.path_string())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let store: Arc<dyn Store> = Arc::new(store);
    let registry = Registry::new().register::<Ok1>(()).register::<Fails>(());
    let runtime = Runtime::builder(store, registry)
        .concurrency(SLOTS)
        .stats_interval(Some(Duration::from_millis(50)))
        .start();
    let client = runtime.client();
    let ids = client.enqueue_many([Ok1, Ok1]).await.expect("enqueue");
    let failing = client.enqueue(Fails).await.expect("enqueue");
    for id in ids.into_iter().chain([failing]) {
        tokio::time::timeout(Duration::from_secs(20), client.wait(id))
            .await
            .expect("finished within 20 s")
            .expect("wait");
    }

    runner_counted(&runtime).await;
    let snapshot: Snapshot = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key, value))
        .collect();
    let s = &snapshot;
    assert!(snapshot
        .iter()
        .all(|(key, _)| key.kind() != MetricKind::Counter
            || key.key().name().starts_with("durable_")));
    assert_eq!(
        counter(s, "durable_tasks_enqueued_total", "metrics_ok", "mail"),
        2
    );
    assert_eq!(
        counter(
            s,
            "durable_tasks_enqueued_total",
            "metrics_fails",
            "default"
        ),
        1
    );
    assert_eq!(
        counter(s, "durable_tasks_claimed_total", "metrics_ok", "mail"),
        2
    );
    assert_eq!(
        counter(s, "durable_tasks_claimed_total", "metrics_fails", "default"),
        2
    );
    assert_eq!(
        counter(s, "durable_tasks_completed_total", "metrics_ok", "mail"),
        2
    );
    assert_eq!(
        counter(s, "durable_tasks_retried_total", "metrics_fails", "default"),
        1
    );
    assert_eq!(
        counter(s, "durable_tasks_failed_total", "metrics_fails", "default"),
        1
    );
    assert_eq!(
        counter(s, "durable_tasks_failed_total", "metrics_ok", "mail"),
        0
    );
    match value(s, "durable_task_run_seconds", &[("task", "metrics_ok")]) {
        Some(DebugValue::Histogram(runs)) => {
            assert_eq!(runs.len(), 2);
            assert!(runs.iter().all(|r| r.into_inner() >= 0.02), "{runs:?}");
        }
        other => panic!("run histogram: {other:?}"),
    }
    match value(
        s,
        "durable_task_pickup_seconds",
        &[("task", "metrics_fails")],
    ) {
        Some(DebugValue::Histogram(waits)) => assert_eq!(waits.len(), 2),
        other => panic!("pickup histogram: {other:?}"),
    }
    runtime_gauges(s);
    state_gauges_reach(&snapshotter).await;
    runtime.shutdown(Duration::from_secs(5)).await;
}
