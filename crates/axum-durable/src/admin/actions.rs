//! The operator's actions on one task or many, shared by the API and the pages: which apply
//! to a task, doing them, and logging each (target `durable::admin`).

use durable_core::store::{
    ActionOutcome, CancelOutcome, RetryFailed, Seen, StuckQuery, TaskRecord,
};
use durable_core::{TaskId, TaskState};

use super::access::Principal;
use super::state::Shared;

/// An action on one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Retry,
    Cancel,
    Delete,
    Requeue,
}

impl Action {
    pub(crate) const ALL: [Action; 4] = [
        Action::Retry,
        Action::Cancel,
        Action::Delete,
        Action::Requeue,
    ];

    /// The action named by a path segment.
    pub(crate) fn parse(segment: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|action| action.as_str() == segment)
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Cancel => "cancel",
            Action::Delete => "delete",
            Action::Requeue => "requeue",
        }
    }

    /// Whether the action applies to `task` as it is: what the store would accept.
    pub(crate) fn applies(self, task: &TaskRecord) -> bool {
        match self {
            Action::Retry => matches!(task.state, TaskState::Failed | TaskState::Cancelled),
            Action::Cancel => {
                task.state == TaskState::Pending
                    || (task.state == TaskState::Processing && task.cancel_requested_at.is_none())
            }
            Action::Delete => task.state != TaskState::Processing,
            Action::Requeue => task.state == TaskState::Processing,
        }
    }
}

/// What an action on one task did, for the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Done {
    /// Done (for a cancel of a running task: requested).
    Applied {
        requested: bool,
    },
    NotFound,
    /// The task is not as seen, or the action does not apply to it.
    Conflict {
        state: TaskState,
        attempts: u32,
    },
    /// Another live task holds the unique key.
    KeyHeld {
        holder: TaskId,
    },
}

impl Done {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Done::Applied { requested: false } => "done",
            Done::Applied { requested: true } => "requested",
            Done::NotFound => "not_found",
            Done::Conflict { .. } => "conflict",
            Done::KeyHeld { .. } => "key_held",
        }
    }
}

/// Does `action` on task `id` if it is still as `seen`, and logs it.
pub(crate) async fn perform(
    shared: &Shared,
    principal: &Principal,
    action: Action,
    id: TaskId,
    seen: Seen,
) -> durable_core::Result<Done> {
    let result = run(shared, action, id, seen).await;
    match &result {
        Ok(done) => tracing::info!(target: "durable::admin", principal = %principal.name,
            action = action.as_str(), task_id = %id, seen_state = %seen.state,
            seen_attempts = seen.attempts, outcome = done.label(), "admin action"),
        Err(error) => tracing::error!(target: "durable::admin", principal = %principal.name,
            action = action.as_str(), task_id = %id, %error, outcome = "error", "admin action"),
    }
    result
}

async fn run(
    shared: &Shared,
    action: Action,
    id: TaskId,
    seen: Seen,
) -> durable_core::Result<Done> {
    let store = &shared.store;
    let outcome = match action {
        Action::Retry => store.retry(id, Some(seen)).await?,
        Action::Delete => store.delete(id, Some(seen)).await?,
        Action::Requeue => store.requeue(id, Some(seen)).await?,
        Action::Cancel => return cancel(shared, id, seen).await,
    };
    Ok(match outcome {
        ActionOutcome::NotFound => Done::NotFound,
        ActionOutcome::Conflict { state, attempts } => Done::Conflict { state, attempts },
        ActionOutcome::KeyHeld { holder } => Done::KeyHeld { holder },
        _ => Done::Applied { requested: false },
    })
}

/// A cancel, if the task is still as seen. The store's cancel takes no [`Seen`], so the row
/// is read first: a task retried or requeued since the page was shown is not cancelled.
/// (A change between the read and the cancel can slip through; the cancel itself still only
/// acts on a live task.)
async fn cancel(shared: &Shared, id: TaskId, seen: Seen) -> durable_core::Result<Done> {
    let Some(task) = shared.store.get(id).await? else {
        return Ok(Done::NotFound);
    };
    if task.state != seen.state || task.attempts != seen.attempts || !Action::Cancel.applies(&task)
    {
        return Ok(Done::Conflict {
            state: task.state,
            attempts: task.attempts,
        });
    }
    Ok(match shared.store.cancel(id).await? {
        CancelOutcome::Cancelled => Done::Applied { requested: false },
        CancelOutcome::Requested => Done::Applied { requested: true },
        CancelOutcome::NotFound => Done::NotFound,
        _ => match shared.store.get(id).await? {
            Some(task) => Done::Conflict {
                state: task.state,
                attempts: task.attempts,
            },
            None => Done::NotFound,
        },
    })
}

/// Retries up to `which.limit` failed tasks, and logs it.
pub(crate) async fn retry_failed(
    shared: &Shared,
    principal: &Principal,
    which: &RetryFailed,
) -> durable_core::Result<u64> {
    let result = shared.store.retry_failed(which).await;
    log_bulk(principal, "retry_failed", which.name.as_deref(), &result);
    result
}

/// Requeues up to `which.limit` stuck tasks, and logs it.
pub(crate) async fn requeue_stuck(
    shared: &Shared,
    principal: &Principal,
    which: &StuckQuery,
) -> durable_core::Result<u64> {
    let result = shared.store.requeue_stuck(which).await;
    log_bulk(principal, "requeue_stuck", which.name.as_deref(), &result);
    result
}

fn log_bulk(
    principal: &Principal,
    action: &str,
    name: Option<&str>,
    result: &durable_core::Result<u64>,
) {
    match result {
        Ok(n) => tracing::info!(target: "durable::admin", principal = %principal.name, action,
            task_type = name.unwrap_or("(any)"), tasks = n, outcome = "done", "admin action"),
        Err(error) => tracing::error!(target: "durable::admin", principal = %principal.name,
            action, task_type = name.unwrap_or("(any)"), %error, outcome = "error", "admin action"),
    }
}
