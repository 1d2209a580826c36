//! Attempts that wrote their own completion in the application's transaction
//! (`durable_sqlx::complete_in`): the runtime reads the row rather than completing it again.

use std::time::Duration;

use super::execute::Ended;
use super::shared::Shared;
use crate::state::TaskState;
use crate::store::{ClaimedTask, TaskRecord};

/// Looks at the row of an attempt that wrote its completion in a transaction of the
/// application's. Committed: the completion is final whatever `run` returned — counted here,
/// nothing left to write (`None`). Rolled back (the row is still this attempt's): `outcome`
/// is recorded as usual, except that an `Ok` from `run` is a failed attempt, since the work
/// it committed with is gone. Anything else: the task went to another worker.
pub(super) async fn check(shared: &Shared, task: &ClaimedTask, outcome: Ended) -> Option<Ended> {
    let fence = task.fence();
    let held = |r: &TaskRecord| r.lease_owner == Some(fence.owner) && r.attempts == fence.attempt;
    match read(shared, task).await {
        Some(Some(row)) if row.state == TaskState::Completed && held(&row) => {
            shared.stats.completed();
            shared.client.finished(task.id);
            tracing::debug!(task_id = %task.id, task_name = %task.name, attempt = task.attempt,
                "task completed in the application's transaction");
            None
        }
        Some(Some(row)) if row.state == TaskState::Processing && held(&row) => match outcome {
            Ended::Completed => Some(Ended::Failed {
                message: "the task returned Ok, but the transaction that completed it \
                          (complete_in) did not commit"
                    .to_owned(),
                permanent: false,
            }),
            other => Some(other),
        },
        Some(_) => {
            shared.stats.stale();
            Some(Ended::LeaseLost)
        }
        None => {
            tracing::error!(task_id = %task.id, attempt = task.attempt,
                "cannot read back a task completed in a transaction; if that transaction did not commit, the task runs again after its lease expires");
            None
        }
    }
}

/// The row, retrying store errors for up to one lease; `None` if the store stayed
/// unreachable.
async fn read(shared: &Shared, task: &ClaimedTask) -> Option<Option<TaskRecord>> {
    let give_up = tokio::time::Instant::now() + shared.config.lease;
    let mut pause = Duration::from_millis(50);
    loop {
        match shared.store.get(task.id).await {
            Ok(row) => return Some(row),
            Err(error) if tokio::time::Instant::now() + pause < give_up => {
                tracing::warn!(task_id = %task.id, %error, "reading a task back failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(_) => return None,
        }
    }
}
