//! What a [`RuntimeBuilder`] configures about reporting: the alerting hook, the state gauges'
//! refresh, the throughput flush.

use std::sync::Arc;
use std::time::Duration;

use super::alert::{AlertConfig, AlertFuture, TaskEvent};
use super::builder::{RuntimeBuilder, DEFAULT_ALERT_TIMEOUT};

impl RuntimeBuilder {
    /// Calls `hook` when a task ends `failed` (dead: its last attempt failed, its error was
    /// permanent, or no registered task type can run it), and when a retried task reaches
    /// [`alert_after_attempts`](Self::alert_after_attempts): page someone, post to a chat.
    ///
    /// The hook runs off the workers' path: events wait in a bounded queue
    /// ([`ALERT_QUEUE`](super::ALERT_QUEUE)) for one delivery task that calls the hook
    /// for one event at a time. A hook that panics or runs past
    /// [`alert_timeout`](Self::alert_timeout) is logged and stopped; while it is behind
    /// and the queue is full, further events are dropped with a warning. The hook must not
    /// block its thread (use async I/O, or `spawn_blocking`). At shutdown, events already
    /// queued get up to 2 s more. Each instance alerts about the attempts it ran; a task the
    /// lease sweep marks `failed` (its worker died during its last attempt) raises no event.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use durable_core::{store::Store, Registry, Runtime};
    /// # use durable_core::runtime::AlertKind;
    /// # fn demo(store: impl Store, registry: Registry) {
    /// let runtime = Runtime::builder(store, registry)
    ///     .alert_after_attempts(5)
    ///     .on_alert(|event| async move {
    ///         let what = match event.kind {
    ///             AlertKind::Dead => "failed for good",
    ///             _ => "keeps failing",
    ///         };
    ///         tracing::error!(task_id = %event.id, task = %event.name, attempt = event.attempt,
    ///             error = %event.error, "task {what}");
    ///     })
    ///     .start();
    /// # let _ = runtime; }
    /// ```
    #[must_use]
    pub fn on_alert<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(TaskEvent) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let timeout = self
            .alert
            .as_ref()
            .map_or(DEFAULT_ALERT_TIMEOUT, |a| a.timeout);
        self.alert = Some(AlertConfig {
            hook: Arc::new(move |event| -> AlertFuture { Box::pin(hook(event)) }),
            timeout,
        });
        self
    }

    /// Also alert when a task's attempt number `n` fails and the task is retried (once per
    /// task: a task that keeps failing alerts at attempt `n`, then when it is dead). Without
    /// it only dead tasks alert.
    #[must_use]
    pub fn alert_after_attempts(mut self, n: u32) -> Self {
        self.config.alert_after_attempts = Some(n.max(1));
        self
    }

    /// How long one call of the alerting hook may run before it is stopped (default 30 s).
    #[must_use]
    pub fn alert_timeout(mut self, limit: Duration) -> Self {
        self.alert_timeout_set = Some(limit);
        self
    }

    /// How often the `durable_tasks{state}` gauges are refreshed from the store's counts
    /// (default 15 s; `None` turns the refresh off). One
    /// [`state_stats`](crate::store::AdminStore::state_stats) read per interval per instance
    /// (the counts per state, not the per-queue counts); a read that took longer than a
    /// twentieth of the interval delays the next to twenty times its duration (a held
    /// vacuum horizon slows these counts down). Only with the `metrics` feature.
    #[must_use]
    pub fn stats_interval(mut self, every: Option<Duration>) -> Self {
        self.config.stats_interval = every.map(|e| e.max(Duration::from_millis(10)));
        self
    }

    /// How often the counts of ended attempts per minute are added to the store's
    /// throughput (default 10 s, and once more at shutdown). A failed write is logged and
    /// retried at the next flush.
    #[must_use]
    pub fn throughput_flush(mut self, every: Duration) -> Self {
        self.config.throughput_flush = every.max(Duration::from_millis(10));
        self
    }
}
