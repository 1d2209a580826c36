//! [`Batch`]: tasks of several types, stored in one transaction.

use super::handle::Client;
use super::options::EnqueueOptions;
use crate::error::Result;
use crate::ids::TaskId;
use crate::store::{NewTask, ResponseRecord};
use crate::task::Task;

impl Client {
    /// Enqueues many tasks of one type in one transaction: all are stored, or none. Returns
    /// their ids in order. No size limit: a batch over the writer's cycle (4,096 rows or
    /// 16 MiB) is written in a transaction of its own, in several statements. Tasks of
    /// several types go together through a [`Batch`].
    pub async fn enqueue_many<T: Task>(
        &self,
        tasks: impl IntoIterator<Item = T>,
    ) -> Result<Vec<TaskId>> {
        self.enqueue_many_with(tasks.into_iter().map(|t| (t, EnqueueOptions::new())))
            .await
    }
    /// [`enqueue_many`](Self::enqueue_many) with options per task: all are stored, or none.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use durable_core::{Client, EnqueueOptions, Task};
    /// # use std::time::Duration;
    /// # async fn demo<T: Task>(client: Client, reminders: Vec<(T, u64)>) -> durable_core::Result<()> {
    /// let ids = client
    ///     .enqueue_many_with(reminders.into_iter().map(|(task, minutes)| {
    ///         (task, EnqueueOptions::new().delay(Duration::from_secs(60 * minutes)))
    ///     }))
    ///     .await?;
    /// # let _ = ids; Ok(()) }
    /// ```
    pub async fn enqueue_many_with<T: Task>(
        &self,
        tasks: impl IntoIterator<Item = (T, EnqueueOptions)>,
    ) -> Result<Vec<TaskId>> {
        let mut batch = self.batch();
        for (task, options) in tasks {
            batch.push_with(&task, options)?;
        }
        batch.commit().await
    }
    /// An empty [`Batch`]: tasks of any types, stored in one transaction.
    pub fn batch(&self) -> Batch {
        Batch::new(self.clone())
    }
}

/// Tasks of any types, stored together: all of them, or none.
///
/// Each task is checked and serialized when pushed (the errors of
/// [`Client::prepare`]), so a task that cannot be stored is refused before anything is
/// written; [`commit`](Self::commit) then writes them all in one transaction and returns once
/// committed. Dropping a batch without committing it stores nothing.
///
/// # Examples
///
/// ```no_run
/// # use durable_core::{Client, Task};
/// # async fn demo<A: Task, B: Task>(client: Client, welcome: A, audit: B) -> durable_core::Result<()> {
/// let mut batch = client.batch();
/// let email = batch.push(&welcome)?;
/// batch.push(&audit)?;
/// batch.commit().await?; // both stored, or neither
/// println!("welcome email is task {email}");
/// # Ok(()) }
/// ```
///
/// # Cancel safety
///
/// Dropping the future of [`commit`](Self::commit) does not cancel the write: the rows are
/// committed (or fail) regardless; only the answer is lost.
#[derive(Debug)]
pub struct Batch {
    client: Client,
    rows: Vec<NewTask>,
}

impl Batch {
    pub(super) fn new(client: Client) -> Self {
        Self {
            client,
            rows: Vec::new(),
        }
    }

    /// Adds `task` with its type's options; returns the id it will have.
    pub fn push<T: Task>(&mut self, task: &T) -> Result<TaskId> {
        self.push_with(task, EnqueueOptions::new())
    }

    /// Adds `task` with overrides; returns the id it will have if stored (with a unique key,
    /// [`commit`](Self::commit) tells the id that survived).
    #[allow(
        clippy::needless_pass_by_value,
        reason = "takes the options like `Client::enqueue_with` does: the caller hands them over"
    )]
    pub fn push_with<T: Task>(&mut self, task: &T, options: EnqueueOptions) -> Result<TaskId> {
        let row = self.client.prepare(task, &options)?;
        let id = row.id;
        self.rows.push(row);
        Ok(id)
    }

    /// Tasks pushed so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The names of the tasks pushed so far, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rows.iter().map(|row| row.name.as_str())
    }

    /// Stores every task pushed, in one transaction; returns their ids in order once
    /// committed. An empty batch writes nothing.
    ///
    /// A task with a [unique key](EnqueueOptions::unique) that another task holds — one
    /// already stored, or one pushed earlier in this batch — is not stored: its place in the
    /// answer holds the id of the task holding the key, which may differ from the id
    /// [`push_with`](Self::push_with) returned.
    pub async fn commit(self) -> Result<Vec<TaskId>> {
        self.client.insert(self.rows).await
    }

    /// [`commit`](Self::commit), with the response of an idempotent request recorded in the
    /// same transaction: the tasks and the record are both stored, or neither. A record whose
    /// key was taken over by another request (its token no longer holds the key) fails the
    /// commit as refused ([`Error::Rejected`](crate::Error::Rejected)). An empty batch still
    /// writes the record.
    pub async fn commit_with_response(self, record: ResponseRecord) -> Result<Vec<TaskId>> {
        let ids = self.rows.iter().map(|row| row.id).collect();
        self.client
            .writer()
            .insert_with(self.rows, vec![record])
            .await?;
        Ok(ids)
    }
}
