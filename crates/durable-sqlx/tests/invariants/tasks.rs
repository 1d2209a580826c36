//! The task under test: each attempt picks its fate from the seed (succeed, fail, panic at
//! one of three places, cancel itself, time out, outlive its lease) and records its
//! execution — which process, which attempt, when it started and when it stopped — in a
//! log shared by every process of the iteration.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use durable_core::{Backoff, Task, TaskContext, TaskError, TaskId, TaskOptions};
use serde::{Deserialize, Serialize};

use crate::plan::{hash, queue_of, Off, Rng};

/// Per-attempt time limit of [`Chaos`]: above the longest planned run (leases are at most
/// 800 ms and a long run is at most 1.3 s), so only the `Timeout` fate reaches it.
pub const TIMEOUT: Duration = Duration::from_millis(1500);

/// What one attempt does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Succeed,
    FailRetryable,
    FailPermanent,
    PanicSync,
    PanicAwait,
    PanicDisplay,
    CancelSelf,
    Timeout,
    Long,
}

/// Fates with their weight, and the behaviour that switches each off.
const FATES: &[(Fate, u64, &str)] = &[
    (Fate::Succeed, 360, ""),
    (Fate::Long, 200, "long"),
    (Fate::FailRetryable, 120, "fail"),
    (Fate::FailPermanent, 40, "permanent"),
    (Fate::PanicSync, 60, "panic-sync"),
    (Fate::PanicAwait, 60, "panic-await"),
    (Fate::PanicDisplay, 50, "panic-display"),
    (Fate::CancelSelf, 60, "cancel-self"),
    (Fate::Timeout, 40, "timeout"),
];

/// How the task's future ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Still running (or its end was never observed).
    Running,
    Ok,
    Err,
    Panicked,
    /// Dropped before it finished: timeout, forced cancel, or its process died.
    Dropped,
}

/// One execution of one attempt.
#[derive(Debug, Clone)]
pub struct Execution {
    pub task: TaskId,
    pub index: u32,
    pub queue: &'static str,
    pub attempt: u32,
    pub max_attempts: u32,
    pub incarnation: u32,
    pub fate: Fate,
    pub start: Instant,
    pub end: Option<Instant>,
    pub outcome: Outcome,
}

/// Every execution of the iteration.
#[derive(Debug, Default)]
pub struct ExecLog(Mutex<Vec<Execution>>);

impl ExecLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Execution>> {
        // A planned panic may unwind through a guard's drop; the log stays usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn snapshot(&self) -> Vec<Execution> {
        self.lock().clone()
    }
}

/// Marks the end of an execution when dropped: on return, on unwind, or when the runtime
/// drops the future (timeout, forced cancel, the process's Tokio runtime going away).
struct Stamp {
    log: Arc<ExecLog>,
    at: usize,
    outcome: Outcome,
}

impl Drop for Stamp {
    fn drop(&mut self) {
        let outcome = match self.outcome {
            Outcome::Running if std::thread::panicking() => Outcome::Panicked,
            Outcome::Running => Outcome::Dropped,
            decided => decided,
        };
        let mut log = self.log.lock();
        log[self.at].end = Some(Instant::now());
        log[self.at].outcome = outcome;
    }
}

/// Decides fates; shared by every process of an iteration.
#[derive(Debug)]
pub struct Plan {
    pub seed: u64,
    pub lease: Duration,
    pub off: Off,
}

impl Plan {
    /// The fate of `attempt` of task `index`, and a generator for its details.
    pub fn fate(&self, index: u32, attempt: u32) -> (Fate, Rng) {
        let mut rng = Rng::new(hash(&[self.seed, 3, u64::from(index), u64::from(attempt)]));
        let total: u64 = FATES.iter().map(|(_, w, _)| w).sum();
        let mut roll = rng.below(total);
        let mut fate = Fate::Succeed;
        for (candidate, weight, behaviour) in FATES {
            if roll < *weight {
                fate = *candidate;
                if !behaviour.is_empty() && !self.off.on(behaviour) {
                    fate = Fate::Succeed;
                }
                break;
            }
            roll -= weight;
        }
        (fate, rng)
    }
}

/// What a process's tasks see.
#[derive(Debug, Clone)]
pub struct Probe {
    pub incarnation: u32,
    pub plan: Arc<Plan>,
    pub log: Arc<ExecLog>,
}

/// The task: its fates come from the plan, by index and attempt.
#[derive(Debug, Serialize, Deserialize)]
pub struct Chaos {
    pub index: u32,
}

/// An error whose `Display` panics, as a buggy error type would.
#[derive(Debug)]
struct Unprintable;

impl fmt::Display for Unprintable {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("invariant: planned panic in an error's Display")
    }
}

impl std::error::Error for Unprintable {}

fn planned(message: String) -> TaskError {
    TaskError::retryable(std::io::Error::other(message))
}

/// Sleeps `d`; when `honours`, stops early with an error if asked to cancel.
async fn nap(cx: &TaskContext<Probe>, d: Duration, honours: bool) -> Result<(), TaskError> {
    if !honours {
        tokio::time::sleep(d).await;
        return Ok(());
    }
    tokio::select! {
        () = tokio::time::sleep(d) => Ok(()),
        () = cx.cancelled() => Err(planned("planned stop: asked to cancel".into())),
    }
}

impl Task for Chaos {
    const NAME: &'static str = "invariant_chaos";
    type State = Probe;

    // Not `async fn`: the `PanicSync` fate panics here, before the future exists.
    fn run(self, cx: TaskContext<Probe>) -> impl Future<Output = Result<(), TaskError>> + Send {
        let probe = cx.state().clone();
        let (fate, mut rng) = probe.plan.fate(self.index, cx.attempt());
        let at = {
            let mut log = probe.log.lock();
            log.push(Execution {
                task: cx.id(),
                index: self.index,
                queue: queue_of(probe.plan.seed, self.index),
                attempt: cx.attempt(),
                max_attempts: cx.max_attempts(),
                incarnation: probe.incarnation,
                fate,
                start: Instant::now(),
                end: None,
                outcome: Outcome::Running,
            });
            log.len() - 1
        };
        let mut stamp = Stamp {
            log: Arc::clone(&probe.log),
            at,
            outcome: Outcome::Running,
        };
        let (index, attempt) = (self.index, cx.attempt());
        assert!(
            fate != Fate::PanicSync,
            "invariant: planned panic before the first await (task {index}, attempt {attempt})"
        );
        let pause = rng.ms(0, 30);
        let honours = rng.chance(500);
        let lease_ms = probe.plan.lease.as_millis() as u64;
        let long = Duration::from_millis((lease_ms * rng.between(110, 200) / 100).min(1300));
        async move {
            let result = match fate {
                Fate::Succeed => nap(&cx, pause * 5, honours).await,
                Fate::Long => nap(&cx, long, honours).await,
                Fate::FailRetryable => {
                    tokio::time::sleep(pause).await;
                    Err(planned(format!("planned failure of attempt {attempt}")))
                }
                Fate::FailPermanent => Err(TaskError::permanent(std::io::Error::other(
                    "planned permanent failure",
                ))),
                Fate::PanicSync => unreachable!("panicked before the future was made"),
                Fate::PanicAwait => {
                    tokio::time::sleep(pause).await;
                    panic!(
                        "invariant: planned panic after an await (task {index}, attempt {attempt})"
                    )
                }
                Fate::PanicDisplay => {
                    tokio::time::sleep(pause).await;
                    Err(TaskError::retryable(Unprintable))
                }
                Fate::CancelSelf => {
                    tokio::time::sleep(pause).await;
                    cx.cancellation_token().cancel();
                    Err(planned("planned: gave up after cancelling itself".into()))
                }
                Fate::Timeout => nap(&cx, Duration::from_secs(60), honours).await,
            };
            stamp.outcome = if result.is_ok() {
                Outcome::Ok
            } else {
                Outcome::Err
            };
            drop(stamp);
            result
        }
    }

    fn options() -> TaskOptions {
        TaskOptions::default()
            .max_attempts(3)
            .timeout(TIMEOUT)
            .backoff(Backoff::exponential(
                Duration::from_millis(20),
                Duration::from_millis(200),
            ))
    }
}

/// A short task that only occupies a slot: used to check that a runtime's capacity is
/// whole again after the chaos.
#[derive(Debug, Serialize, Deserialize)]
pub struct Tick;

impl Task for Tick {
    const NAME: &'static str = "invariant_tick";
    type State = ();

    async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(())
    }
}

/// Keeps planned panics out of the output (other panics still print).
pub fn quiet_planned_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if !message.is_some_and(|m| m.starts_with("invariant: planned")) {
                default(info);
            }
        }));
    });
}
