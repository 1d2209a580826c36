//! [`Settings`]: a runtime's effective settings, and their defaults.

use std::collections::HashMap;
use std::time::Duration;

/// The settings a [`Runtime`](super::Runtime) runs with: set through
/// [`RuntimeBuilder`](super::RuntimeBuilder), read from [`Runtime::settings`](super::Runtime::settings)
/// (to log them, or to check what a deploy really runs with).
///
/// # Examples
///
/// ```no_run
/// # fn demo(runtime: durable_core::Runtime) {
/// let settings = runtime.settings();
/// println!("{} slots, lease {:?}", settings.concurrency, settings.lease);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// Most attempts running at once (default 64).
    pub concurrency: usize,
    /// Most attempts running at once per queue, for the queues that have a limit.
    pub queue_limits: HashMap<String, usize>,
    /// How many claimed tasks are held beyond the running ones, waiting for a slot (default
    /// [`ClaimAhead::Auto`](super::ClaimAhead::Auto)).
    pub claim_ahead: super::ClaimAhead,
    /// How long a claimed attempt is owned without a heartbeat (default 30 s).
    pub lease: Duration,
    /// How often running attempts' leases are renewed (default a third of the lease).
    pub heartbeat: Duration,
    /// How often the runtime looks for due tasks when nothing wakes it (default 2 s).
    pub poll_interval: Duration,
    /// How often expired leases are swept (default a quarter of the lease; after a sweep
    /// that took longer than a twentieth of this, twenty times its duration).
    pub rescue_interval: Duration,
    /// How long `completed` and `cancelled` rows are kept (default 24 h; `None`: forever).
    pub retention: Option<Duration>,
    /// How often old rows are pruned (default 60 s).
    pub prune_interval: Duration,
    /// Most rows deleted per prune statement (default 1,000).
    pub prune_batch: u32,
    /// How often the store's housekeeping runs ([`WorkerStore::maintain`](crate::store::WorkerStore::maintain):
    /// on PostgreSQL, a `VACUUM` of the live partition when it needs one); default 1 s,
    /// `None`: never (leave it to autovacuum).
    pub maintain_interval: Option<Duration>,
    /// How long shutdown waits for cancelled attempts to return (default 500 ms).
    pub cancel_grace: Duration,
    /// Whether fresh tasks with free slots are inserted already claimed and start at once
    /// (default on).
    pub local_dispatch: bool,
    /// The attempt number whose failure (with attempts left) raises an
    /// [`AlertKind::Retrying`](super::AlertKind::Retrying) event (default: none).
    pub alert_after_attempts: Option<u32>,
    /// How often the `durable_tasks{state}` gauges are refreshed from the store's
    /// [`stats`](crate::store::AdminStore::stats) (default 15 s; `None`: never). Used with the
    /// `metrics` feature only.
    pub stats_interval: Option<Duration>,
    /// How often the counts of ended attempts per minute are added to the store's
    /// throughput (default 10 s; also once at shutdown).
    pub throughput_flush: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        let lease = Duration::from_secs(30);
        Self {
            concurrency: 64,
            queue_limits: HashMap::new(),
            claim_ahead: super::ClaimAhead::Auto,
            lease,
            heartbeat: lease / 3,
            poll_interval: Duration::from_secs(2),
            rescue_interval: lease / 4,
            retention: Some(Duration::from_secs(24 * 3600)),
            prune_interval: Duration::from_secs(60),
            prune_batch: 1000,
            maintain_interval: Some(Duration::from_secs(1)),
            cancel_grace: Duration::from_millis(500),
            local_dispatch: true,
            alert_after_attempts: None,
            stats_interval: Some(Duration::from_secs(15)),
            throughput_flush: Duration::from_secs(10),
        }
    }
}

impl Settings {
    /// Refuses settings under which running attempts would lose their leases while healthy:
    /// a heartbeat that does not come well within the lease.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.heartbeat.saturating_mul(2) > self.lease {
            return Err(format!(
                "heartbeat interval {:?} must be at most half the lease {:?}: a lease renewed \
                 less often expires under healthy attempts, and another worker runs them again \
                 (default heartbeat: a third of the lease)",
                self.heartbeat, self.lease
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_must_come_well_within_the_lease() {
        let mut config = Settings::default();
        assert!(config.check().is_ok());
        config.heartbeat = config.lease;
        assert!(config.check().is_err());
        config.heartbeat = config.lease / 2;
        assert!(config.check().is_ok());
    }
}
