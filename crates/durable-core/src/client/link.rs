//! What a client and the runtime it belongs to tell each other: how to wake the claim loop,
//! where volatile futures run, and which waited-for tasks finished.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ids::TaskId;

/// Wakes a runtime's claim loop, counting the commits it was woken for and the wakeups that
/// may mean new work.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    notify: Notify,
    /// Commits through this process that left due tasks `pending` for a claim (a handler's
    /// own transaction, more tasks than free slots).
    commits: AtomicU64,
    /// Wakeups that may mean new work (every kind but a freed slot): a claim loop that sees
    /// none since its last claim began knows a pending wakeup is only a slot given back.
    signals: AtomicU64,
}

impl Wake {
    /// Wakes the claim loop for what may be new work: a cross-process wakeup, a timer, a
    /// lease sweep's hand-back, a shutdown.
    pub(crate) fn notify(&self) {
        self.signals.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// Wakes the claim loop because a slot was given back (nothing new arrived).
    pub(crate) fn slot_freed(&self) {
        self.notify.notify_one();
    }

    /// Due tasks were committed for a claim to find: count it and wake the claim loop.
    pub(crate) fn committed(&self) {
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.notify();
    }

    /// The commits counted so far.
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    /// The wakeups for possibly new work so far.
    pub(crate) fn signals(&self) -> u64 {
        self.signals.load(Ordering::SeqCst)
    }

    /// Until the next wakeup.
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }
}

/// The runtime a client belongs to.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub(crate) wake: Arc<Wake>,
    /// Where volatile futures run, so shutdown waits for them.
    pub(crate) tracker: TaskTracker,
    /// Fires when shutdown stops waiting: volatile futures are dropped then.
    pub(crate) hard: CancellationToken,
    /// The application's runtime.
    pub(crate) handle: tokio::runtime::Handle,
    /// Stops the runtime's attempts of a task whose cancellation was requested here.
    pub(crate) cancels: std::sync::Weak<dyn Cancels>,
}

/// The runtime's side of a cancellation requested through its own client: its attempts of
/// the task are stopped at once, without waiting for a wakeup or a heartbeat.
pub(crate) trait Cancels: Send + Sync {
    /// Cancelling task `id` was recorded in the store.
    fn cancel_requested(&self, id: TaskId);
}

/// The waiters of this client, by task: told at once when this process's runtime writes a
/// task's final state, so a local task is seen without waiting for the next look.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    by_task: Mutex<HashMap<TaskId, Arc<Notify>>>,
}

impl Waiters {
    pub(super) fn register(&self, id: TaskId) -> Arc<Notify> {
        let mut by_task = self.by_task.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(by_task.entry(id).or_default())
    }

    /// Drops a waiter's handle, and the entry with the last one. Under the lock, so that two
    /// waiters leaving at once cannot both see the other and leave the entry behind.
    pub(super) fn unregister(&self, id: TaskId, notify: Arc<Notify>) {
        let mut by_task = self.by_task.lock().unwrap_or_else(PoisonError::into_inner);
        drop(notify);
        if by_task.get(&id).is_some_and(|n| Arc::strong_count(n) == 1) {
            by_task.remove(&id);
        }
    }

    /// Task `id` reached a final state here: wake whoever waits for it.
    pub(crate) fn finished(&self, id: TaskId) {
        let notify = self
            .by_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned();
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }

    /// Tasks someone waits for.
    #[cfg(test)]
    pub(super) fn tasks(&self) -> usize {
        self.by_task.lock().map_or(0, |m| m.len())
    }
}
