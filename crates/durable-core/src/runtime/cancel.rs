//! Stopping the attempts of a task whose cancellation was requested: told by this process's
//! client at once, by another process through a wakeup (PostgreSQL's `NOTIFY`), or found at
//! a heartbeat ([`WorkerStore::cancel_requested`](crate::store::WorkerStore::cancel_requested)).

use std::sync::atomic::Ordering;

use super::execute::Ended;
use super::shared::Shared;
use super::slots::Running;
use crate::client::Cancels;
use crate::ids::TaskId;
use crate::store::Fence;

impl Shared {
    /// Stops this runtime's running attempts of task `id`: marks them cancel-requested (so
    /// their end is written `cancelled`), fires their token, and drops the ones still running
    /// after the cancel grace. Idempotent: a request seen twice (the client, then the
    /// `NOTIFY` or a heartbeat) stops each attempt once.
    pub(crate) fn cancel_attempts(&self, id: TaskId) {
        let targets: Vec<Running> = self
            .slots()
            .running()
            .filter(|r| r.fence.id == id && !r.settling)
            .filter(|r| !r.requested.swap(true, Ordering::SeqCst))
            .cloned()
            .collect();
        for running in targets {
            tracing::info!(task_id = %id, attempt = running.fence.attempt,
                "cancellation requested; stopping the running attempt");
            running.soft.cancel();
            // As for a lost lease: a moment to stop cleanly, then the future is dropped.
            let grace = self.config.cancel_grace;
            self.handle.spawn(async move {
                tokio::time::sleep(grace).await;
                running.hard.cancel();
            });
        }
    }

    /// Stops the attempts among `held` whose cancellation the store reports requested.
    pub(super) async fn check_cancels(&self, held: &[Fence]) {
        if held.is_empty() {
            return;
        }
        match self.store.cancel_requested(held).await {
            Ok(ids) => {
                for id in ids {
                    self.cancel_attempts(id);
                }
            }
            Err(error) => tracing::warn!(%error, "could not look for cancelled tasks"),
        }
    }
}

impl Cancels for Shared {
    fn cancel_requested(&self, id: TaskId) {
        self.cancel_attempts(id);
    }
}

/// Why the runtime stopped an attempt: its lease went elsewhere (nothing to write), its
/// task's cancellation was requested, or shutdown.
pub(super) fn stopped(shared: &Shared, fence: &Fence) -> Ended {
    let requested = shared
        .slots()
        .get(fence)
        .is_some_and(|r| r.requested.load(Ordering::SeqCst));
    if shared.lease_lost(fence) {
        Ended::LeaseLost
    } else if requested {
        Ended::CancelRequested("cancelled while running".to_owned())
    } else {
        Ended::Cancelled
    }
}

impl Ended {
    /// A cancellation's message, from how the attempt itself ended when it returned.
    pub(super) fn or_cancel(self, message: impl FnOnce() -> String) -> Ended {
        match self {
            Ended::CancelRequested(_) => Ended::CancelRequested(message()),
            other => other,
        }
    }
}
