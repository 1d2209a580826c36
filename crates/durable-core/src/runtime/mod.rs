//! The worker runtime: claims due tasks, runs them on a [`TaskTracker`], keeps their leases
//! alive, records outcomes, and hands unfinished work back on shutdown.
//!
//! [`TaskTracker`]: tokio_util::task::TaskTracker

mod builder;
mod cancel;
mod dispatch;
mod execute;
mod handle;
mod loops;
mod scheduler;
mod settings;
mod shared;
mod shutdown;
mod slots;
mod stats;
mod written;

pub use builder::RuntimeBuilder;
pub use handle::Runtime;
pub use settings::Settings;
pub use shutdown::ShutdownReport;
pub use stats::RuntimeStats;
