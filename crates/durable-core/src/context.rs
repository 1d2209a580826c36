//! What a running task sees: its state, its identity and a way to stop early (its steps
//! are in `crate::steps`).

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
    pub(crate) client: Client,
    /// This attempt's fence, steps and transactional writes (shared with the runtime).
    pub(crate) scope: Arc<AttemptScope>,
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

    /// Fires when the runtime wants this attempt to stop: shutdown after the grace period,
    /// or the lease was lost to another worker. Stop promptly; an attempt stopped this way is
    /// requeued, not counted as failed.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    /// Whether [`cancelled`](Self::cancelled) has fired.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
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
