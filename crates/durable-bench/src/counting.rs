//! A store decorator counting the calls made to the store (and the rows they carried),
//! to see where a runtime's database traffic goes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use durable_core::store::{
    async_trait, AdminStore, CancelOutcome, CommitMode, Fence, KeyClaim, KeyTake, ListQuery,
    Outcome, RescueReport, StateCounts, Store, TaskRecord, Wakeups, WorkerStore, WriteBatch,
    WriteOutcome,
};
use durable_core::TaskId;

/// Calls and rows of one store method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Calls made.
    pub(crate) calls: u64,
    /// Rows passed in (insert, heartbeat, complete, requeue) or returned (claim).
    pub(crate) rows: u64,
}

/// Delegates every method to the wrapped store, counting calls per method.
#[derive(Debug)]
pub(crate) struct CountingStore {
    inner: Arc<dyn Store>,
    calls: AtomicU64,
    by_method: Mutex<HashMap<&'static str, Tally>>,
}

impl CountingStore {
    /// Wraps `inner`.
    pub(crate) fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            calls: AtomicU64::new(0),
            by_method: Mutex::new(HashMap::new()),
        }
    }

    fn count(&self, method: &'static str, rows: usize) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.tally_part(method, rows);
    }

    /// Tallies a part of a `write` under its own name without counting another call: the
    /// write is one call to the store.
    fn tally_part(&self, method: &'static str, rows: usize) {
        let mut map = self
            .by_method
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let tally = map.entry(method).or_default();
        tally.calls += 1;
        tally.rows += rows as u64;
    }

    /// Calls so far, all methods.
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Calls and rows so far per method.
    pub(crate) fn by_method(&self) -> HashMap<&'static str, Tally> {
        self.by_method
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The tally of one method.
    pub(crate) fn tally(&self, method: &str) -> Tally {
        self.by_method
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(method)
            .copied()
            .unwrap_or_default()
    }
}

#[async_trait]
impl WorkerStore for CountingStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.now()
    }

    fn commit_mode(&self) -> CommitMode {
        self.inner.commit_mode()
    }

    fn wakeups(&self) -> Wakeups {
        self.inner.wakeups()
    }

    /// One call; its parts are tallied under their own names (insert, complete, retry,
    /// fail, requeue, claim) so the rows per kind of write stay visible.
    async fn write(&self, batch: WriteBatch<'_>) -> WriteOutcome {
        self.count("write", 0);
        if !batch.insert.is_empty() {
            self.tally_part("insert", batch.insert.len());
        }
        if !batch.complete.is_empty() {
            self.tally_part("complete", batch.complete.len());
        }
        for settle in batch.settle {
            let part = match settle.outcome {
                Outcome::Retry { .. } => "retry",
                Outcome::Failed { .. } => "fail",
                _ => "requeue",
            };
            self.tally_part(part, 1);
        }
        let outcome = self.inner.write(batch).await;
        if batch.claim.is_some_and(|c| c.limit > 0) {
            self.tally_part("claim", outcome.claimed.as_ref().map_or(0, Vec::len));
        }
        outcome
    }

    async fn heartbeat(&self, held: &[Fence], lease: Duration) -> durable_core::Result<Vec<Fence>> {
        self.count("heartbeat", held.len());
        self.inner.heartbeat(held, lease).await
    }

    async fn cancel_requested(&self, held: &[Fence]) -> durable_core::Result<Vec<TaskId>> {
        self.count("cancel_requested", held.len());
        self.inner.cancel_requested(held).await
    }

    async fn mark_started(&self, fence: &Fence) -> durable_core::Result<bool> {
        self.count("mark_started", 1);
        self.inner.mark_started(fence).await
    }

    async fn check_enqueue(&self) -> durable_core::Result<()> {
        self.inner.check_enqueue().await
    }

    async fn rescue_expired(&self) -> durable_core::Result<RescueReport> {
        self.count("rescue_expired", 0);
        self.inner.rescue_expired().await
    }

    async fn maintain(&self) -> durable_core::Result<durable_core::store::Maintenance> {
        self.count("maintain", 0);
        self.inner.maintain().await
    }

    async fn backlog(&self) -> durable_core::Result<u64> {
        self.count("backlog", 0);
        self.inner.backlog().await
    }

    async fn unclaimable(
        &self,
        known: &[String],
        waiting: Duration,
    ) -> durable_core::Result<Vec<(String, u64)>> {
        self.count("unclaimable", 0);
        self.inner.unclaimable(known, waiting).await
    }

    async fn take_key(&self, take: &KeyTake) -> durable_core::Result<KeyClaim> {
        self.count("take_key", 0);
        self.inner.take_key(take).await
    }

    async fn release_key(&self, key_hash: &str, token: &str) -> durable_core::Result<bool> {
        self.count("release_key", 0);
        self.inner.release_key(key_hash, token).await
    }

    async fn purge_keys(&self, limit: u32) -> durable_core::Result<u64> {
        self.count("purge_keys", 0);
        self.inner.purge_keys(limit).await
    }
}

#[async_trait]
impl AdminStore for CountingStore {
    async fn stats(&self) -> durable_core::Result<durable_core::store::Stats> {
        self.inner.stats().await
    }
    async fn state_stats(
        &self,
    ) -> durable_core::Result<Vec<(durable_core::TaskState, durable_core::store::Count)>> {
        self.inner.state_stats().await
    }
    async fn throughput(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> durable_core::Result<Vec<durable_core::store::ThroughputBucket>> {
        self.inner.throughput(since).await
    }
    async fn add_throughput(
        &self,
        worker: durable_core::WorkerId,
        buckets: &[durable_core::store::ThroughputBucket],
    ) -> durable_core::Result<()> {
        self.inner.add_throughput(worker, buckets).await
    }
    async fn retry(
        &self,
        id: TaskId,
        seen: Option<durable_core::store::Seen>,
    ) -> durable_core::Result<durable_core::store::ActionOutcome> {
        self.inner.retry(id, seen).await
    }
    async fn retry_failed(
        &self,
        which: &durable_core::store::RetryFailed,
    ) -> durable_core::Result<u64> {
        self.inner.retry_failed(which).await
    }
    async fn delete(
        &self,
        id: TaskId,
        seen: Option<durable_core::store::Seen>,
    ) -> durable_core::Result<durable_core::store::ActionOutcome> {
        self.inner.delete(id, seen).await
    }
    async fn requeue(
        &self,
        id: TaskId,
        seen: Option<durable_core::store::Seen>,
    ) -> durable_core::Result<durable_core::store::ActionOutcome> {
        self.inner.requeue(id, seen).await
    }
    async fn requeue_stuck(
        &self,
        which: &durable_core::store::StuckQuery,
    ) -> durable_core::Result<u64> {
        self.inner.requeue_stuck(which).await
    }

    async fn migrate(&self) -> durable_core::Result<()> {
        self.count("migrate", 0);
        self.inner.migrate().await
    }

    async fn cancel(&self, id: TaskId) -> durable_core::Result<CancelOutcome> {
        self.count("cancel", 1);
        self.inner.cancel(id).await
    }

    async fn prune(&self, older_than: Duration, limit: u32) -> durable_core::Result<u64> {
        self.count("prune", 0);
        self.inner.prune(older_than, limit).await
    }

    async fn get(&self, id: TaskId) -> durable_core::Result<Option<TaskRecord>> {
        self.count("get", 1);
        self.inner.get(id).await
    }

    async fn list(&self, query: &ListQuery) -> durable_core::Result<durable_core::store::Page> {
        self.count("list", 0);
        self.inner.list(query).await
    }
    async fn counts(&self) -> durable_core::Result<StateCounts> {
        self.count("counts", 0);
        self.inner.counts().await
    }
}

#[async_trait]
impl durable_core::store::StepStore for CountingStore {
    async fn steps(
        &self,
        id: TaskId,
    ) -> durable_core::Result<Vec<durable_core::store::StepRecord>> {
        self.inner.steps(id).await
    }
    async fn save_step(
        &self,
        fence: &Fence,
        name: &str,
        output: &str,
    ) -> durable_core::Result<bool> {
        self.inner.save_step(fence, name, output).await
    }
}

/// Periodic schedules pass straight through.
#[durable_core::store::async_trait]
impl durable_core::store::ScheduleStore for CountingStore {
    async fn database_now(&self) -> durable_core::Result<chrono::DateTime<chrono::Utc>> {
        self.inner.database_now().await
    }
    async fn schedules(
        &self,
        names: &[String],
    ) -> durable_core::Result<Vec<durable_core::store::ScheduleRow>> {
        self.inner.schedules(names).await
    }
    async fn advance_schedule(
        &self,
        advance: durable_core::store::ScheduleAdvance<'_>,
    ) -> durable_core::Result<bool> {
        self.inner.advance_schedule(advance).await
    }
}
