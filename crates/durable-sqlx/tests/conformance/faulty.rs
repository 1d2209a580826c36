//! A store decorator whose writes can be made to fail, hang or wait, for the runtime's
//! cases outside the happy paths, and the task those cases keep running.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use durable_core::store::{
    async_trait, CommitMode, Fence, Outcome, RescueReport, Store, WorkerStore, WriteBatch,
    WriteOutcome,
};
use durable_core::{Task, TaskContext, TaskError, TaskId};
use serde::{Deserialize, Serialize};

use super::tasks::Probe;

/// A store whose heartbeats can be switched off (they report every lease held without
/// writing), and whose outcome writes can be made to hang.
#[derive(Debug)]
pub struct Faulty {
    inner: Arc<dyn Store>,
    pub skip_heartbeats: AtomicBool,
    /// Writes that record an attempt's outcome hang while set (for a minute, whatever
    /// happens to the flag meanwhile: a write stuck on its connection).
    pub hang_outcomes: AtomicBool,
    /// Outcomes in the writes that hung so far.
    hung: AtomicU32,
    /// Writes that only hand attempts back hang while set.
    hang_hand_backs: AtomicBool,
    /// Every write takes this many milliseconds more.
    slow_writes_ms: AtomicU64,
    /// Writes made slow so far.
    slowed: AtomicU32,
    /// Inserts wait here while set; `held` tells that one is waiting.
    pub hold_inserts: AtomicBool,
    /// Writer cycles carrying a claim wait here while set.
    pub hold_claims: AtomicBool,
    pub held: AtomicBool,
    pub release: tokio::sync::Notify,
}

impl Faulty {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            skip_heartbeats: AtomicBool::new(false),
            hang_outcomes: AtomicBool::new(false),
            hung: AtomicU32::new(0),
            hang_hand_backs: AtomicBool::new(false),
            slow_writes_ms: AtomicU64::new(0),
            slowed: AtomicU32::new(0),
            hold_inserts: AtomicBool::new(false),
            hold_claims: AtomicBool::new(false),
            held: AtomicBool::new(false),
            release: tokio::sync::Notify::new(),
        })
    }

    /// From now on, a write that only hands attempts back (shutdown's requeue) hangs.
    pub fn hang_hand_backs(&self) {
        self.hang_hand_backs.store(true, Ordering::SeqCst);
    }

    /// From now on, every write takes `by` more (a database committing slowly).
    pub fn slow_writes(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.slow_writes_ms.store(ms, Ordering::SeqCst);
    }

    /// How many writes were made slow so far.
    pub fn slowed(&self) -> u32 {
        self.slowed.load(Ordering::SeqCst)
    }

    /// How many outcomes the writes that hung so far carried.
    pub fn hung(&self) -> u32 {
        self.hung.load(Ordering::SeqCst)
    }

    async fn maybe_hang(&self, outcomes: usize) {
        if self.hang_outcomes.load(Ordering::SeqCst) {
            let outcomes = u32::try_from(outcomes).unwrap_or(u32::MAX);
            self.hung.fetch_add(outcomes, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    }
}

#[async_trait]
impl WorkerStore for Faulty {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.now()
    }

    fn commit_mode(&self) -> CommitMode {
        self.inner.commit_mode()
    }
    async fn heartbeat(&self, held: &[Fence], lease: Duration) -> durable_core::Result<Vec<Fence>> {
        if self.skip_heartbeats.load(Ordering::SeqCst) {
            return Ok(held.to_vec());
        }
        self.inner.heartbeat(held, lease).await
    }
    async fn cancel_requested(&self, held: &[Fence]) -> durable_core::Result<Vec<TaskId>> {
        self.inner.cancel_requested(held).await
    }

    async fn mark_started(&self, fence: &Fence) -> durable_core::Result<bool> {
        self.inner.mark_started(fence).await
    }
    async fn check_enqueue(&self) -> durable_core::Result<()> {
        self.inner.check_enqueue().await
    }
    async fn rescue_expired(&self) -> durable_core::Result<RescueReport> {
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
    async fn write(&self, batch: WriteBatch<'_>) -> WriteOutcome {
        let slow = self.slow_writes_ms.load(Ordering::SeqCst);
        if slow > 0 {
            tokio::time::sleep(Duration::from_millis(slow)).await;
            self.slowed.fetch_add(1, Ordering::SeqCst);
        }
        let hands_back = batch
            .settle
            .iter()
            .all(|s| matches!(s.outcome, Outcome::Requeued));
        if !batch.complete.is_empty() || (!batch.settle.is_empty() && !hands_back) {
            self.maybe_hang(batch.complete.len() + batch.settle.len())
                .await;
        }
        if !batch.settle.is_empty() && hands_back && self.hang_hand_backs.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        let hold = (!batch.insert.is_empty() && self.hold_inserts.load(Ordering::SeqCst))
            || (batch.claim.is_some() && self.hold_claims.load(Ordering::SeqCst));
        if hold {
            let released = self.release.notified();
            self.held.store(true, Ordering::SeqCst);
            released.await;
        }
        self.inner.write(batch).await
    }
}

super::forward::forward_admin_store!(Faulty);
super::forward::forward_step_and_schedule_stores!(Faulty);

/// Sleeps until cancelled (or a minute) on its first attempt; later attempts finish at once.
#[derive(Debug, Serialize, Deserialize)]
pub struct Sticky;

impl Task for Sticky {
    const NAME: &'static str = "sticky";
    type State = Probe;
    async fn run(self, cx: TaskContext<Probe>) -> Result<(), TaskError> {
        if cx.attempt() == 1 {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(60)) => {}
                () = cx.cancelled() => return Err(TaskError::retryable("stopped")),
            }
        }
        Ok(())
    }
}
