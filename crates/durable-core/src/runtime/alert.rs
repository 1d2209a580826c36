//! The alerting hook: what the runtime tells an application about tasks that fail.
//!
//! Events are queued (bounded) and a single delivery task runs the hook, so a slow hook
//! delays only other alerts, never a worker: when the queue is full, events are dropped
//! and the drop is logged. A hook that panics or runs past its timeout is logged and the
//! next event is delivered as usual.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ids::TaskId;

/// Events queued for the hook at most; more are dropped (and logged) until it catches up.
pub const ALERT_QUEUE: usize = 1024;

/// How long a stopping runtime keeps delivering the events already queued.
const DRAIN_AT_STOP: Duration = Duration::from_secs(2);

/// Why a [`TaskEvent`] was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlertKind {
    /// The task ended `failed` (dead): its last attempt failed, its error was permanent,
    /// or its row cannot be run by this code (task type not registered).
    Dead,
    /// An attempt failed and the task is retried, and this attempt's number is the
    /// threshold set with [`RuntimeBuilder::alert_after_attempts`](super::RuntimeBuilder::alert_after_attempts):
    /// raised once per task, when it has failed that many attempts.
    Retrying,
}

/// What the alerting hook receives ([`RuntimeBuilder::on_alert`](super::RuntimeBuilder::on_alert)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskEvent {
    /// Why the event was raised.
    pub kind: AlertKind,
    /// The task.
    pub id: TaskId,
    /// Its task type (stable name).
    pub name: String,
    /// Its queue.
    pub queue: String,
    /// The number of the attempt that failed (1-based).
    pub attempt: u32,
    /// Attempts the task is allowed.
    pub max_attempts: u32,
    /// The attempt's error, as recorded in the task's row.
    pub error: String,
    /// Whether the error was permanent (no attempt left was tried).
    pub permanent: bool,
}

/// The future an alerting hook returns.
pub type AlertFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The hook, type-erased.
pub(crate) type Hook = Arc<dyn Fn(TaskEvent) -> AlertFuture + Send + Sync>;

/// The hook and when it is called, as the builder holds them before start.
#[derive(Clone)]
pub(crate) struct AlertConfig {
    pub(crate) hook: Hook,
    pub(crate) timeout: Duration,
}

impl fmt::Debug for AlertConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertConfig")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The runtime's side of the hook: the queue's sending end.
#[derive(Debug)]
pub(crate) struct Alerts {
    queue: mpsc::Sender<TaskEvent>,
    /// The attempt number whose failure raises [`AlertKind::Retrying`].
    after_attempts: Option<u32>,
    dropped: AtomicU64,
}

impl Alerts {
    /// The sending end, and the delivery task to spawn.
    pub(crate) fn start(
        config: AlertConfig,
        after_attempts: Option<u32>,
        stop: CancellationToken,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (queue, events) = mpsc::channel(ALERT_QUEUE);
        let alerts = Self {
            queue,
            after_attempts,
            dropped: AtomicU64::new(0),
        };
        (alerts, deliver(events, config, stop))
    }

    /// Whether a failed attempt numbered `attempt` that is retried raises an event.
    pub(crate) fn on_retry(&self, attempt: u32) -> bool {
        self.after_attempts == Some(attempt)
    }

    /// Queues `event` for the hook without waiting; drops it (logged) when the queue is full.
    pub(crate) fn raise(&self, event: TaskEvent) {
        match self.queue.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(event)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(task_id = %event.id, task_name = %event.name, kind = ?event.kind, dropped,
                    "alert dropped: the alerting hook is behind ({ALERT_QUEUE} events queued)");
            }
            Err(mpsc::error::TrySendError::Closed(event)) => {
                tracing::warn!(task_id = %event.id, task_name = %event.name, kind = ?event.kind,
                    "alert dropped: the runtime's alert delivery has stopped");
            }
        }
    }
}

/// Runs the hook on each queued event, one at a time, until `stop`; then delivers what is
/// already queued for at most [`DRAIN_AT_STOP`].
async fn deliver(
    mut events: mpsc::Receiver<TaskEvent>,
    config: AlertConfig,
    stop: CancellationToken,
) {
    let until = loop {
        let event = tokio::select! {
            biased;
            event = events.recv() => match event {
                Some(event) => event,
                None => return,
            },
            () = stop.cancelled() => break Instant::now() + DRAIN_AT_STOP,
        };
        let calling = call(&config, event);
        tokio::pin!(calling);
        tokio::select! {
            () = &mut calling => {}
            () = stop.cancelled() => {
                // A slow hook gets the drain's time, not its whole timeout.
                let until = Instant::now() + DRAIN_AT_STOP;
                if tokio::time::timeout_at(until, calling).await.is_err() {
                    tracing::warn!(left = events.len(), "runtime stopped before these alerts were delivered");
                    return;
                }
                break until;
            }
        }
    };
    while let Ok(event) = events.try_recv() {
        let (id, name) = (event.id, event.name.clone());
        if tokio::time::timeout_at(until, call(&config, event))
            .await
            .is_err()
        {
            tracing::warn!(task_id = %id, task_name = %name, left = events.len(),
                "runtime stopped before these alerts were delivered");
            return;
        }
    }
}

/// Calls the hook once: its panics and its timeout are logged, never propagated.
async fn call(config: &AlertConfig, event: TaskEvent) {
    let (id, name) = (event.id, event.name.clone());
    // The hook's synchronous part may panic as well as its future.
    let future = match std::panic::catch_unwind(AssertUnwindSafe(|| (config.hook)(event))) {
        Ok(future) => future,
        Err(panic) => {
            tracing::error!(task_id = %id, task_name = %name, panic = %crate::error::panic_message(&*panic),
                "alerting hook panicked");
            return;
        }
    };
    match tokio::time::timeout(config.timeout, AssertUnwindSafe(future).catch_unwind()).await {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => {
            tracing::error!(task_id = %id, task_name = %name, panic = %crate::error::panic_message(&*panic),
                "alerting hook panicked");
        }
        Err(_) => {
            tracing::warn!(task_id = %id, task_name = %name, timeout_ms = config.timeout.as_millis() as u64,
                "alerting hook timed out; it was stopped");
        }
    }
}
