//! A shared store is a store: `Arc<S>` forwards to `S`, so one store value can back a runtime
//! and other clients (`Runtime::builder(Arc::clone(&store), ..)`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{
    AdminStore, CommitMode, Fence, ListQuery, RescueReport, StateCounts, TaskRecord, Wakeups,
    WorkerStore, WriteBatch, WriteOutcome,
};
use crate::error::Result;
use crate::ids::TaskId;

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
    async fn rescue_expired(&self) -> Result<RescueReport> {
        (**self).rescue_expired().await
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
}

#[async_trait]
impl<S: AdminStore + ?Sized> AdminStore for Arc<S> {
    async fn migrate(&self) -> Result<()> {
        (**self).migrate().await
    }
    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        (**self).get(id).await
    }
    async fn list(&self, query: &ListQuery) -> Result<Vec<TaskRecord>> {
        (**self).list(query).await
    }
    async fn counts(&self) -> Result<StateCounts> {
        (**self).counts().await
    }
    async fn cancel(&self, id: TaskId) -> Result<bool> {
        (**self).cancel(id).await
    }
    async fn prune(&self, older_than: Duration, limit: u32) -> Result<u64> {
        (**self).prune(older_than, limit).await
    }
}
