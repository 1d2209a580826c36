//! Per-enqueue overrides of a task type's options.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::unique::UniqueKey;

/// Per-enqueue overrides of a task type's [`TaskOptions`](crate::TaskOptions).
///
/// A run time must fall within years 1 to 9999 (UTC), the range every store can hold and
/// order: a `run_at` outside it, or a `delay` that ends past it (`Duration::MAX` included),
/// is refused by [`Client::prepare`](crate::Client::prepare) with
/// [`Error::InvalidTask`](crate::Error::InvalidTask) rather than stored as something else.
///
/// # Examples
///
/// ```
/// use durable_core::EnqueueOptions;
/// use std::time::Duration;
///
/// let opts = EnqueueOptions::new().delay(Duration::from_secs(60)).queue("emails");
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct EnqueueOptions {
    /// Run at this time.
    pub run_at: Option<DateTime<Utc>>,
    /// Run after this delay (ignored when `run_at` is set).
    pub delay: Option<Duration>,
    /// Queue override (at most [`MAX_NAME_BYTES`](crate::client::MAX_NAME_BYTES), no NUL).
    pub queue: Option<String>,
    /// Priority override.
    pub priority: Option<i16>,
    /// Attempts override.
    pub max_attempts: Option<u32>,
    /// A unique key: nothing new is stored while a task holds it (see [`UniqueKey`]).
    pub unique: Option<UniqueKey>,
}

impl EnqueueOptions {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }
    /// Runs the task at `at`.
    #[must_use]
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }
    /// Runs the task after `delay`.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
    /// Puts the task in `queue`.
    #[must_use]
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }
    /// Sets the priority (higher first).
    #[must_use]
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = Some(priority);
        self
    }
    /// Sets the attempts allowed.
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n.max(1));
        self
    }
    /// Makes the task unique by `key`: while a task holding the key exists, the enqueue stores
    /// nothing and returns that task's id. Enforced by the database, race-free across
    /// processes and transactions; see [`UniqueKey`].
    ///
    /// ```
    /// use durable_core::{EnqueueOptions, UniqueKey};
    /// let opts = EnqueueOptions::new().unique(UniqueKey::new("user:42"));
    /// # let _ = opts;
    /// ```
    #[must_use]
    pub fn unique(mut self, key: UniqueKey) -> Self {
        self.unique = Some(key);
        self
    }
    /// Shorthand for [`unique`](Self::unique) with [`UniqueKey::new`]`(key)`: scoped to the
    /// task type, held while `pending` or `processing`.
    #[must_use]
    pub fn unique_key(self, key: impl Into<String>) -> Self {
        self.unique(UniqueKey::new(key))
    }
}
