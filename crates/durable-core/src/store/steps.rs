//! [`StepStore`]: the checkpoints of a task's steps ([`TaskContext::step`](crate::TaskContext::step)).

use async_trait::async_trait;

use super::Fence;
use crate::error::Result;
use crate::ids::TaskId;

/// One finished step of a task, as stored: its name, its output as JSON and the attempt
/// that ran it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StepRecord {
    /// The step's name, unique within its task.
    pub name: String,
    /// The step's result, serialized as JSON.
    pub output: String,
    /// The attempt that ran the step.
    pub attempt: u32,
}

impl StepRecord {
    /// A stored step (stores build these from rows).
    pub fn new(name: impl Into<String>, output: impl Into<String>, attempt: u32) -> Self {
        Self {
            name: name.into(),
            output: output.into(),
            attempt,
        }
    }
}

/// Step checkpoints: a task's finished steps and their results, kept until the task is
/// deleted (pruned) with them.
///
/// A step's checkpoint is written **fenced**, like every other write about an attempt: only
/// while the attempt that ran the step still holds its task (`processing`, same owner and
/// attempt). A worker that lost its lease cannot record a step, so the attempt that now
/// holds the task never skips a step on the word of one that no longer counts.
#[async_trait]
pub trait StepStore: Send + Sync + 'static {
    /// The finished steps of task `id`, in no particular order. Read once per attempt, at
    /// its first step.
    async fn steps(&self, id: TaskId) -> Result<Vec<StepRecord>>;

    /// Records that the attempt `fence` finished step `name` with `output` (JSON).
    /// `Ok(false)` when the attempt no longer holds its task: nothing was written. A step
    /// already recorded under `name` for the task is an error
    /// ([`Error::Rejected`](crate::Error::Rejected)): step names are unique within a task.
    async fn save_step(&self, fence: &Fence, name: &str, output: &str) -> Result<bool>;
}

/// A shared store records steps like the store it shares.
#[async_trait]
impl<S: StepStore + ?Sized> StepStore for std::sync::Arc<S> {
    async fn steps(&self, id: TaskId) -> Result<Vec<StepRecord>> {
        (**self).steps(id).await
    }
    async fn save_step(&self, fence: &Fence, name: &str, output: &str) -> Result<bool> {
        (**self).save_step(fence, name, output).await
    }
}
