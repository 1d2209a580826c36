//! Periodic tasks: a [`Schedule`] ([`Schedule::every`] a period, or [`Schedule::cron`] in a
//! time zone) that enqueues a task at each occurrence, registered with
//! [`Registry::periodic`](crate::Registry::periodic).
//!
//! # Exactly once per occurrence, without a leader
//!
//! Every runtime runs every schedule it registered. A schedule's progress is one row in the
//! store (`durable_schedules`: the time through which its occurrences were handled); when an
//! occurrence falls due (by the **store's** clock, so instances with skewed clocks agree),
//! each instance tries to move that row from the value it read to the new occurrence, and
//! to insert the occurrence's task **in the same transaction**. One instance wins the
//! compare-and-set; the others change nothing. No leader is elected, so none can be lost,
//! doubled or stuck across restarts: an occurrence is enqueued once as long as one instance
//! runs, and one that falls due while none runs is handled by the first to start, according
//! to the schedule's [`CatchUp`] policy.
//!
//! A schedule seen by the store for the first time starts from that moment (nothing before
//! it is enqueued). The task of an occurrence is due at the occurrence's instant and runs
//! like any task: at least once, retried per its options.
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use durable_core::periodic::{CatchUp, Periodic, Schedule};
//! use durable_core::store::Store;
//! use durable_core::{Registry, Runtime, Task, TaskContext, TaskError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! struct PurgeSessions;
//!
//! impl Task for PurgeSessions {
//!     const NAME: &'static str = "purge_sessions";
//!     type State = ();
//!     async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
//!         Ok(())
//!     }
//! }
//!
//! # async fn demo(store: impl Store) -> durable_core::Result<()> {
//! let nightly = Schedule::cron("30 2 * * *", chrono_tz::Europe::Berlin)?;
//! let registry = Registry::new()
//!     .register::<PurgeSessions>(())
//!     .periodic(Periodic::of(nightly, PurgeSessions).catch_up(CatchUp::Latest));
//! let runtime = Runtime::builder(store, registry).start();
//! # runtime.shutdown(Duration::from_secs(1)).await;
//! # Ok(()) }
//! ```

mod register;
mod schedule;
#[cfg(test)]
mod tests;

pub use register::{Occurrence, Periodic};
pub use schedule::{CatchUp, Schedule, MAX_CATCH_UP, SKIP_TOLERANCE};

/// The time-zone database schedules are read in (`chrono_tz::Europe::Paris`...).
pub use chrono_tz;
