//! Errors: the crate's [`Error`] and the [`TaskError`] a task returns.

use std::fmt;

/// Errors of the durable runtime and its stores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The task's payload could not be serialized to JSON.
    #[error("cannot serialize task `{name}`: {source}")]
    Serialize {
        /// Task name.
        name: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The payload is larger than the configured limit.
    #[error("payload of task `{name}` is {size} bytes, over the limit of {limit} bytes")]
    PayloadTooLarge {
        /// Task name.
        name: String,
        /// Serialized size in bytes.
        size: usize,
        /// Configured limit in bytes.
        limit: usize,
    },
    /// The task cannot be stored as given: a task or queue name that is empty, longer than
    /// [`MAX_NAME_BYTES`](crate::client::MAX_NAME_BYTES) or holds a NUL character, a NUL character
    /// in the payload, or a run time outside years 1–9999. Found by
    /// [`Client::prepare`](crate::Client::prepare) before anything is written; retrying
    /// the same task cannot help.
    #[error("task `{name}` cannot be stored: {reason}")]
    InvalidTask {
        /// Task name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store failed (database unreachable, timeout, I/O...): the same write may succeed
    /// later.
    #[error("task store error during {operation}: {source}")]
    Store {
        /// What the store was doing.
        operation: &'static str,
        /// The backend error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Two Rust types use one task name: each would decode the other's rows. Task names are
    /// global to the application; give one of them another name (`#[task(name = "..")]` or
    /// `Task::NAME`).
    #[error(
        "task name `{name}` is used by two types, `{first}` and `{second}`: task names are \
         global, and each type would run the other's rows; give one of them another name"
    )]
    NameCollision {
        /// The name.
        name: &'static str,
        /// The type that used it first.
        first: &'static str,
        /// The type that used it second.
        second: &'static str,
    },
    /// The database refused the rows themselves — a constraint, a trigger, a value it
    /// cannot hold — so the same write will fail again. The client's writer answers this
    /// only to the request whose rows were refused; the others of its batch are stored.
    #[error("the database refused the task during {operation}: {source}")]
    Rejected {
        /// What the store was doing.
        operation: &'static str,
        /// The backend error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The client's writer already holds as many unwritten rows (or bytes) as it may
    /// queue — the database is slow or unreachable — so the enqueue was refused at once
    /// instead of waiting in memory. Retry later. The bounds are set with
    /// [`ClientBuilder`](crate::client::ClientBuilder).
    #[error(
        "too many tasks are waiting to be written ({queued_rows} rows, {queued_bytes} bytes \
         queued): the database is slow or unavailable"
    )]
    Overloaded {
        /// Rows waiting in the writer when this one was refused.
        queued_rows: usize,
        /// Their approximate size in bytes.
        queued_bytes: usize,
    },
    /// The runtime or client is shutting down and accepts no more work.
    #[error("the durable runtime is shutting down")]
    ShuttingDown,
    /// An enqueue through the [`Client`](crate::Client) from the task that holds a
    /// transaction on SQLite's only writer connection (`SqliteStore::begin`,
    /// `Durable::begin`): the client's writer needs that connection, so the enqueue could only
    /// be written after the transaction ends — which waits for the enqueue. Write the task in
    /// the transaction instead (`Durable::spawn_in(&mut *tx, ..)`, `durable_sqlx::enqueue_in`),
    /// or enqueue after the commit.
    #[error(
        "cannot enqueue through the client here: you are inside a transaction holding SQLite's \
         only writer connection, which the client's writer needs; use `spawn_in(&mut *tx, ..)` \
         (or `durable_sqlx::enqueue_in`) to write the task in that transaction instead"
    )]
    InsideWriterTransaction,

    /// A step name used twice by one attempt ([`TaskContext::step`](crate::TaskContext::step)):
    /// step names must be unique within a run, or the second step would be taken for the
    /// first on the next attempt.
    #[error(
        "step `{step}` of task `{task}` was used twice in one run: step names must be unique \
         within a run (name steps made in a loop after their item)"
    )]
    DuplicateStep {
        /// Task name.
        task: &'static str,
        /// The step name.
        step: String,
    },
    /// A step's result could not be serialized, or a stored one deserialized into the type
    /// the step asks for.
    #[error("step `{step}`: its result does not convert to or from JSON: {source}")]
    StepOutput {
        /// The step name.
        step: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A fenced write of an attempt (a step's checkpoint, a completion in the application's
    /// transaction) applied to no row: the attempt no longer holds its task — its lease
    /// expired and another worker took the task over, or it was rescued. Whatever the
    /// attempt wrote in that transaction must not commit.
    #[error(
        "attempt {attempt} of task {id} no longer holds the task (its lease expired and it was \
         taken over): its write was refused"
    )]
    LeaseLost {
        /// The task.
        id: crate::ids::TaskId,
        /// The attempt that lost it.
        attempt: u32,
    },
    /// A periodic schedule that cannot be used: a cron expression that does not parse
    /// ([`Schedule::cron`](crate::periodic::Schedule::cron)).
    #[error("invalid schedule `{schedule}`: {reason}")]
    InvalidSchedule {
        /// The schedule as given.
        schedule: String,
        /// Why it was refused.
        reason: String,
    },

    /// [`Client::wait`](crate::Client::wait) for a task the store does not hold: never
    /// stored, or pruned after it finished (see the runtime's retention).
    #[error("task {id} is not in the store: it was never stored, or was pruned after it finished")]
    UnknownTask {
        /// The task waited for.
        id: crate::ids::TaskId,
    },
}

impl Error {
    /// Wraps a backend error with the operation it happened in.
    pub fn store(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Store {
            operation,
            source: source.into(),
        }
    }

    /// Wraps a backend error saying the database refused the rows themselves (a
    /// constraint, a trigger, a value it cannot hold): see [`Error::Rejected`].
    pub fn rejected(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Rejected {
            operation,
            source: source.into(),
        }
    }

    /// Whether the same call may succeed if made again later, unchanged: the store was
    /// unavailable, timed out or failed for a reason not tied to the data
    /// ([`Error::Store`]), or the writer was full ([`Error::Overloaded`]). `false` for a
    /// task that can never be stored as given ([`Error::InvalidTask`],
    /// [`Error::PayloadTooLarge`], [`Error::Serialize`], [`Error::Rejected`]) and for
    /// [`Error::ShuttingDown`] (this process takes no more work; another may).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Store { .. } | Error::Overloaded { .. })
    }
}

/// Convenience alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The text of a caught panic's payload (`panic!` with a literal or a formatted message).
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

/// Why an attempt of a task failed, and whether it may be retried.
///
/// Any `std::error::Error` converts into a *retryable* `TaskError`, so `?` works inside
/// [`Task::run`](crate::Task::run). Use [`TaskError::permanent`] for errors no retry can fix
/// (bad input, a deleted user): the task fails at once.
///
/// # Examples
///
/// ```
/// use durable_core::TaskError;
///
/// fn parse(input: &str) -> Result<u32, TaskError> {
///     if input.is_empty() {
///         return Err(TaskError::permanent("empty input"));
///     }
///     Ok(input.parse::<u32>()?) // a ParseIntError becomes a retryable TaskError
/// }
/// assert!(parse("").unwrap_err().is_permanent());
/// assert!(!parse("x").unwrap_err().is_permanent());
/// ```
pub struct TaskError {
    permanent: bool,
    /// Run again after this long, without using up an attempt ([`TaskError::snooze`]).
    snooze: Option<std::time::Duration>,
    error: Box<dyn std::error::Error + Send + Sync>,
}

impl TaskError {
    /// A failure that a later attempt may not repeat (network, timeouts, 5xx...).
    pub fn retryable(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            permanent: false,
            snooze: None,
            error: error.into(),
        }
    }

    /// A failure no retry can fix: the task goes to `failed` at once.
    pub fn permanent(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            permanent: true,
            snooze: None,
            error: error.into(),
        }
    }

    /// Not a failure: run the task again after `delay`, **without using up an attempt**
    /// (the row goes back to `pending`, due after `delay`, its `attempts` as before this
    /// one, its `last_error` kept). For a task that waits for something not ready yet — a
    /// dependency, a rate limit's window — as often as it needs to: even a task with one
    /// attempt may snooze forever.
    ///
    /// A task whose cancellation was requested ends `cancelled` instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use durable_core::TaskError;
    /// use std::time::Duration;
    ///
    /// fn not_ready_yet() -> Result<(), TaskError> {
    ///     Err(TaskError::snooze(Duration::from_secs(30)))
    /// }
    /// let error = not_ready_yet().unwrap_err();
    /// assert_eq!(error.snoozed(), Some(Duration::from_secs(30)));
    /// ```
    pub fn snooze(delay: std::time::Duration) -> Self {
        Self {
            permanent: false,
            snooze: Some(delay),
            error: format!("snoozed for {}ms", delay.as_millis()).into(),
        }
    }

    /// Like [`snooze`](Self::snooze), until `at` (due at once if `at` has passed). The delay
    /// is measured on this process's clock when the error is made.
    pub fn snooze_until(at: chrono::DateTime<chrono::Utc>) -> Self {
        Self::snooze((at - chrono::Utc::now()).to_std().unwrap_or_default())
    }

    /// The delay of a [`snooze`](Self::snooze); `None` for a failure.
    pub fn snoozed(&self) -> Option<std::time::Duration> {
        self.snooze
    }

    /// Whether the task must not be retried.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The underlying error.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.error
    }
}

impl<E> From<E> for TaskError
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(error: E) -> Self {
        Self::retryable(error)
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskError")
            .field("permanent", &self.permanent)
            .field("snooze", &self.snooze)
            .field("error", &self.error)
            .finish()
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The whole source chain: `last_error` is often all an operator has.
        write!(f, "{}", self.error)?;
        let mut source = self.error.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}
