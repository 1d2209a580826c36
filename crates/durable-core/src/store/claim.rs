//! Claiming and holding tasks: the claim order, the fence every worker write carries, and
//! what a lease sweep did.

use std::sync::Arc;
use std::time::Duration;

use crate::ids::{TaskId, WorkerId};

/// The identity of one attempt held by one worker. Every write a worker makes about a task
/// (complete, retry, fail, heartbeat, requeue) applies only while the row is still
/// `processing` with this owner and attempt; otherwise it is rejected as stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fence {
    /// The task.
    pub id: TaskId,
    /// The lease owner that claimed it.
    pub owner: WorkerId,
    /// The attempt number it was claimed at (the row's `attempts` after the claim).
    pub attempt: u32,
}

/// A claim order: how many due tasks to take, of which task types, per queue, and the lease
/// to take them with.
///
/// Only rows whose name is in [`names`](Self::names) are claimed: a runtime claims the task
/// types it can run and leaves the others `pending` for an instance that knows them (during
/// a rolling deploy, the new version's tasks wait for the new version instead of being
/// failed by the old one). An empty list claims nothing.
///
/// # Examples
///
/// ```
/// use durable_core::store::ClaimRequest;
/// use durable_core::WorkerId;
/// use std::time::Duration;
///
/// let request = ClaimRequest::new(WorkerId::new(), Duration::from_secs(30), 16, ["send_email"])
///     .cap("emails", 4);
/// assert_eq!(&*request.names, ["send_email".to_owned()]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimRequest {
    /// The claiming worker.
    pub owner: WorkerId,
    /// Lease length from the claim.
    pub lease: Duration,
    /// At most this many rows in total.
    pub limit: usize,
    /// Queues with their own cap: at most `.1` rows from queue `.0` (still within `limit`).
    /// Queues not listed are bounded by `limit` alone.
    pub capped: Vec<(String, usize)>,
    /// The task names to claim (the claiming runtime's registry); rows of other names are
    /// left alone. Shared, so a runtime builds it once, not per claim.
    pub names: Arc<[String]>,
}

impl ClaimRequest {
    /// A claim of at most `limit` rows of the task types `names`, from any queue.
    pub fn new<N>(owner: WorkerId, lease: Duration, limit: usize, names: N) -> Self
    where
        N: IntoIterator,
        N::Item: Into<String>,
    {
        Self::with_names(
            owner,
            lease,
            limit,
            names.into_iter().map(Into::into).collect(),
        )
    }

    /// Like [`new`](Self::new), with the names already shared (no copy per claim).
    pub fn with_names(
        owner: WorkerId,
        lease: Duration,
        limit: usize,
        names: Arc<[String]>,
    ) -> Self {
        Self {
            owner,
            lease,
            limit,
            capped: Vec::new(),
            names,
        }
    }

    /// Caps one queue within this claim.
    #[must_use]
    pub fn cap(mut self, queue: impl Into<String>, max: usize) -> Self {
        self.capped.push((queue.into(), max));
        self
    }

    /// Whether this claim can take nothing: no room, or no task type.
    pub fn is_empty(&self) -> bool {
        self.limit == 0 || self.names.is_empty()
    }
}

/// Shutdown requeues of one task that do not count its attempt
/// ([`Outcome::Requeued`](super::Outcome::Requeued)). From the next one on, an attempt stopped by
/// shutdown counts like a failed one, and one that was the last leaves the task `failed`: a task
/// that always outlives the shutdown grace period then ends after its attempts instead of being
/// handed back at every deploy forever. Ten spares a task through ten deploys that each stopped it
/// (a deploy that interrupts it twice — SIGTERM, then the new process stopping too — spends two).
pub const REQUEUE_LIMIT: u32 = 10;

/// How many due `pending` rows [`WorkerStore::unclaimable`](super::WorkerStore::unclaimable) looks at, at most,
/// in claim order.
pub const UNCLAIMABLE_SCAN: u32 = 10_000;

/// What a lease-expiry sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RescueReport {
    /// Rows whose lease expired, put back to `pending` (last attempts that never started
    /// included).
    pub requeued: u64,
    /// Rows whose lease expired on a last attempt that had started, now `failed`.
    pub failed: u64,
    /// Rows whose lease expired while their cancellation was requested, now `cancelled`.
    pub cancelled: u64,
}

/// What one round of [`WorkerStore::maintain`](super::WorkerStore::maintain) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Maintenance {
    /// Dead row versions in the table claims scan, as the database counted them before
    /// this round (`None`: the store keeps no such count).
    pub dead_rows: Option<u64>,
    /// Whether this round vacuumed that table.
    pub vacuumed: bool,
}

impl Maintenance {
    /// A round that found `dead_rows` dead row versions and vacuumed the table or not.
    #[must_use]
    pub fn new(dead_rows: Option<u64>, vacuumed: bool) -> Self {
        Self {
            dead_rows,
            vacuumed,
        }
    }
}
