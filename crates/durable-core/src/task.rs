//! The task model: what a user implements, and the values that describe a stored task.

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::context::TaskContext;
use crate::error::TaskError;
use crate::retry::Backoff;
use crate::store::DEFAULT_QUEUE;

/// A unit of durable work: a serializable value plus the code that performs it.
///
/// The value is stored as JSON in one row, under the stable [`Task::NAME`]. Renaming the Rust
/// type does not break stored rows; renaming `NAME` does, so treat it like a table name.
///
/// Tasks run **at least once**: a crash, a lost lease or a shutdown after the grace period can
/// run the same task again, so [`Task::run`] must be idempotent (see the crate docs).
///
/// # Examples
///
/// ```
/// use durable_core::{Task, TaskContext, TaskError, TaskOptions};
/// use serde::{Deserialize, Serialize};
/// use std::time::Duration;
///
/// #[derive(Clone)]
/// struct AppState { /* pools, clients... */ }
///
/// #[derive(Serialize, Deserialize)]
/// struct SendWelcomeEmail { user_id: i64 }
///
/// impl Task for SendWelcomeEmail {
///     const NAME: &'static str = "send_welcome_email";
///     type State = AppState;
///
///     async fn run(self, cx: TaskContext<AppState>) -> Result<(), TaskError> {
///         let _state = cx.state();
///         // send the email, keyed by cx.id() so a re-run does not send it twice
///         Ok(())
///     }
///
///     fn options() -> TaskOptions {
///         TaskOptions::default().max_attempts(10).timeout(Duration::from_secs(30))
///     }
/// }
/// ```
pub trait Task: Serialize + DeserializeOwned + Send + 'static {
    /// Stable name stored in the `name` column; the key the registry dispatches on.
    const NAME: &'static str;

    /// The application state the task receives through its [`TaskContext`].
    type State: Clone + Send + Sync + 'static;

    /// Performs the work. A returned [`TaskError`] or a panic counts as a failed attempt.
    fn run(
        self,
        cx: TaskContext<Self::State>,
    ) -> impl Future<Output = Result<(), TaskError>> + Send;

    /// Per-type defaults: attempts, backoff, timeout, queue, priority.
    fn options() -> TaskOptions {
        TaskOptions::default()
    }
}

/// Per-task-type defaults, returned by [`Task::options`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TaskOptions {
    /// How many attempts in total before the task is `failed` (at least 1).
    pub max_attempts: u32,
    /// Delay before each retry.
    pub backoff: Backoff,
    /// Time one attempt may take; exceeding it counts as a retryable error. `None`: no limit.
    pub timeout: Option<Duration>,
    /// Queue the task is enqueued into unless overridden at enqueue.
    pub queue: Cow<'static, str>,
    /// Higher runs first among due tasks of one queue.
    pub priority: i16,
}

impl Default for TaskOptions {
    fn default() -> Self {
        Self {
            max_attempts: 20,
            backoff: Backoff::default(),
            timeout: Some(Duration::from_secs(300)),
            queue: Cow::Borrowed(DEFAULT_QUEUE),
            priority: 0,
        }
    }
}

impl TaskOptions {
    /// Sets the total number of attempts (clamped to at least 1).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }
    /// Sets the retry backoff.
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
    /// Sets the per-attempt timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Removes the per-attempt timeout.
    #[must_use]
    pub fn no_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }
    /// Sets the default queue.
    #[must_use]
    pub fn queue(mut self, queue: impl Into<Cow<'static, str>>) -> Self {
        self.queue = queue.into();
        self
    }
    /// Sets the default priority (higher first).
    #[must_use]
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }
}
