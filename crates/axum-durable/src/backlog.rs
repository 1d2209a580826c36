//! Load shedding on the pending backlog, for `DurableLayer::max_backlog`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use durable_core::Client;

/// A cached count of pending tasks, refreshed in the background so the request path never
/// waits for a `COUNT`.
#[derive(Debug)]
pub(crate) struct Backlog {
    limit: u64,
    every: Duration,
    pending: AtomicU64,
    refreshed: Mutex<Option<Instant>>,
    refreshing: AtomicBool,
}

impl Backlog {
    pub(crate) fn new(limit: u64, every: Duration) -> Arc<Self> {
        Arc::new(Self {
            limit,
            every,
            pending: AtomicU64::new(0),
            refreshed: Mutex::new(None),
            refreshing: AtomicBool::new(false),
        })
    }

    /// Whether the last known backlog is over the limit; starts a refresh when stale.
    pub(crate) fn over_limit(self: &Arc<Self>, client: &Client) -> bool {
        let stale = self
            .refreshed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none_or(|at| at.elapsed() >= self.every);
        if stale && !self.refreshing.swap(true, Ordering::AcqRel) {
            let this = Arc::clone(self);
            let store = Arc::clone(client.store());
            tokio::spawn(async move {
                match store.backlog().await {
                    Ok(n) => this.pending.store(n, Ordering::Relaxed),
                    Err(error) => tracing::warn!(%error, "could not count the pending backlog"),
                }
                *this
                    .refreshed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
                this.refreshing.store(false, Ordering::Release);
            });
        }
        self.pending.load(Ordering::Relaxed) > self.limit
    }

    pub(crate) fn retry_after_secs(&self) -> u64 {
        self.every.as_secs().max(1)
    }
}
