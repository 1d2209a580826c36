//! [`Runtime`]: the handle on a running runtime.

use std::fmt;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::settings::Settings;
use super::shared::Shared;
use super::stats::RuntimeStats;
use crate::client::Client;
use crate::ids::WorkerId;

/// A running worker runtime: claims due tasks of the registered types and runs them.
///
/// A cheap handle: clones control the same runtime. Dropping handles does not stop the loops;
/// call [`shutdown`](Self::shutdown), which drains and hands unfinished tasks back
/// (`tracker.close(); token.cancel(); tracker.wait()`, the tokio-util recipe, with a grace
/// period and a requeue at the end).
#[derive(Clone)]
pub struct Runtime {
    pub(super) shared: Arc<Shared>,
    /// The claim loop: shutdown waits for it, so a claim in flight starts its tasks on the
    /// tracker before the tracker is drained.
    pub(super) claimer: TaskTracker,
    /// Heartbeats and pruning: stopped after the drain.
    pub(super) loops: TaskTracker,
    pub(super) maintenance: CancellationToken,
    pub(super) force: CancellationToken,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("owner", &self.shared.owner)
            .field("running", &self.running())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// The settings this runtime runs with (the builder's, defaults filled in).
    pub fn settings(&self) -> &Settings {
        &self.shared.config
    }

    /// The client whose enqueues this runtime dispatches locally.
    pub fn client(&self) -> Client {
        self.shared.client.clone()
    }

    /// This runtime's lease owner id.
    pub fn worker_id(&self) -> WorkerId {
        self.shared.owner
    }

    /// Attempts running now.
    pub fn running(&self) -> usize {
        self.shared.slots().running_count()
    }

    /// Counters since start.
    pub fn stats(&self) -> RuntimeStats {
        self.shared.stats.snapshot()
    }

    /// A token cancelled when shutdown begins ([`begin_shutdown`](Self::begin_shutdown) or
    /// [`shutdown`](Self::shutdown); `axum_durable::serve` begins it at the first signal,
    /// before the HTTP drain): end server-sent-event streams, long polls, WebSocket loops
    /// and other loops on it, so they do not hold the drain up until its deadline.
    pub fn stopping(&self) -> CancellationToken {
        self.shared.stopping.clone()
    }

    /// Begins a shutdown without waiting for it: the runtime stops claiming (and stops
    /// dispatching new tasks locally: they stay `pending` for this instance's last claim or
    /// another instance), and [`stopping`](Self::stopping) fires. Running attempts go on;
    /// [`shutdown`](Self::shutdown) drains and hands back. Idempotent.
    pub fn begin_shutdown(&self) {
        self.shared.stopping.cancel();
        self.shared.wake.notify();
    }

    /// Tracks a future that may be lost (metrics, cache warm-ups): not persisted, but
    /// shutdown waits for it within the grace period like for tasks, and its error or panic
    /// is logged. Same as [`Client::spawn_volatile`] on this runtime's client.
    pub fn spawn_volatile<F, E>(&self, name: &'static str, future: F)
    where
        F: std::future::Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        self.shared.client.spawn_volatile(name, future);
    }

    /// Makes a shutdown in progress skip the rest of its grace period and requeue at once
    /// (wire it to a second Ctrl-C / SIGTERM).
    pub fn force_shutdown(&self) {
        self.force.cancel();
    }
}
