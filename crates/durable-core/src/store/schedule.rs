//! [`ScheduleStore`]: the part of the worker protocol that periodic schedules need — the
//! store's clock, and a compare-and-set of a schedule's progress that inserts the occurrences'
//! tasks in the same transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::NewTask;
use crate::error::Result;

/// A schedule's stored progress: a row of `durable_schedules`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScheduleRow {
    /// The schedule's stable name.
    pub name: String,
    /// Every occurrence at or before this time was handled (enqueued, or skipped by the
    /// catch-up policy); the next one to enqueue is strictly after it.
    pub enqueued_through: DateTime<Utc>,
    /// The schedule's description when it last advanced (`every 1s`, `cron 0 9 * * * in
    /// Europe/Paris`): for operators, and to notice that a deploy changed it.
    pub spec: String,
    /// When the row last changed, by the store's clock.
    pub updated_at: DateTime<Utc>,
}

impl ScheduleRow {
    /// A row as a store reads it.
    pub fn new(
        name: impl Into<String>,
        enqueued_through: DateTime<Utc>,
        spec: impl Into<String>,
        updated_at: DateTime<Utc>,
    ) -> Self {
        Self {
            name: name.into(),
            enqueued_through,
            spec: spec.into(),
            updated_at,
        }
    }
}

/// One step of a schedule ([`ScheduleStore::advance_schedule`]): move its row from `from` to
/// `to` and insert `tasks`, in one transaction, only if the row still says `from`.
///
/// # Examples
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use durable_core::store::{NewTask, ScheduleAdvance};
///
/// let at = Utc.timestamp_millis_opt(1_000).unwrap();
/// let rows = [NewTask::new("digest", "{}").with_run_at(at)];
/// // A schedule seen for the first time starts at `at`, enqueueing nothing.
/// let first = ScheduleAdvance::new("digest", None, at, "every 1s");
/// assert!(first.tasks.is_empty());
/// let next = ScheduleAdvance::new("digest", Some(at), at, "every 1s").tasks(&rows);
/// assert_eq!(next.tasks.len(), 1);
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ScheduleAdvance<'a> {
    /// The schedule's name (the row's key).
    pub name: &'a str,
    /// The `enqueued_through` the caller read; `None`: the row did not exist, and is created.
    pub from: Option<DateTime<Utc>>,
    /// The new `enqueued_through`.
    pub to: DateTime<Utc>,
    /// The schedule's description, stored with the row.
    pub spec: &'a str,
    /// The occurrences' tasks, inserted only if the row moved.
    pub tasks: &'a [NewTask],
}

impl<'a> ScheduleAdvance<'a> {
    /// Moves `name` from `from` to `to`, inserting no task (set them with
    /// [`tasks`](Self::tasks)).
    pub fn new(
        name: &'a str,
        from: Option<DateTime<Utc>>,
        to: DateTime<Utc>,
        spec: &'a str,
    ) -> Self {
        Self {
            name,
            from,
            to,
            spec,
            tasks: &[],
        }
    }

    /// Sets the tasks inserted with the move.
    #[must_use]
    pub fn tasks(mut self, tasks: &'a [NewTask]) -> Self {
        self.tasks = tasks;
        self
    }
}

/// The store's side of periodic schedules: its clock and a compare-and-set of a schedule's
/// row. Every instance of an application runs every schedule; the compare-and-set makes
/// exactly one of them enqueue each occurrence, with no leader to elect or lose.
///
/// Part of [`WorkerStore`](super::WorkerStore) (a supertrait): a runtime's scheduler loop is
/// its only caller.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// The store's current time: the database's clock for a server (PostgreSQL `now()`), so
    /// instances whose clocks disagree compute the same due occurrences.
    async fn database_now(&self) -> Result<DateTime<Utc>>;

    /// The rows of the schedules named in `names` that exist (in no particular order).
    async fn schedules(&self, names: &[String]) -> Result<Vec<ScheduleRow>>;

    /// In one transaction: moves the schedule's row from `advance.from` to `advance.to`
    /// (creates it when `from` is `None`), and inserts `advance.tasks`. Returns `false`, and
    /// writes nothing, when the row no longer says `from` (or, for `None`, already exists):
    /// another instance advanced it first.
    async fn advance_schedule(&self, advance: ScheduleAdvance<'_>) -> Result<bool>;
}
