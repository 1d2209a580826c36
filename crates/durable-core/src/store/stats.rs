//! What a dashboard's overview reads: counts that stay cheap at millions of rows, and the
//! throughput of the last hour.

use chrono::{DateTime, Utc};

use crate::state::TaskState;

/// A row count, labelled with how it was obtained: counting every row of a big table is
/// exactly what makes admin pages slow at millions of rows, so stores count exactly only up
/// to a bound, or estimate from planner statistics, and say which they did.
///
/// # Examples
///
/// ```
/// use durable_core::store::Count;
/// assert_eq!(Count::Exact(12).to_string(), "12");
/// assert_eq!(Count::AtLeast(100_000).to_string(), "100000+");
/// assert_eq!(Count::Estimated(2_500_000).to_string(), "~2500000");
/// assert_eq!(Count::AtLeast(100_000).value(), 100_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Every matching row was counted.
    Exact(u64),
    /// Counting stopped at this bound: there are at least this many rows.
    AtLeast(u64),
    /// An estimate from the database's statistics (PostgreSQL's planner), not a count.
    Estimated(u64),
}

impl Count {
    /// The number, whatever its label.
    pub fn value(self) -> u64 {
        match self {
            Count::Exact(n) | Count::AtLeast(n) | Count::Estimated(n) => n,
        }
    }

    /// Whether every row was counted.
    pub fn is_exact(self) -> bool {
        matches!(self, Count::Exact(_))
    }

    /// The label: `"exact"`, `"at_least"` or `"estimated"` (as serialized by the admin API).
    pub fn kind(self) -> &'static str {
        match self {
            Count::Exact(_) => "exact",
            Count::AtLeast(_) => "at_least",
            Count::Estimated(_) => "estimated",
        }
    }
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Count::Exact(n) => write!(f, "{n}"),
            Count::AtLeast(n) => write!(f, "{n}+"),
            Count::Estimated(n) => write!(f, "~{n}"),
        }
    }
}

/// Most rows a store counts exactly for one figure of [`Stats`] before it answers
/// [`Count::AtLeast`] (or an estimate).
pub const COUNT_BOUND: u64 = 10_000;

/// Counts per state, overall and per queue ([`AdminStore::stats`](super::AdminStore::stats)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// One count per state, in [`TaskState::ALL`] order.
    pub states: Vec<(TaskState, Count)>,
    /// Live work per queue (every queue with a `pending` or `processing` row), by queue name.
    pub queues: Vec<QueueCounts>,
    /// Rows `pending` whose run time has come (what workers could claim right now).
    pub due: Count,
}

impl Stats {
    /// Counts from their parts.
    pub fn new(states: Vec<(TaskState, Count)>, queues: Vec<QueueCounts>, due: Count) -> Self {
        Self {
            states,
            queues,
            due,
        }
    }

    /// The count of one state ([`Count::Exact`]`(0)` when the store left it out).
    pub fn state(&self, state: TaskState) -> Count {
        self.states
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(Count::Exact(0), |(_, c)| *c)
    }
}

/// Live work of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueCounts {
    /// Queue name.
    pub queue: String,
    /// `pending` rows.
    pub pending: Count,
    /// `processing` rows.
    pub processing: Count,
}

impl QueueCounts {
    /// Counts of one queue.
    pub fn new(queue: impl Into<String>, pending: Count, processing: Count) -> Self {
        Self {
            queue: queue.into(),
            pending,
            processing,
        }
    }
}

/// Attempts that ended in one time bucket, across every instance
/// ([`AdminStore::throughput`](super::AdminStore::throughput)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThroughputBucket {
    /// Start of the bucket.
    pub start: DateTime<Utc>,
    /// Tasks that completed.
    pub completed: u64,
    /// Attempts that failed and were scheduled for a retry.
    pub retried: u64,
    /// Tasks that failed for good (dead).
    pub failed: u64,
}

impl ThroughputBucket {
    /// A bucket from its counts.
    pub fn new(start: DateTime<Utc>, completed: u64, retried: u64, failed: u64) -> Self {
        Self {
            start,
            completed,
            retried,
            failed,
        }
    }

    /// Failed attempts (retried or dead) over all ended attempts; 0 when none ended.
    #[allow(clippy::cast_precision_loss)] // a ratio for a chart
    pub fn failure_rate(&self) -> f64 {
        let ended = self.completed + self.retried + self.failed;
        if ended == 0 {
            0.0
        } else {
            (self.retried + self.failed) as f64 / ended as f64
        }
    }
}
