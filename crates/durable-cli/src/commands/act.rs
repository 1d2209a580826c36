//! Actions on tasks named by id: `retry`, `cancel`, `delete`, `requeue-stuck ID...`.

use durable_core::store::{ActionOutcome, CancelOutcome};
use durable_core::{TaskId, TaskState};
use serde_json::{json, Value};

use super::{print_json, print_text, Ctx, Tally};
use crate::error::{Error, Result};

/// An action on one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Retry,
    Cancel,
    Delete,
    Requeue,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Cancel => "cancel",
            Action::Delete => "delete",
            Action::Requeue => "requeue",
        }
    }
}

/// What one action did to one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    /// The action happened (`what` says how, e.g. "cancel requested").
    Changed(&'static str),
    NotFound,
    /// Refused: the task is in a state the action does not apply to.
    Conflict {
        state: TaskState,
        attempts: u32,
    },
    /// Refused: a live task holds the unique key the retried one would take.
    KeyHeld {
        holder: TaskId,
    },
}

impl Done {
    fn from_action(action: Action, outcome: &ActionOutcome) -> Self {
        match *outcome {
            ActionOutcome::NotFound => Done::NotFound,
            ActionOutcome::Conflict { state, attempts } => Done::Conflict { state, attempts },
            ActionOutcome::KeyHeld { holder } => Done::KeyHeld { holder },
            // `Done`, and anything a later store version adds, reads as done.
            _ => Done::Changed(match action {
                Action::Retry => "retried",
                Action::Delete => "deleted",
                Action::Requeue => "requeued",
                Action::Cancel => "cancelled",
            }),
        }
    }

    fn from_cancel(outcome: CancelOutcome, current: Option<(TaskState, u32)>) -> Self {
        match outcome {
            CancelOutcome::Cancelled => Done::Changed("cancelled"),
            CancelOutcome::Requested => Done::Changed("cancel requested"),
            CancelOutcome::NotFound => Done::NotFound,
            _ => match current {
                Some((state, attempts)) => Done::Conflict { state, attempts },
                None => Done::NotFound,
            },
        }
    }

    /// The outcome's word in the JSON output and the log.
    fn label(self) -> &'static str {
        match self {
            Done::Changed(_) => "done",
            Done::NotFound => "not_found",
            Done::Conflict { .. } => "conflict",
            Done::KeyHeld { .. } => "key_held",
        }
    }

    fn json(self, id: TaskId) -> Value {
        match self {
            Done::Changed(what) => {
                json!({ "id": id.to_string(), "outcome": self.label(), "done": what })
            }
            Done::NotFound => json!({ "id": id.to_string(), "outcome": self.label() }),
            Done::Conflict { state, attempts } => json!({
                "id": id.to_string(), "outcome": self.label(),
                "state": state.as_str(), "attempts": attempts,
            }),
            Done::KeyHeld { holder } => json!({
                "id": id.to_string(), "outcome": self.label(), "holder": holder.to_string(),
            }),
        }
    }

    fn text(self, id: TaskId, action: Action) -> String {
        match self {
            Done::Changed(what) => format!("{id}: {what}"),
            Done::NotFound => format!("{id}: not found"),
            Done::Conflict { state, attempts } => format!(
                "{id}: refused, cannot {} a task that is {state} (attempts: {attempts})",
                action.name()
            ),
            Done::KeyHeld { holder } => {
                format!("{id}: refused, its unique key is held by live task {holder}")
            }
        }
    }
}

/// Runs `action` on each id in turn (all of them, whatever the earlier ones found) and
/// reports each.
pub(super) async fn each(ctx: &Ctx, action: Action, ids: &[TaskId]) -> Result<Tally> {
    let mut tally = Tally::default();
    let mut results = Vec::with_capacity(ids.len());
    let mut lines = String::new();
    for &id in ids {
        let done = apply(ctx, action, id).await?;
        tracing::info!(
            actor = %ctx.actor,
            action = action.name(),
            task = %id,
            outcome = done.label(),
            "operator action"
        );
        match done {
            Done::NotFound => tally.not_found = true,
            Done::Conflict { .. } | Done::KeyHeld { .. } => tally.conflict = true,
            Done::Changed(_) => {}
        }
        if ctx.json {
            results.push(done.json(id));
        } else {
            lines.push_str(&done.text(id, action));
            lines.push('\n');
        }
    }
    if ctx.json {
        print_json(&json!({ "action": action.name(), "results": results }))?;
    } else {
        print_text(&lines)?;
    }
    Ok(tally)
}

async fn apply(ctx: &Ctx, action: Action, id: TaskId) -> Result<Done> {
    let store = &ctx.store;
    let outcome = match action {
        Action::Retry => store.retry(id, None).await,
        Action::Delete => store.delete(id, None).await,
        Action::Requeue => store.requeue(id, None).await,
        Action::Cancel => {
            let outcome = store.cancel(id).await.map_err(Error::store("cancel"))?;
            // The cancel outcome does not carry the state it found; read it for the report.
            let current = if outcome == CancelOutcome::AlreadyFinished {
                store
                    .get(id)
                    .await
                    .map_err(Error::store("cancel"))?
                    .map(|t| (t.state, t.attempts))
            } else {
                None
            };
            return Ok(Done::from_cancel(outcome, current));
        }
    };
    let outcome = outcome.map_err(Error::store(action.name()))?;
    Ok(Done::from_action(action, &outcome))
}
