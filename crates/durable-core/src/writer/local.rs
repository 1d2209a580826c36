//! The writer's view of the local runtime: the one hook through which a runtime takes part
//! in the writer's cycles.

use std::sync::{Arc, OnceLock, Weak};

use crate::store::{ClaimRequest, ClaimedTask, NewTask};

/// The local runtime as the writer sees it: the capacity it has for the rows and claims of a
/// cycle, and where what the cycle committed for it starts.
pub(crate) trait LocalRuntime: Send + Sync {
    /// Before an insert: marks as many of `rows` as have free capacity `claimed_by` this
    /// runtime (inserted already claimed, they start without a claim).
    fn reserve(&self, rows: &mut [NewTask]) -> Option<Reservation>;
    /// After the insert: starts the rows it reserved if `committed`, notes the others as due
    /// (or gives the capacity back if not committed).
    fn inserted(&self, reservation: Option<Reservation>, rows: &[NewTask], committed: bool);
    /// The claim to ride on a cycle, for the capacity left after the cycle's reservations;
    /// that capacity is held until [`claimed`](Self::claimed). `None` when there is no room.
    fn begin_claim(&self) -> Option<ClaimRequest>;
    /// The claim's rows once committed (`None`: it failed): releases the held capacity, takes
    /// one slot per row and starts them.
    fn claimed(&self, request: &ClaimRequest, rows: Option<Vec<ClaimedTask>>);
}

/// Capacity taken for rows being inserted already claimed: the rows' indexes and queues.
pub(crate) struct Reservation {
    pub(crate) slots: Vec<(usize, String)>,
    /// Keeps a runtime's shutdown waiting until the insert is answered.
    pub(crate) _guard: tokio_util::task::task_tracker::TaskTrackerToken,
}

/// What a claim made by the writer for a runtime did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClaimReport {
    /// Rows claimed (and started).
    pub(crate) claimed: usize,
    /// Most rows the claim could take (0: there was no room).
    pub(crate) limit: usize,
}

/// The local runtime, once one is attached.
pub(super) type Attached = Arc<OnceLock<Weak<dyn LocalRuntime>>>;
