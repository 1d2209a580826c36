//! Which task holds a transaction on the writer connection ([`SqliteStore::begin`]), so that
//! an enqueue through the client from that same task fails at once: the client's writer
//! needs the connection that task holds, and would wait for it until its acquire timeout
//! while the task waits for the enqueue.
//!
//! [`SqliteStore::begin`]: super::SqliteStore::begin

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// How long [`WriterOwner::check`] waits for a connection the calling task *did* hold to be
/// seen back in the pool. A transaction ends when it is committed or dropped, but the pool
/// learns it in a task sqlx spawns then: right after a commit, the task that committed may
/// still look like the holder for as long as that task takes to be scheduled (normally
/// microseconds). A transaction still open never comes back, and the enqueue fails after
/// this wait — instead of the writer's 30 s acquire timeout, with every request of the
/// process waiting too.
const RELEASE_GRACE: Duration = Duration::from_secs(1);

/// Identifies the code holding the writer transaction: the Tokio task, or — in a runtime's
/// main future (`block_on`, `#[tokio::main]`), which has no task id — the thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Holder {
    Task(tokio::task::Id),
    Thread(std::thread::ThreadId),
}

impl Holder {
    /// The caller.
    pub(super) fn current() -> Self {
        tokio::task::try_id()
            .map_or_else(|| Holder::Thread(std::thread::current().id()), Holder::Task)
    }
}

/// The holder of the writer connection's transaction from `begin`, if any.
#[derive(Debug, Default)]
pub(crate) struct WriterOwner {
    holder: Mutex<Option<Holder>>,
    released: Notify,
}

impl WriterOwner {
    fn holder(&self) -> Option<Holder> {
        *self.holder.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `begin` handed the writer connection, inside a transaction, to `holder`.
    pub(super) fn hold(&self, holder: Holder) {
        *self.holder.lock().unwrap_or_else(PoisonError::into_inner) = Some(holder);
    }

    /// The writer connection went back to the pool (the pool's `after_release` hook): any
    /// transaction on it ended.
    pub(super) fn released(&self) {
        let was = self
            .holder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if was.is_some() {
            self.released.notify_waiters();
        }
    }

    /// Fails when the calling task holds the writer transaction (see [`RELEASE_GRACE`]).
    pub(super) async fn check(&self) -> durable_core::Result<()> {
        let me = Holder::current();
        if self.holder() != Some(me) {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + RELEASE_GRACE;
        loop {
            let mut released = std::pin::pin!(self.released.notified());
            released.as_mut().enable();
            if self.holder() != Some(me) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return Err(durable_core::Error::InsideWriterTransaction);
            }
        }
    }
}
