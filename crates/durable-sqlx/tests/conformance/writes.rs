#![allow(dead_code, unreachable_pub)]

//! One part of a writer cycle at a time, for tests: the writes a runtime makes through its
//! writer ([`WorkerStore::write`]), called directly on a store.

use std::time::Duration;

use durable_core::store::{
    async_trait, ClaimRequest, ClaimedTask, Fence, NewTask, Outcome, Settle, WorkerStore,
    WriteBatch,
};
use durable_core::{Result, TaskId};

/// Single-part writes over [`WorkerStore::write`].
#[async_trait]
pub trait Writes {
    /// Inserts `rows`, all or none.
    async fn insert(&self, rows: &[NewTask]) -> Result<()>;
    /// Claims per `request`.
    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<ClaimedTask>>;
    /// Completes `fences`; the ids whose write applied.
    async fn complete(&self, fences: &[Fence]) -> Result<Vec<TaskId>>;
    /// Retries `fence` after `delay`; whether it applied.
    async fn retry_attempt(&self, fence: &Fence, delay: Duration, error: &str) -> Result<bool>;
    /// Fails `fence`; whether it applied.
    async fn fail(&self, fence: &Fence, error: &str) -> Result<bool>;
    /// Hands `fences` back as a shutdown does; the rows changed.
    async fn requeue_attempts(&self, fences: &[Fence]) -> Result<u64>;
}

#[async_trait]
impl<S: WorkerStore + ?Sized> Writes for S {
    async fn insert(&self, rows: &[NewTask]) -> Result<()> {
        self.write(WriteBatch::new().insert(rows))
            .await
            .inserted
            .map(drop)
    }
    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<ClaimedTask>> {
        self.write(WriteBatch::new().claim(request)).await.claimed
    }
    async fn complete(&self, fences: &[Fence]) -> Result<Vec<TaskId>> {
        self.write(WriteBatch::new().complete(fences))
            .await
            .completed
    }
    async fn retry_attempt(&self, fence: &Fence, delay: Duration, error: &str) -> Result<bool> {
        let outcome = Outcome::Retry {
            delay,
            error: error.to_owned(),
        };
        settle_one(self, Settle::new(*fence, outcome)).await
    }
    async fn fail(&self, fence: &Fence, error: &str) -> Result<bool> {
        let outcome = Outcome::Failed {
            error: error.to_owned(),
        };
        settle_one(self, Settle::new(*fence, outcome)).await
    }
    async fn requeue_attempts(&self, fences: &[Fence]) -> Result<u64> {
        let outcomes: Vec<Settle> = fences
            .iter()
            .map(|f| Settle::new(*f, Outcome::Requeued))
            .collect();
        let applied = self
            .write(WriteBatch::new().settle(&outcomes))
            .await
            .settled?;
        Ok(applied.len() as u64)
    }
}

async fn settle_one<S: WorkerStore + ?Sized>(store: &S, settle: Settle) -> Result<bool> {
    let outcomes = [settle];
    let applied = store
        .write(WriteBatch::new().settle(&outcomes))
        .await
        .settled?;
    Ok(!applied.is_empty())
}
