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
