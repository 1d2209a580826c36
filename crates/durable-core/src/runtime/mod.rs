//! The worker runtime: claims due tasks, runs them on a [`TaskTracker`], keeps their leases
//! alive, records outcomes, and hands unfinished work back on shutdown.
//!
//! [`TaskTracker`]: tokio_util::task::TaskTracker

mod ahead;
mod alert;
mod builder;
mod cancel;
mod dispatch;
mod execute;
mod handle;
mod loops;
mod observe;
mod reporting;
mod scheduler;
mod settings;
mod settle;
mod shared;
mod shutdown;
mod slots;
mod stats;
mod throughput;
mod ticker;
mod written;

pub use ahead::{ClaimAhead, ParseClaimAheadError};
pub use alert::{AlertFuture, AlertKind, TaskEvent, ALERT_QUEUE};
pub use builder::RuntimeBuilder;
pub use handle::Runtime;
pub use settings::Settings;
pub use shutdown::ShutdownReport;
pub use stats::RuntimeStats;

pub(crate) use observe::{count_enqueued, enqueue_labels};
