//! Waiting for a task's final state: the durable counterpart of awaiting a `JoinHandle`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::handle::Client;
use super::link::Waiters;
use crate::error::{Error, Result};
use crate::ids::TaskId;
use crate::store::TaskRecord;

/// First pause between two looks at a task that another process runs.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// Longest pause between two looks: a task finishing elsewhere is seen within about this.
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Removes a waiter when its future ends or is dropped.
struct Registered<'a> {
    waiters: &'a Waiters,
    id: TaskId,
    notify: Arc<Notify>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let notify = std::mem::replace(&mut self.notify, Arc::new(Notify::new()));
        self.waiters.unregister(self.id, notify);
    }
}

impl Client {
    /// Waits until task `id` reaches a final state — `completed`, `failed` or `cancelled` —
    /// and returns its row (for a failed task, `last_error` says why). The durable
    /// counterpart of awaiting a `JoinHandle`: it works for a task enqueued by any process and
    /// run by any instance, and across restarts of this one (wait again with the same id).
    ///
    /// A task this process's runtime finishes is seen at once; one finished elsewhere at the
    /// next look at the store, first after 10 ms, then at pauses doubling to 1 s. Fails with
    /// [`Error::UnknownTask`] when the store does not hold the task (never stored, or pruned
    /// after it finished), and with the store's error if it cannot be read.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use durable_core::{Client, Task, TaskState};
    /// # async fn demo<T: Task>(client: Client, task: T) -> durable_core::Result<()> {
    /// let id = client.enqueue(task).await?;
    /// let done = tokio::time::timeout(std::time::Duration::from_secs(30), client.wait(id))
    ///     .await
    ///     .expect("finished within 30 s")?;
    /// if done.state == TaskState::Failed {
    ///     eprintln!("task {id} failed: {:?}", done.last_error);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only stops waiting; the task is not affected.
    pub async fn wait(&self, id: TaskId) -> Result<TaskRecord> {
        let waiters = &self.inner.waiters;
        let registered = Registered {
            waiters,
            id,
            notify: waiters.register(id),
        };
        let mut pause = FIRST_PAUSE;
        loop {
            // Listen before looking, so a finish between the look and the wait is not missed.
            let notified = registered.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.get(id).await? {
                None => return Err(Error::UnknownTask { id }),
                Some(record) if record.state.is_terminal() => return Ok(record),
                Some(_) => {}
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(pause) => pause = (pause * 2).min(MAX_PAUSE),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_waiter_to_leave_removes_the_entry() {
        let waiters = Waiters::default();
        let id = TaskId::new();
        let a = Registered {
            waiters: &waiters,
            id,
            notify: waiters.register(id),
        };
        let b = Registered {
            waiters: &waiters,
            id,
            notify: waiters.register(id),
        };
        assert!(Arc::ptr_eq(&a.notify, &b.notify), "one entry per task");
        drop(a);
        assert_eq!(waiters.tasks(), 1);
        drop(b);
        assert_eq!(waiters.tasks(), 0);
    }
}
