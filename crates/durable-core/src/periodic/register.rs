//! [`Periodic`]: a schedule, the task each occurrence enqueues, and its catch-up policy, as
//! registered with [`Registry::periodic`].

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{CatchUp, Schedule};
use crate::client::{Client, EnqueueOptions};
use crate::error::Result;
use crate::registry::Registry;
use crate::state::TaskState;
use crate::store::NewTask;
use crate::task::Task;
use crate::unique::UniqueKey;

/// One occurrence of a schedule: what the task factory of a [`Periodic`] receives. Put
/// [`at`](Self::at) in the task's fields when the task must know which occurrence it runs
/// for (it is also the row's `run_at`): it is the natural key of the occurrence's work (the
/// report "for 09:00").
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Occurrence {
    /// The schedule's name.
    pub schedule: String,
    /// The occurrence's instant.
    pub at: DateTime<Utc>,
}

impl Occurrence {
    /// The occurrence of `schedule` at `at`.
    pub fn new(schedule: impl Into<String>, at: DateTime<Utc>) -> Self {
        Self {
            schedule: schedule.into(),
            at,
        }
    }
}

type Factory = dyn Fn(&Occurrence, &Client) -> Result<NewTask> + Send + Sync;

/// A periodic task: a [`Schedule`], the task each occurrence enqueues, and a [`CatchUp`]
/// policy. Register it with [`Registry::periodic`].
///
/// Every runtime whose registry holds it runs the schedule; the database decides which
/// instance enqueues each occurrence (exactly one), so any number of instances may run and
/// restart. The schedule's progress is stored under its [`name`](Self::name) (the task's
/// name unless set): two schedules of one task type need two names.
///
/// The first time a schedule's name is seen by the database, it starts from that moment:
/// occurrences before it are not enqueued.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use chrono::{DateTime, Utc};
/// use durable_core::periodic::{CatchUp, Periodic, Schedule};
/// use durable_core::{Registry, Task, TaskContext, TaskError};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct HourlyReport {
///     hour: DateTime<Utc>, // which occurrence this run is for
/// }
///
/// impl Task for HourlyReport {
///     const NAME: &'static str = "hourly_report";
///     type State = ();
///     async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
///         println!("report for {}", self.hour);
///         Ok(())
///     }
/// }
///
/// let registry = Registry::new().register::<HourlyReport>(()).periodic(
///     Periodic::new(Schedule::every(Duration::from_secs(3600)), |o| HourlyReport { hour: o.at })
///         .catch_up(CatchUp::AllUpTo(24)),
/// );
/// assert_eq!(registry.periodic_names(), ["hourly_report"]);
/// ```
#[derive(Clone)]
pub struct Periodic {
    pub(crate) name: String,
    pub(crate) task: &'static str,
    pub(crate) schedule: Schedule,
    pub(crate) catch_up: CatchUp,
    pub(crate) factory: Arc<Factory>,
}

impl Periodic {
    /// Occurrences of `schedule`, each enqueueing the task `make` returns for it; named after
    /// the task type, [`CatchUp::Latest`] unless set.
    pub fn new<T, F>(schedule: Schedule, make: F) -> Self
    where
        T: Task,
        F: Fn(&Occurrence) -> T + Send + Sync + 'static,
    {
        let factory = move |occurrence: &Occurrence, client: &Client| {
            occurrence_row(client, &make(occurrence), occurrence)
        };
        Self {
            name: T::NAME.to_owned(),
            task: T::NAME,
            schedule,
            catch_up: CatchUp::Latest,
            factory: Arc::new(factory),
        }
    }

    /// Occurrences of `schedule`, each enqueueing a copy of `task`.
    pub fn of<T: Task + Clone + Sync>(schedule: Schedule, task: T) -> Self {
        Self::new(schedule, move |_| task.clone())
    }

    /// Sets the name the schedule's progress is stored under (default: the task's name).
    /// Keep it stable: a new name is a new schedule, starting from the moment it is first seen.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets which missed occurrences are enqueued after a downtime.
    #[must_use]
    pub fn catch_up(mut self, policy: CatchUp) -> Self {
        self.catch_up = policy;
        self
    }

    /// The schedule's name.
    pub fn schedule_name(&self) -> &str {
        &self.name
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The catch-up policy.
    pub fn catch_up_policy(&self) -> CatchUp {
        self.catch_up
    }

    /// The row one occurrence enqueues.
    pub(crate) fn row(&self, at: DateTime<Utc>, client: &Client) -> Result<NewTask> {
        (self.factory)(&Occurrence::new(self.name.clone(), at), client)
    }
}

/// The row of one occurrence's task: due at the occurrence's instant. Every occurrence row is
/// built here, so what identifies an occurrence in the table is decided in one place.
fn occurrence_row<T: Task>(client: &Client, task: &T, occurrence: &Occurrence) -> Result<NewTask> {
    // The compare-and-set of the schedule's row makes one instance enqueue each occurrence;
    // the unique key (task type + schedule + instant, held in every state) is the second
    // lock on the same door: an occurrence row can never be stored twice while it exists.
    let key = UniqueKey::new(format!(
        "periodic:{}:{}",
        occurrence.schedule,
        occurrence.at.timestamp_millis()
    ))
    .states(&[
        TaskState::Pending,
        TaskState::Processing,
        TaskState::Completed,
        TaskState::Failed,
        TaskState::Cancelled,
    ]);
    client.prepare(
        task,
        &EnqueueOptions::new().run_at(occurrence.at).unique(key),
    )
}

impl fmt::Debug for Periodic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Periodic")
            .field("name", &self.name)
            .field("task", &self.task)
            .field("schedule", &self.schedule)
            .field("catch_up", &self.catch_up)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Adds a periodic task: every runtime started with this registry enqueues its
    /// occurrences (one instance each, decided by the database). Register the task type
    /// itself with [`register`](Self::register) on the instances that run it.
    ///
    /// # Panics
    ///
    /// If a periodic task of the same [name](Periodic::name) was already added.
    #[must_use]
    pub fn periodic(mut self, periodic: Periodic) -> Self {
        assert!(
            self.periodic.iter().all(|p| p.name != periodic.name),
            "periodic schedule `{}` added twice: give the second one another name with \
             `Periodic::name`",
            periodic.name
        );
        self.periodic.push(Arc::new(periodic));
        self
    }

    /// The names of the periodic schedules, in the order they were added.
    pub fn periodic_names(&self) -> Vec<&str> {
        self.periodic.iter().map(|p| p.name.as_str()).collect()
    }
}
