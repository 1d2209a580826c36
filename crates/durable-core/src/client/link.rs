//! What a client knows of the runtime it belongs to: how to wake its claim loop, and where
//! volatile futures run.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Wakes a runtime's claim loop, counting the commits it was woken for.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    notify: Notify,
    /// Commits through this process that left due tasks `pending` for a claim (a handler's
    /// own transaction, more tasks than free slots).
    commits: AtomicU64,
}

impl Wake {
    /// Wakes the claim loop (a freed slot, a timer, a shutdown).
    pub(crate) fn notify(&self) {
        self.notify.notify_one();
    }

    /// Due tasks were committed for a claim to find: count it and wake the claim loop.
    pub(crate) fn committed(&self) {
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// The commits counted so far.
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    /// Until the next wakeup.
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }
}

/// The runtime a client belongs to.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub(crate) wake: std::sync::Arc<Wake>,
    /// Where volatile futures run, so shutdown waits for them.
    pub(crate) tracker: TaskTracker,
    /// Fires when shutdown stops waiting: volatile futures are dropped then.
    pub(crate) hard: CancellationToken,
    /// The application's runtime.
    pub(crate) handle: tokio::runtime::Handle,
}
