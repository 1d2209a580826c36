//! What a storage backend implements, and the values that cross that seam.
//!
//! A backend implements two traits:
//!
//! - [`WorkerStore`], the **worker protocol**: what a [`Runtime`](crate::Runtime) and its
//!   client's writer need — write cycles ([`WorkerStore::write`]: inserts, outcomes and a
//!   claim), leases (heartbeats, the start mark of a last attempt, the sweep of expired
//!   ones), the backlog and cross-process wakeups — and, through its supertrait
//!   [`ScheduleStore`], the store's clock and the progress of periodic schedules;
//! - [`AdminStore`], **inspection and administration**: migrations, reading rows and
//!   counts and statistics, the operator's actions (retry, cancel, delete, requeue),
//!   pruning;
//! - [`StepStore`], the **checkpoints of steps** ([`TaskContext::step`](crate::TaskContext::step)).
//!
//! Together they make a [`Store`], the bound applications use (`Runtime::builder(store, ..)`,
//! `Client::new(store)`); it is implemented for every type that implements both.
//! `durable-sqlx` provides SQLite and PostgreSQL backends; its conformance suite pins the
//! behaviour every backend must have.

mod action;
mod admin;
mod batch;
mod cancel;
mod claim;
mod idempotency;
mod list;
mod record;
mod rows;
mod schedule;
mod shared;
mod stats;
mod steps;
mod worker;

pub use action::{ActionOutcome, RetryFailed, Seen, StuckQuery};
pub use admin::AdminStore;
pub use batch::{Outcome, Settle, WriteBatch, WriteOutcome};
pub use cancel::CancelOutcome;
pub use claim::{ClaimRequest, Fence, Maintenance, RescueReport, REQUEUE_LIMIT, UNCLAIMABLE_SCAN};
pub use idempotency::{KeyClaim, KeyTake, ResponseRecord, StoredResponse};
pub use list::{ListQuery, Page, MAX_LIST_LIMIT, SEARCH_SCAN};
pub use record::{AttemptError, StateCounts, TaskRecord, MAX_ERRORS};
pub use rows::{ClaimedTask, LocalClaim, NewTask, DEFAULT_QUEUE};
pub use schedule::{ScheduleAdvance, ScheduleRow, ScheduleStore};
pub use stats::{Count, QueueCounts, Stats, ThroughputBucket, COUNT_BOUND};
pub use steps::{StepRecord, StepStore};
pub use worker::{CommitMode, Wakeup, Wakeups, WorkerStore};

pub use crate::unique::UniqueRow;

/// Re-exported so backends implement [`WorkerStore`] and [`AdminStore`] with the same macro.
pub use async_trait::async_trait;

/// A complete storage backend: the worker protocol, administration and step checkpoints.
/// Implemented for every type that implements [`WorkerStore`], [`AdminStore`] and
/// [`StepStore`]; use it as the bound of code that takes any store.
///
/// # Examples
///
/// ```no_run
/// use durable_core::store::Store;
///
/// async fn prepare(store: &impl Store) -> durable_core::Result<()> {
///     store.migrate().await?; // an `AdminStore` method, reachable through the bound
///     println!("{} tasks waiting", store.backlog().await?);
///     Ok(())
/// }
/// ```
pub trait Store: WorkerStore + AdminStore + StepStore {}

impl<T: WorkerStore + AdminStore + StepStore> Store for T {}
