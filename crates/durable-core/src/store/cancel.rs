//! What a cancellation did ([`AdminStore::cancel`](super::AdminStore::cancel)).

/// What [`AdminStore::cancel`](super::AdminStore::cancel) (and
/// [`Client::cancel`](crate::Client::cancel)) found and did.
///
/// # Examples
///
/// ```
/// use durable_core::store::CancelOutcome;
/// assert!(CancelOutcome::Cancelled.is_final());
/// assert!(!CancelOutcome::Requested.is_final());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelOutcome {
    /// The task was `pending`: it is `cancelled` now and never runs.
    Cancelled,
    /// An attempt is running it: the cancellation is recorded and that attempt's runtime
    /// fires its token. The row becomes `cancelled` when the attempt ends — unless the
    /// attempt completes anyway (the work happened, so the row says `completed`).
    Requested,
    /// The task had already finished (`completed`, `failed` or `cancelled`): nothing changed.
    AlreadyFinished,
    /// No such task (never stored, or pruned).
    NotFound,
}

impl CancelOutcome {
    /// Whether the task is `cancelled` now, for good.
    pub fn is_final(self) -> bool {
        matches!(self, CancelOutcome::Cancelled)
    }

    /// Whether the call changed something: the task was cancelled, or its running attempt
    /// was asked to stop.
    pub fn took_effect(self) -> bool {
        matches!(self, CancelOutcome::Cancelled | CancelOutcome::Requested)
    }
}
