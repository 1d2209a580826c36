//! Steps: parts of a task that run once per task, not once per attempt.
//!
//! [`TaskContext::step`] runs a closure, stores its result (JSON) under the step's name —
//! fenced, so only while this attempt holds the task — and returns it. A later attempt of
//! the same task (a retry, or a recovery after a crash) gets the stored result back without
//! running the closure again. A step that fails is not stored: it runs again next attempt.

mod scope;

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub(crate) use scope::{AttemptFlags, AttemptScope};

use crate::context::TaskContext;
use crate::error::{Error, TaskError};
use crate::store::Fence;

/// How long a step's checkpoint write is retried after store errors before the attempt
/// fails (and is retried as a whole: the step then runs again).
const SAVE_PATIENCE: Duration = Duration::from_secs(5);

impl<S> TaskContext<S> {
    /// Runs step `name` once per task: the first attempt to reach it runs `f` and stores its
    /// result; every later attempt of the task (a retry, a recovery after a crash) gets that
    /// result back **without running `f`**.
    ///
    /// Why: a task that charges a card, then sends a receipt, must not charge again because
    /// the receipt's mail server failed. Put each side effect in its own step.
    ///
    /// - The result is stored as JSON ([`Serialize`] + [`DeserializeOwned`]) together with
    ///   the step's name, **fenced**: only while this attempt still holds the task. If the
    ///   attempt lost its lease, nothing is stored and the attempt stops (another worker
    ///   runs the task now) with an error that `?` passes on.
    /// - If `f` fails, nothing is stored and its error ends the attempt when passed on with
    ///   `?` (a [`TaskError::permanent`] one fails the task at once); the next attempt runs
    ///   the step again.
    /// - Names are unique within a run: a name used twice by one attempt fails the task
    ///   (permanently: the code, not the data, is wrong). Name steps made in a loop with their
    ///   item (`format!("email-{user_id}")`).
    /// - Between the side effect and its checkpoint, a crash can still happen: the step then
    ///   runs again. Make external calls idempotent with
    ///   [`idempotency_key`](Self::idempotency_key), stable across attempts.
    ///
    /// The steps' results are kept until the task is pruned.
    ///
    /// # Examples
    ///
    /// ```
    /// use durable_core::{Task, TaskContext, TaskError};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct Checkout { order: u64, cents: u64 }
    ///
    /// # async fn charge(_key: &str, _cents: u64) -> Result<String, std::io::Error> { Ok("ch_1".into()) }
    /// # async fn send_receipt(_order: u64, _charge: &str) -> Result<(), std::io::Error> { Ok(()) }
    /// impl Task for Checkout {
    ///     const NAME: &'static str = "checkout";
    ///     type State = ();
    ///
    ///     async fn run(self, cx: TaskContext<()>) -> Result<(), TaskError> {
    ///         let key = cx.idempotency_key("charge-card");
    ///         // Charged once per task, even if the receipt below fails and the task retries.
    ///         let charge: String = cx
    ///             .step("charge-card", || async { charge(&key, self.cents).await })
    ///             .await?;
    ///         cx.step("send-receipt", || send_receipt(self.order, &charge)).await?;
    ///         Ok(())
    ///     }
    /// }
    /// ```
    pub async fn step<T, E, F, Fut>(&self, name: &str, f: F) -> Result<T, TaskError>
    where
        T: Serialize + DeserializeOwned,
        E: Into<TaskError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.reserve_step(name).map_err(TaskError::permanent)?;
        if let Some(value) = self.finished_step(name).await? {
            return Ok(value);
        }
        let value = f().await.map_err(Into::into)?;
        let output = serde_json::to_string(&value).map_err(|source| {
            TaskError::permanent(Error::StepOutput {
                step: name.to_owned(),
                source,
            })
        })?;
        self.save_step(name, &output).await?;
        Ok(value)
    }

    /// The stored result of step `name` if an earlier attempt (or this one) finished it,
    /// `None` otherwise. The steps are read from the store once per attempt.
    ///
    /// For steps recorded in the application's own transaction (`durable_sqlx::step_in`):
    /// check here first whether the step already happened.
    pub async fn finished_step<T: DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, TaskError> {
        let finished = self.scope.finished().await.map_err(TaskError::retryable)?;
        let Some(output) = finished.get(name) else {
            return Ok(None);
        };
        // Retryable, like an undecodable payload: another version of the code (during a
        // rolling deploy) may read it, and a fixed deploy may come before the attempts end.
        serde_json::from_str(output).map(Some).map_err(|source| {
            TaskError::retryable(Error::StepOutput {
                step: name.to_owned(),
                source,
            })
        })
    }

    /// A key for an external call made in step `step`: the same for every attempt of this
    /// task, different for every task and step. Pass it to APIs that deduplicate requests
    /// (`Idempotency-Key` headers): the call then takes effect once even if the step runs
    /// twice (a crash between the call and the step's checkpoint).
    ///
    /// ```
    /// # fn demo(cx: &durable_core::TaskContext<()>) {
    /// let key = cx.idempotency_key("charge-card"); // "<task id>/charge-card"
    /// assert!(key.ends_with("/charge-card"));
    /// # }
    /// ```
    pub fn idempotency_key(&self, step: &str) -> String {
        format!("{}/{step}", self.id)
    }

    /// The fence of this attempt: task id, lease owner and attempt number. A write made with
    /// it applies only while this attempt still holds the task; stores use it to write
    /// the attempt's completion or steps in the application's transaction.
    pub fn fence(&self) -> Fence {
        self.scope.fence
    }

    /// Takes step name `name` for this run. Called by [`step`](Self::step), and by stores
    /// that record a step in the application's transaction (`durable_sqlx::step_in`) before
    /// they write it.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateStep`] when this attempt already used the name.
    pub fn reserve_step(&self, name: &str) -> crate::Result<()> {
        if self.scope.take_name(name) {
            Ok(())
        } else {
            Err(Error::DuplicateStep {
                task: self.name,
                step: name.to_owned(),
            })
        }
    }

    /// Records that this attempt's completion was written in the caller's transaction
    /// (`durable_sqlx::complete_in`): when `run` returns, the runtime reads the row instead
    /// of completing it a second time. A completion that committed is final, whatever `run`
    /// returns; one whose transaction rolled back leaves the row `processing`, and the
    /// attempt counts as failed if `run` returned `Ok`.
    pub fn completion_written(&self) {
        self.scope.set_completion_written();
    }

    /// Records that a fenced write of this attempt applied to no row — it no longer holds
    /// its task (lease expired, another worker took it) — and returns the error to give the
    /// caller ([`Error::LeaseLost`]). The attempt's [`cancelled`](Self::cancelled) fires, and
    /// the runtime ends it as a lost lease: nothing more is written for it and this worker
    /// does not retry it.
    pub fn lease_lost(&self) -> Error {
        self.scope.set_lease_lost();
        self.cancel.cancel();
        Error::LeaseLost {
            id: self.id,
            attempt: self.attempt,
        }
    }

    /// Writes a step's checkpoint, retrying store errors for a while: the side effect
    /// happened, and losing its checkpoint to a blip means running it again.
    async fn save_step(&self, name: &str, output: &str) -> Result<(), TaskError> {
        let give_up = tokio::time::Instant::now() + SAVE_PATIENCE;
        let mut pause = Duration::from_millis(50);
        loop {
            match self
                .scope
                .store()
                .save_step(&self.scope.fence, name, output)
                .await
            {
                Ok(true) => return Ok(()),
                Ok(false) => return Err(TaskError::retryable(self.lease_lost())),
                Err(error)
                    if error.is_transient() && tokio::time::Instant::now() + pause < give_up =>
                {
                    tracing::warn!(task_id = %self.id, step = name, %error,
                        "could not record a finished step; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(error) => return Err(TaskError::retryable(error)),
            }
        }
    }
}
