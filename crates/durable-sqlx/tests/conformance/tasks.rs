//! Task types the runtime cases run, and the probe they report to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable_core::{Backoff, Task, TaskContext, TaskError, TaskOptions};
use serde::{Deserialize, Serialize};

/// What tasks saw: runs per key, live concurrency and its peak.
#[derive(Debug, Default, Clone)]
pub struct Probe {
    runs: Arc<Mutex<HashMap<String, u32>>>,
    live: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    cancelled: Arc<AtomicUsize>,
}

impl Probe {
    pub fn runs(&self, key: &str) -> u32 {
        self.runs
            .lock()
            .expect("probe")
            .get(key)
            .copied()
            .unwrap_or(0)
    }
    pub fn total_runs(&self) -> u32 {
        self.runs.lock().expect("probe").values().sum()
    }
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
    pub fn cancelled(&self) -> usize {
        self.cancelled.load(Ordering::SeqCst)
    }
    fn enter(&self, key: &str) -> u32 {
        let now = self.live.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let mut runs = self.runs.lock().expect("probe");
        let n = runs.entry(key.to_owned()).or_insert(0);
        *n += 1;
        *n
    }
    fn leave(&self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

fn fast_retries() -> TaskOptions {
    TaskOptions::default()
        .max_attempts(5)
        .backoff(Backoff::constant(Duration::from_millis(20)).jitter(0.0))
}

/// Records a run, optionally sleeping; fails the first `fail_first` attempts.
#[derive(Debug, Serialize, Deserialize)]
pub struct Work {
    pub key: String,
    #[serde(default)]
    pub sleep_ms: u64,
    #[serde(default)]
    pub fail_first: u32,
}

impl Work {
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            sleep_ms: 0,
            fail_first: 0,
        }
    }
    pub fn sleeping(key: impl Into<String>, ms: u64) -> Self {
        Self {
            key: key.into(),
            sleep_ms: ms,
            fail_first: 0,
        }
    }
}

impl Task for Work {
    const NAME: &'static str = "work";
    type State = Probe;
    async fn run(self, cx: TaskContext<Probe>) -> Result<(), TaskError> {
        let n = cx.state().enter(&self.key);
        let result = async {
            if self.sleep_ms > 0 {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(self.sleep_ms)) => {}
                    () = cx.cancelled() => {
                        cx.state().cancelled.fetch_add(1, Ordering::SeqCst);
                        return Err(TaskError::retryable("cancelled"));
                    }
                }
            }
            if n <= self.fail_first {
                return Err(TaskError::retryable(format!("planned failure {n}")));
            }
            Ok(())
        }
        .await;
        cx.state().leave();
        result
    }
    fn options() -> TaskOptions {
        fast_retries()
    }
}

/// Same as `Work` in its own queue, for per-queue limits.
#[derive(Debug, Serialize, Deserialize)]
pub struct Mail {
    pub key: String,
    pub sleep_ms: u64,
}

impl Task for Mail {
    const NAME: &'static str = "mail";
    type State = Probe;
    async fn run(self, cx: TaskContext<Probe>) -> Result<(), TaskError> {
        cx.state().enter(&self.key);
        tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        cx.state().leave();
        Ok(())
    }
    fn options() -> TaskOptions {
        fast_retries().queue("mail")
    }
}

/// Panics on every attempt.
#[derive(Debug, Serialize, Deserialize)]
pub struct Panics;

impl Task for Panics {
    const NAME: &'static str = "panics";
    type State = Probe;
    async fn run(self, cx: TaskContext<Probe>) -> Result<(), TaskError> {
        cx.state().enter("panics");
        cx.state().leave();
        panic!("boom in task");
    }
    fn options() -> TaskOptions {
        fast_retries().max_attempts(2)
    }
}

/// Hangs past its timeout on every attempt.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hangs;

impl Task for Hangs {
    const NAME: &'static str = "hangs";
    type State = Probe;
    async fn run(self, cx: TaskContext<Probe>) -> Result<(), TaskError> {
        cx.state().enter("hangs");
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(())
    }
    fn options() -> TaskOptions {
        fast_retries()
            .max_attempts(2)
            .timeout(Duration::from_millis(50))
    }
}

/// Fails permanently.
#[derive(Debug, Serialize, Deserialize)]
pub struct Rejects;

impl Task for Rejects {
    const NAME: &'static str = "rejects";
    type State = Probe;
    async fn run(self, cx: TaskContext<Probe>) -> Result<(), TaskError> {
        cx.state().enter("rejects");
        cx.state().leave();
        Err(TaskError::permanent("user no longer exists"))
    }
}

/// Enqueues a `Work` from inside a task.
#[derive(Debug, Serialize, Deserialize)]
pub struct Chain {
    pub next_key: String,
}

impl Task for Chain {
    const NAME: &'static str = "chain";
    type State = Probe;
    async fn run(self, cx: TaskContext<Probe>) -> Result<(), TaskError> {
        cx.client()
            .enqueue(Work::new(self.next_key))
            .await
            .map_err(|e| TaskError::retryable(e.to_string()))?;
        Ok(())
    }
}

/// A task type the standard [`registry`] does not know: a newer version's, during a rolling
/// deploy.
#[derive(Debug, Serialize, Deserialize)]
pub struct Newer {
    pub key: String,
}

impl Task for Newer {
    const NAME: &'static str = "newer";
    type State = Probe;
    async fn run(self, cx: TaskContext<Probe>) -> Result<(), TaskError> {
        cx.state().enter(&self.key);
        cx.state().leave();
        Ok(())
    }
}

/// A registry with every test task but [`Newer`].
pub fn registry(probe: &Probe) -> durable_core::Registry {
    durable_core::Registry::new()
        .register::<Work>(probe.clone())
        .register::<Mail>(probe.clone())
        .register::<Panics>(probe.clone())
        .register::<Hangs>(probe.clone())
        .register::<Rejects>(probe.clone())
        .register::<Chain>(probe.clone())
}
