//! Runtime settings and their defaults.

use std::collections::HashMap;
use std::time::Duration;

/// Settings of a [`Runtime`](super::Runtime); set through [`RuntimeBuilder`](super::RuntimeBuilder).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) concurrency: usize,
    pub(crate) queue_limits: HashMap<String, usize>,
    pub(crate) lease: Duration,
    pub(crate) heartbeat: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) rescue_interval: Duration,
    pub(crate) retention: Option<Duration>,
    pub(crate) prune_interval: Duration,
    pub(crate) prune_batch: u32,
    pub(crate) cancel_grace: Duration,
    pub(crate) local_dispatch: bool,
}

impl Default for Config {
    fn default() -> Self {
        let lease = Duration::from_secs(30);
        Self {
            concurrency: 64,
            queue_limits: HashMap::new(),
            lease,
            heartbeat: lease / 3,
            poll_interval: Duration::from_secs(2),
            rescue_interval: lease / 4,
            retention: Some(Duration::from_secs(24 * 3600)),
            prune_interval: Duration::from_secs(60),
            prune_batch: 1000,
            cancel_grace: Duration::from_millis(500),
            local_dispatch: true,
        }
    }
}

impl Config {
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
        let mut config = Config::default();
        assert!(config.check().is_ok());
        config.heartbeat = config.lease;
        assert!(config.check().is_err());
        config.heartbeat = config.lease / 2;
        assert!(config.check().is_ok());
    }
}
