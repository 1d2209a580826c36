//! The task model: what a user implements, and the values that describe a stored task.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::context::TaskContext;
use crate::error::TaskError;
use crate::retry::Backoff;

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

/// Name of the queue used when a task type does not choose one.
pub const DEFAULT_QUEUE: &str = "default";

/// Identifier of a task: a UUID v7, generated client-side so `spawn` can return it before the
/// row is written, and time-ordered so ids sort roughly by creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(Uuid);

impl TaskId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
    /// Wraps an existing UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }
    /// The underlying UUID.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for TaskId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hyphenated lowercase: the form stored in SQLite and shown in logs.
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for TaskId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

impl From<Uuid> for TaskId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

/// Identifier of one running runtime instance: the lease owner written on the rows it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerId(Uuid);

impl WorkerId {
    /// A fresh random worker id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
    /// Wraps an existing UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }
    /// The underlying UUID.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for WorkerId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for WorkerId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// The state column of a task row. Stored as exactly these lowercase words.
///
/// Allowed transitions: `pending -> processing -> completed | failed`,
/// `processing -> pending` (retry or requeue) and `pending -> cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Waiting for `run_at` and a free worker.
    Pending,
    /// Claimed by a worker holding a lease.
    Processing,
    /// Finished successfully.
    Completed,
    /// Failed permanently or after its last attempt ("dead"); kept until an operator acts.
    Failed,
    /// Cancelled before it started.
    Cancelled,
}

impl TaskState {
    /// All states, in lifecycle order.
    pub const ALL: [TaskState; 5] = [
        TaskState::Pending,
        TaskState::Processing,
        TaskState::Completed,
        TaskState::Failed,
        TaskState::Cancelled,
    ];

    /// The word stored in the `state` column.
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Processing => "processing",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// Whether no further transition can happen.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Failed | TaskState::Cancelled
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when a string is not one of the five state words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown task state `{0}`")]
pub struct ParseTaskStateError(pub String);

impl FromStr for TaskState {
    type Err = ParseTaskStateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| ParseTaskStateError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_words_round_trip() {
        for state in TaskState::ALL {
            assert_eq!(state.as_str().parse::<TaskState>(), Ok(state));
        }
        assert!("done".parse::<TaskState>().is_err());
    }

    #[test]
    fn task_ids_are_hyphenated_and_ordered() {
        let a = TaskId::new();
        let b = TaskId::new();
        assert_eq!(a.to_string().len(), 36);
        assert!(a < b, "UUID v7 ids sort by creation");
        assert_eq!(a.to_string().parse::<TaskId>().ok(), Some(a));
    }
}
