//! Transactional enqueue: tasks written by the caller's own connection or transaction.

use durable_core::{async_trait, Client, EnqueueOptions, NewTask, Task, TaskId};

use crate::error::Result;

/// A database connection tasks can be inserted on — in practice `&mut *tx` of the
/// application's own `sqlx::Transaction`, so the tasks commit or roll back with its rows.
#[async_trait]
pub trait EnqueueConnection: Send {
    /// Inserts prepared rows on this connection (never claimed: the runtime finds them once
    /// the caller commits).
    async fn insert_tasks(&mut self, tasks: &[NewTask]) -> Result<()>;
}

#[cfg(feature = "sqlite")]
#[async_trait]
impl EnqueueConnection for sqlx::SqliteConnection {
    async fn insert_tasks(&mut self, tasks: &[NewTask]) -> Result<()> {
        crate::sqlite::insert_on(self, tasks).await
    }
}

/// Enqueues `task` on `conn` (the caller's transaction): validated like any enqueue, stored
/// only if the caller commits. Call [`Client::notify_committed`] after the commit to start it
/// at once.
pub async fn enqueue_in<C, T>(conn: &mut C, client: &Client, task: T) -> Result<TaskId>
where
    C: EnqueueConnection + ?Sized,
    T: Task,
{
    enqueue_in_with(conn, client, task, EnqueueOptions::new()).await
}

/// [`enqueue_in`] with per-enqueue options.
pub async fn enqueue_in_with<C, T>(
    conn: &mut C,
    client: &Client,
    task: T,
    options: EnqueueOptions,
) -> Result<TaskId>
where
    C: EnqueueConnection + ?Sized,
    T: Task,
{
    let row = client.prepare(&task, &options)?;
    let id = row.id;
    conn.insert_tasks(std::slice::from_ref(&row)).await?;
    Ok(id)
}
