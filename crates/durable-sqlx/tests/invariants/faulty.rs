//! The fault decorator's store implementation: every call runs the real call under its
//! fault, and notes the leases the database granted and the claims the caller was told of.

use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_core::store::{
    async_trait, AdminStore, ClaimedTask, CommitMode, Fence, ListQuery, NewTask, RescueReport,
    StateCounts, TaskRecord, Wakeups, WorkerStore, WriteBatch, WriteOutcome,
};
use durable_core::{Result, TaskId};

use crate::faults::{Beat, FaultyStore, Method};

fn fences(claimed: &[ClaimedTask]) -> Vec<Fence> {
    claimed.iter().map(ClaimedTask::fence).collect()
}

/// The fences of rows inserted already claimed (local dispatch): attempt 1 of the owner.
fn local(rows: &[NewTask]) -> Vec<Fence> {
    rows.iter()
        .filter_map(|row| {
            row.claimed_by.map(|claim| Fence {
                id: row.id,
                owner: claim.owner,
                attempt: 1,
            })
        })
        .collect()
}

#[async_trait]
impl WorkerStore for FaultyStore {
    fn backend(&self) -> &'static str {
        self.inner().backend()
    }
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner().now()
    }

    fn commit_mode(&self) -> CommitMode {
        self.inner().commit_mode()
    }

    fn wakeups(&self) -> Wakeups {
        self.inner().wakeups()
    }

    async fn check_enqueue(&self) -> Result<()> {
        self.inner().check_enqueue().await
    }

    async fn unclaimable(&self, known: &[String], waiting: Duration) -> Result<Vec<(String, u64)>> {
        self.inner().unclaimable(known, waiting).await
    }

    async fn rescue_expired(&self) -> Result<RescueReport> {
        let inner = self.inner();
        self.call(Method::Rescue, async move { inner.rescue_expired().await })
            .await
    }

    async fn backlog(&self) -> Result<u64> {
        let inner = self.inner();
        self.call(Method::Backlog, async move { inner.backlog().await })
            .await
    }

    async fn heartbeat(&self, held: &[Fence], lease: Duration) -> Result<Vec<Fence>> {
        let (at, inner, faults, list) = (
            Instant::now(),
            self.inner(),
            Arc::clone(&self.faults),
            held.to_vec(),
        );
        let answer = self
            .call(Method::Heartbeat, async move {
                let result = inner.heartbeat(&list, lease).await;
                if let Ok(still) = &result {
                    faults.note(still.iter().copied(), at, false);
                }
                result
            })
            .await;
        self.faults.journal().beats.push(Beat {
            incarnation: self.incarnation,
            at,
            held: held.to_vec(),
            answer: answer
                .as_ref()
                .ok()
                .map(|still| (Instant::now(), still.clone())),
        });
        answer
    }

    async fn cancel_requested(&self, held: &[Fence]) -> Result<Vec<TaskId>> {
        self.inner().cancel_requested(held).await
    }

    async fn mark_started(&self, fence: &Fence) -> Result<bool> {
        let (inner, fence) = (self.inner(), *fence);
        self.call(Method::MarkStarted, async move {
            inner.mark_started(&fence).await
        })
        .await
    }

    async fn write(&self, batch: WriteBatch<'_>) -> WriteOutcome {
        let at = Instant::now();
        let (inner, faults) = (self.inner(), Arc::clone(&self.faults));
        let (rows, done, settle, claim) = (
            batch.insert.to_vec(),
            batch.complete.to_vec(),
            batch.settle.to_vec(),
            batch.claim.cloned(),
        );
        let answer = self
            .call(Method::Write, async move {
                let mut batch = WriteBatch::new()
                    .insert(&rows)
                    .complete(&done)
                    .settle(&settle);
                if let Some(claim) = &claim {
                    batch = batch.claim(claim);
                }
                let outcome = inner.write(batch).await;
                if outcome.inserted.is_ok() {
                    faults.note(local(&rows), at, false);
                }
                if let Ok(claimed) = &outcome.claimed {
                    faults.note(fences(claimed), at, false);
                }
                outcome
            })
            .await;
        if answer.inserted.is_ok() {
            self.faults.note(local(batch.insert), at, true);
        }
        if let Ok(claimed) = &answer.claimed {
            self.faults.note(fences(claimed), at, true);
        }
        answer
    }
}

#[async_trait]
impl AdminStore for FaultyStore {
    async fn stats(&self) -> durable_core::Result<durable_core::store::Stats> {
        self.inner().stats().await
    }
    async fn throughput(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> durable_core::Result<Vec<durable_core::store::ThroughputBucket>> {
        self.inner().throughput(since).await
    }
    async fn add_throughput(
        &self,
        worker: durable_core::WorkerId,
        buckets: &[durable_core::store::ThroughputBucket],
    ) -> durable_core::Result<()> {
        self.inner().add_throughput(worker, buckets).await
    }
    async fn retry(
        &self,
        id: TaskId,
        seen: Option<durable_core::store::Seen>,
    ) -> durable_core::Result<durable_core::store::ActionOutcome> {
        self.inner().retry(id, seen).await
    }
    async fn retry_failed(
        &self,
        which: &durable_core::store::RetryFailed,
    ) -> durable_core::Result<u64> {
        self.inner().retry_failed(which).await
    }
    async fn delete(
        &self,
        id: TaskId,
        seen: Option<durable_core::store::Seen>,
    ) -> durable_core::Result<durable_core::store::ActionOutcome> {
        self.inner().delete(id, seen).await
    }
    async fn requeue(
        &self,
        id: TaskId,
        seen: Option<durable_core::store::Seen>,
    ) -> durable_core::Result<durable_core::store::ActionOutcome> {
        self.inner().requeue(id, seen).await
    }
    async fn requeue_stuck(
        &self,
        which: &durable_core::store::StuckQuery,
    ) -> durable_core::Result<u64> {
        self.inner().requeue_stuck(which).await
    }

    async fn migrate(&self) -> Result<()> {
        self.inner().migrate().await
    }

    async fn cancel(&self, id: TaskId) -> Result<durable_core::store::CancelOutcome> {
        let inner = self.inner();
        self.call(Method::Cancel, async move { inner.cancel(id).await })
            .await
    }

    async fn prune(&self, older_than: Duration, limit: u32) -> Result<u64> {
        let inner = self.inner();
        self.call(Method::Prune, async move {
            inner.prune(older_than, limit).await
        })
        .await
    }

    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        let inner = self.inner();
        self.call(Method::Get, async move { inner.get(id).await })
            .await
    }

    async fn list(&self, query: &ListQuery) -> Result<durable_core::store::Page> {
        let (inner, query) = (self.inner(), query.clone());
        self.call(Method::Get, async move { inner.list(&query).await })
            .await
    }

    async fn counts(&self) -> Result<StateCounts> {
        let inner = self.inner();
        self.call(Method::Counts, async move { inner.counts().await })
            .await
    }
}

#[async_trait]
impl durable_core::store::StepStore for FaultyStore {
    async fn steps(
        &self,
        id: TaskId,
    ) -> durable_core::Result<Vec<durable_core::store::StepRecord>> {
        self.inner().steps(id).await
    }
    async fn save_step(
        &self,
        fence: &Fence,
        name: &str,
        output: &str,
    ) -> durable_core::Result<bool> {
        self.inner().save_step(fence, name, output).await
    }
}

/// Periodic schedules pass straight through.
#[durable_core::store::async_trait]
impl durable_core::store::ScheduleStore for FaultyStore {
    async fn database_now(&self) -> durable_core::Result<chrono::DateTime<chrono::Utc>> {
        self.inner().database_now().await
    }
    async fn schedules(
        &self,
        names: &[String],
    ) -> durable_core::Result<Vec<durable_core::store::ScheduleRow>> {
        self.inner().schedules(names).await
    }
    async fn advance_schedule(
        &self,
        advance: durable_core::store::ScheduleAdvance<'_>,
    ) -> durable_core::Result<bool> {
        self.inner().advance_schedule(advance).await
    }
}
