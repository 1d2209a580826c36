//! [`AdminStore`]: inspection and administration of the task table.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use super::{CancelOutcome, ListQuery, StateCounts, TaskRecord};
use crate::error::Result;
use crate::ids::TaskId;

/// Inspection and administration (get, list, counts, cancel, prune, migrate): what operators, dashboards and maintenance call, as opposed
/// to the worker protocol ([`WorkerStore`](super::WorkerStore)) a runtime drives.
///
/// None of these writes is fenced by an attempt: they act on a row whatever holds it, each in
/// a statement of its own.
#[async_trait]
pub trait AdminStore: Send + Sync + fmt::Debug + 'static {
    /// Applies the embedded migrations (idempotent; safe when several instances start at
    /// once).
    async fn migrate(&self) -> Result<()>;

    /// Reads one row.
    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>>;

    /// Rows matching `query`, in id order, at most `query.limit` of them (one keyset page).
    async fn list(&self, query: &ListQuery) -> Result<Vec<TaskRecord>>;

    /// Counts rows per state.
    async fn counts(&self) -> Result<StateCounts>;

    /// Cancels a task: a `pending` one becomes `cancelled` at once and never runs
    /// ([`CancelOutcome::Cancelled`]); for a `processing` one the request is recorded
    /// ([`CancelOutcome::Requested`]) and the runtime running it stops that attempt (told at
    /// once where the store can: PostgreSQL sends a `NOTIFY`; otherwise at the runtime's next
    /// heartbeat, through [`WorkerStore::cancel_requested`](super::WorkerStore::cancel_requested)).
    /// The attempt's end then makes the row `cancelled` — an error, a timeout, its token, a
    /// shutdown's hand-back, an expired lease — except a completion, which stays `completed`.
    async fn cancel(&self, id: TaskId) -> Result<CancelOutcome>;

    /// Deletes up to `limit` `completed`/`cancelled` rows finished more than `older_than` ago;
    /// returns how many. `failed` rows are kept for inspection.
    async fn prune(&self, older_than: Duration, limit: u32) -> Result<u64>;
}
