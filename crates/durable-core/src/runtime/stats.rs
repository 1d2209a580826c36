//! What a runtime counts while it runs.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of what a runtime did since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Attempts that completed.
    pub completed: u64,
    /// Failed attempts put back for a retry.
    pub retried: u64,
    /// Tasks marked `failed`.
    pub failed: u64,
    /// Stale writes rejected by fencing.
    pub stale_writes: u64,
    /// Tasks dispatched locally right after their insert, without a claim.
    pub dispatched_locally: u64,
    /// Tasks claimed from the store.
    pub claimed: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(super) completed: AtomicU64,
    pub(super) retried: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) stale: AtomicU64,
    pub(super) local: AtomicU64,
    pub(super) claimed: AtomicU64,
}

impl Stats {
    pub(crate) fn completed(&self) {
        self.completed.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn stale(&self) {
        self.stale.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn snapshot(&self) -> RuntimeStats {
        RuntimeStats {
            completed: self.completed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            stale_writes: self.stale.load(Ordering::Relaxed),
            dispatched_locally: self.local.load(Ordering::Relaxed),
            claimed: self.claimed.load(Ordering::Relaxed),
        }
    }
}
