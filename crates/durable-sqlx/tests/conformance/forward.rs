//! `AdminStore`, `StepStore` and `ScheduleStore` for a test wrapper that changes only the
//! worker protocol: every method is passed to the wrapped store (`self.inner`), so a method
//! added to a trait is added here once, not to each wrapper.

/// Implements `AdminStore` for `$wrapper` by forwarding every method to `self.inner`.
macro_rules! forward_admin_store {
    ($wrapper:ty) => {
        #[durable_core::store::async_trait]
        impl durable_core::store::AdminStore for $wrapper {
            async fn migrate(&self) -> durable_core::Result<()> {
                self.inner.migrate().await
            }
            async fn get(
                &self,
                id: durable_core::TaskId,
            ) -> durable_core::Result<Option<durable_core::store::TaskRecord>> {
                self.inner.get(id).await
            }
            async fn list(
                &self,
                query: &durable_core::store::ListQuery,
            ) -> durable_core::Result<durable_core::store::Page> {
                self.inner.list(query).await
            }
            async fn counts(&self) -> durable_core::Result<durable_core::store::StateCounts> {
                self.inner.counts().await
            }
            async fn stats(&self) -> durable_core::Result<durable_core::store::Stats> {
                self.inner.stats().await
            }
            async fn state_stats(
                &self,
            ) -> durable_core::Result<Vec<(durable_core::TaskState, durable_core::store::Count)>>
            {
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
            async fn cancel(
                &self,
                id: durable_core::TaskId,
            ) -> durable_core::Result<durable_core::store::CancelOutcome> {
                self.inner.cancel(id).await
            }
            async fn retry(
                &self,
                id: durable_core::TaskId,
                seen: Option<durable_core::store::Seen>,
            ) -> durable_core::Result<durable_core::store::ActionOutcome> {
                durable_core::store::AdminStore::retry(&self.inner, id, seen).await
            }
            async fn retry_failed(
                &self,
                which: &durable_core::store::RetryFailed,
            ) -> durable_core::Result<u64> {
                self.inner.retry_failed(which).await
            }
            async fn delete(
                &self,
                id: durable_core::TaskId,
                seen: Option<durable_core::store::Seen>,
            ) -> durable_core::Result<durable_core::store::ActionOutcome> {
                self.inner.delete(id, seen).await
            }
            async fn requeue(
                &self,
                id: durable_core::TaskId,
                seen: Option<durable_core::store::Seen>,
            ) -> durable_core::Result<durable_core::store::ActionOutcome> {
                durable_core::store::AdminStore::requeue(&self.inner, id, seen).await
            }
            async fn requeue_stuck(
                &self,
                which: &durable_core::store::StuckQuery,
            ) -> durable_core::Result<u64> {
                self.inner.requeue_stuck(which).await
            }
            async fn prune(
                &self,
                older_than: std::time::Duration,
                limit: u32,
            ) -> durable_core::Result<u64> {
                self.inner.prune(older_than, limit).await
            }
        }
    };
}

/// Implements `StepStore` and `ScheduleStore` for `$wrapper` by forwarding every method to
/// `self.inner`.
macro_rules! forward_step_and_schedule_stores {
    ($wrapper:ty) => {
        #[durable_core::store::async_trait]
        impl durable_core::store::StepStore for $wrapper {
            async fn steps(
                &self,
                id: durable_core::TaskId,
            ) -> durable_core::Result<Vec<durable_core::store::StepRecord>> {
                self.inner.steps(id).await
            }
            async fn save_step(
                &self,
                fence: &durable_core::store::Fence,
                name: &str,
                output: &str,
            ) -> durable_core::Result<bool> {
                self.inner.save_step(fence, name, output).await
            }
        }

        #[durable_core::store::async_trait]
        impl durable_core::store::ScheduleStore for $wrapper {
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
    };
}

pub(crate) use forward_admin_store;
pub(crate) use forward_step_and_schedule_stores;
