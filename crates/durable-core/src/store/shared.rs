//! A shared store is a store: `Arc<S>` forwards to `S`, so one store value can back a runtime
//! and other clients (`Runtime::builder(Arc::clone(&store), ..)`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use chrono::{DateTime, Utc};

use super::{
    ActionOutcome, AdminStore, CancelOutcome, CommitMode, Count, Fence, KeyClaim, KeyTake,
    ListQuery, Maintenance, Page, RescueReport, RetryFailed, ScheduleAdvance, ScheduleRow,
    ScheduleStore, Seen, StateCounts, Stats, StuckQuery, TaskRecord, ThroughputBucket, Wakeups,
    WorkerStore, WriteBatch, WriteOutcome,
};
use crate::error::Result;
use crate::ids::{TaskId, WorkerId};
use crate::TaskState;

#[async_trait]
impl<S: WorkerStore + ?Sized> WorkerStore for Arc<S> {
    fn backend(&self) -> &'static str {
        (**self).backend()
    }
    fn commit_mode(&self) -> CommitMode {
        (**self).commit_mode()
    }
    fn wakeups(&self) -> Wakeups {
        (**self).wakeups()
    }
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        (**self).now()
    }
    async fn write(&self, batch: WriteBatch<'_>) -> WriteOutcome {
        (**self).write(batch).await
    }
    async fn heartbeat(&self, held: &[Fence], lease: Duration) -> Result<Vec<Fence>> {
        (**self).heartbeat(held, lease).await
    }
    async fn mark_started(&self, fence: &Fence) -> Result<bool> {
        (**self).mark_started(fence).await
    }
    async fn cancel_requested(&self, held: &[Fence]) -> Result<Vec<TaskId>> {
        (**self).cancel_requested(held).await
    }
    async fn rescue_expired(&self) -> Result<RescueReport> {
        (**self).rescue_expired().await
    }
    async fn maintain(&self) -> Result<Maintenance> {
        (**self).maintain().await
    }
    async fn check_enqueue(&self) -> Result<()> {
        (**self).check_enqueue().await
    }
    async fn backlog(&self) -> Result<u64> {
        (**self).backlog().await
    }
    async fn unclaimable(&self, known: &[String], waiting: Duration) -> Result<Vec<(String, u64)>> {
        (**self).unclaimable(known, waiting).await
    }
    async fn take_key(&self, take: &KeyTake) -> Result<KeyClaim> {
        (**self).take_key(take).await
    }
    async fn release_key(&self, key_hash: &str, token: &str) -> Result<bool> {
        (**self).release_key(key_hash, token).await
    }
    async fn purge_keys(&self, limit: u32) -> Result<u64> {
        (**self).purge_keys(limit).await
    }
}

#[async_trait]
impl<S: AdminStore + ?Sized> AdminStore for Arc<S> {
    async fn migrate(&self) -> Result<()> {
        (**self).migrate().await
    }
    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        (**self).get(id).await
    }
    async fn list(&self, query: &ListQuery) -> Result<Page> {
        (**self).list(query).await
    }
    async fn counts(&self) -> Result<StateCounts> {
        (**self).counts().await
    }
    async fn stats(&self) -> Result<Stats> {
        (**self).stats().await
    }
    async fn state_stats(&self) -> Result<Vec<(TaskState, Count)>> {
        (**self).state_stats().await
    }
    async fn throughput(&self, since: DateTime<Utc>) -> Result<Vec<ThroughputBucket>> {
        (**self).throughput(since).await
    }
    async fn add_throughput(&self, worker: WorkerId, buckets: &[ThroughputBucket]) -> Result<()> {
        (**self).add_throughput(worker, buckets).await
    }
    async fn retry(&self, id: TaskId, seen: Option<Seen>) -> Result<ActionOutcome> {
        (**self).retry(id, seen).await
    }
    async fn retry_failed(&self, which: &RetryFailed) -> Result<u64> {
        (**self).retry_failed(which).await
    }
    async fn delete(&self, id: TaskId, seen: Option<Seen>) -> Result<ActionOutcome> {
        (**self).delete(id, seen).await
    }
    async fn requeue(&self, id: TaskId, seen: Option<Seen>) -> Result<ActionOutcome> {
        (**self).requeue(id, seen).await
    }
    async fn requeue_stuck(&self, which: &StuckQuery) -> Result<u64> {
        (**self).requeue_stuck(which).await
    }
    async fn cancel(&self, id: TaskId) -> Result<CancelOutcome> {
        (**self).cancel(id).await
    }
    async fn prune(&self, older_than: Duration, limit: u32) -> Result<u64> {
        (**self).prune(older_than, limit).await
    }
}

#[async_trait]
impl<S: ScheduleStore + Send + Sync + ?Sized> ScheduleStore for Arc<S> {
    async fn database_now(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        (**self).database_now().await
    }
    async fn schedules(&self, names: &[String]) -> Result<Vec<ScheduleRow>> {
        (**self).schedules(names).await
    }
    async fn advance_schedule(&self, advance: ScheduleAdvance<'_>) -> Result<bool> {
        (**self).advance_schedule(advance).await
    }
}
