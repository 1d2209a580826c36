//! A store wrapper that counts what the runtime asks of the store and can hold a claim in
//! flight: for the cases about how often the runtime calls the store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use durable_core::store::{
    async_trait, CommitMode, Fence, RescueReport, Store, Wakeups, WorkerStore, WriteBatch,
    WriteOutcome,
};
use durable_core::TaskId;

/// Counts every store call, to measure what an idle runtime costs, and the claims and the
/// claims that found rows; optionally holds a claim back after it ran (see
/// [`ClaimHold`]) or slows every claim down (a database slow to answer).
#[derive(Debug)]
pub(super) struct Counting {
    pub(super) inner: Arc<dyn Store>,
    pub(super) calls: AtomicU64,
    /// Writes that carried a claim.
    pub(super) claims: AtomicU64,
    /// Of those, the claims that returned rows: a counter of its own, so that a reader never
    /// sees a claim counted whose rows are not yet (two counters read apart can disagree
    /// while a claim is being counted).
    pub(super) claims_with_rows: AtomicU64,
    /// The largest number of rows a claim asked for.
    pub(super) largest_claim: AtomicU64,
    pub(super) hold: Option<Arc<ClaimHold>>,
    /// How long every claim takes beyond its statement.
    pub(super) claim_delay: Duration,
}

impl Counting {
    pub(super) fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            calls: AtomicU64::new(0),
            claims: AtomicU64::new(0),
            claims_with_rows: AtomicU64::new(0),
            largest_claim: AtomicU64::new(0),
            hold: None,
            claim_delay: Duration::ZERO,
        }
    }

    pub(super) fn holding(inner: Arc<dyn Store>, hold: Arc<ClaimHold>) -> Self {
        Self {
            hold: Some(hold),
            ..Self::new(inner)
        }
    }

    pub(super) fn slow_claims(inner: Arc<dyn Store>, delay: Duration) -> Self {
        Self {
            claim_delay: delay,
            ..Self::new(inner)
        }
    }
}

/// Once armed, the next claim runs its statement, then waits for `release` before it
/// returns: a claim in flight whose snapshot predates what the test commits meanwhile.
#[derive(Debug, Default)]
pub(super) struct ClaimHold {
    pub(super) armed: std::sync::atomic::AtomicBool,
    pub(super) entered: tokio::sync::Notify,
    pub(super) release: tokio::sync::Notify,
}

#[async_trait]
impl WorkerStore for Counting {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn commit_mode(&self) -> CommitMode {
        self.inner.commit_mode()
    }
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.now()
    }
    fn wakeups(&self) -> Wakeups {
        self.inner.wakeups()
    }
    async fn write(&self, batch: WriteBatch<'_>) -> WriteOutcome {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let outcome = self.inner.write(batch).await;
        if let Some(claim) = batch.claim {
            tokio::time::sleep(self.claim_delay).await;
            self.claims.fetch_add(1, Ordering::SeqCst);
            self.largest_claim
                .fetch_max(claim.limit as u64, Ordering::SeqCst);
            if outcome.claimed.as_ref().is_ok_and(|rows| !rows.is_empty()) {
                self.claims_with_rows.fetch_add(1, Ordering::SeqCst);
            }
        }
        if let Some(hold) = batch.claim.and(self.hold.as_ref()) {
            if hold.armed.swap(false, Ordering::SeqCst) {
                hold.entered.notify_one();
                hold.release.notified().await;
            }
        }
        outcome
    }
    async fn heartbeat(&self, f: &[Fence], l: Duration) -> durable_core::Result<Vec<Fence>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.heartbeat(f, l).await
    }
    async fn cancel_requested(&self, held: &[Fence]) -> durable_core::Result<Vec<TaskId>> {
        self.inner.cancel_requested(held).await
    }
    async fn mark_started(&self, f: &Fence) -> durable_core::Result<bool> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.mark_started(f).await
    }
    async fn check_enqueue(&self) -> durable_core::Result<()> {
        self.inner.check_enqueue().await
    }
    async fn rescue_expired(&self) -> durable_core::Result<RescueReport> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.rescue_expired().await
    }
    async fn backlog(&self) -> durable_core::Result<u64> {
        self.inner.backlog().await
    }
    async fn unclaimable(
        &self,
        known: &[String],
        waiting: Duration,
    ) -> durable_core::Result<Vec<(String, u64)>> {
        self.inner.unclaimable(known, waiting).await
    }
}

super::forward::forward_admin_store!(Counting);
super::forward::forward_step_and_schedule_stores!(Counting);
