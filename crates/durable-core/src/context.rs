//! What a running task sees: its state, its identity and a way to stop early (its steps
//! are in `crate::steps`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::client::Client;
use crate::ids::TaskId;
use crate::steps::AttemptScope;

/// Passed to [`Task::run`](crate::Task::run): the application state, the task's identity,
/// a cancellation signal and a [`Client`] to enqueue follow-up tasks.
#[derive(Debug, Clone)]
pub struct TaskContext<S> {
    pub(crate) state: S,
    pub(crate) id: TaskId,
    pub(crate) name: &'static str,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) cancel: CancellationToken,
    /// The runtime's token of this attempt (the parent of `cancel`).
    pub(crate) stop: CancellationToken,
    /// Set before `stop` fires when the task's cancellation was requested.
    pub(crate) requested: Arc<AtomicBool>,
    pub(crate) client: Client,
    /// This attempt's fence, steps and transactional writes (shared with the runtime).
    pub(crate) scope: Arc<AttemptScope>,
}

/// Why the runtime stopped an attempt ([`TaskContext::cancel_reason`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelReason {
    /// Cancelling the task was requested ([`Client::cancel`]): whatever the attempt returns
    /// now but `Ok`, the task ends `cancelled` (an `Ok` still makes it `completed`).
    Requested,
    /// The runtime is shutting down, or the attempt's lease went to another worker: the
    /// task is handed back and runs again.
    Stopped,
}

impl<S> TaskContext<S> {
    /// The application state registered with this task type.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The task's id: a good idempotency key for external APIs.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task type's stable name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// When the task was enqueued (from its id, a UUID v7 made by the enqueuing client, to
    /// the millisecond, on that process's clock); `None` for a row inserted with an id of
    /// another kind. What users measure first: `Utc::now() - enqueued_at` is how long the
    /// task waited plus how long it has run.
    ///
    /// ```
    /// # use durable_core::TaskContext;
    /// fn waited(cx: &TaskContext<()>) -> Option<chrono::TimeDelta> {
    ///     cx.enqueued_at().map(|at| chrono::Utc::now() - at)
    /// }
    /// ```
    pub fn enqueued_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.id.created_at()
    }

    /// This attempt's number, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Attempts allowed in total.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether a failure now makes the task `failed` rather than retried.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// Fires when the runtime wants this attempt to stop: its task's cancellation was
    /// requested ([`Client::cancel`]), shutdown after the grace period, or the lease was lost
    /// to another worker ([`cancel_reason`](Self::cancel_reason) tells which). Stop promptly:
    /// a cancelled task ends `cancelled`; an attempt stopped otherwise is requeued, not
    /// counted as failed. An attempt that does not stop is dropped after the runtime's cancel
    /// grace.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    /// Whether [`cancelled`](Self::cancelled) has fired.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Why the runtime stopped this attempt; `None` while it has not (even if the task
    /// cancelled its own [`cancellation_token`](Self::cancellation_token)).
    ///
    /// # Examples
    ///
    /// ```
    /// use durable_core::{CancelReason, TaskContext, TaskError};
    ///
    /// async fn run(cx: TaskContext<()>) -> Result<(), TaskError> {
    ///     cx.cancelled().await;
    ///     if cx.cancel_reason() == Some(CancelReason::Requested) {
    ///         // clean up: the task will not run again
    ///     }
    ///     Err(TaskError::retryable("stopped"))
    /// }
    /// ```
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        if self.requested.load(Ordering::SeqCst) {
            Some(CancelReason::Requested)
        } else if self.stop.is_cancelled() {
            Some(CancelReason::Stopped)
        } else {
            None
        }
    }

    /// The token behind [`cancelled`](Self::cancelled), to hand to helpers.
    ///
    /// It belongs to this attempt alone (a child of the runtime's): the runtime cancels it,
    /// and so may the task or a helper — that stops the task's own work without telling the
    /// runtime anything. An attempt that then returns an error is a failed attempt, retried
    /// as usual; only the runtime's own stop (shutdown, a lost lease) hands it back.
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// A client to enqueue follow-up tasks (group-committed like any other enqueue).
    pub fn client(&self) -> &Client {
        &self.client
    }
}
