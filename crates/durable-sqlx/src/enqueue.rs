//! Transactional enqueue: tasks written by the caller's own connection or transaction.

use durable_core::store::{async_trait, NewTask};
use durable_core::{Client, EnqueueOptions, Task, TaskId};

use crate::error::Result;

/// A database connection tasks can be inserted on — in practice `&mut *tx` of the
/// application's own `sqlx::Transaction`, so the tasks commit or roll back with its rows.
#[async_trait]
pub trait EnqueueConnection: Send {
    /// Inserts prepared rows on this connection (never claimed: the runtime finds them once
    /// the caller commits). Returns one id per row: its own, or — for a row whose unique key
    /// another task holds, so it was not inserted — that task's.
    async fn insert_tasks(&mut self, tasks: &[NewTask]) -> Result<Vec<TaskId>>;
}

#[cfg(feature = "sqlite")]
#[async_trait]
impl EnqueueConnection for sqlx::SqliteConnection {
    async fn insert_tasks(&mut self, tasks: &[NewTask]) -> Result<Vec<TaskId>> {
        // No store here to ask: the system clock. A test clock only moves forward, so such
        // a row is due at once under it too (a delay was already counted by the client).
        crate::sqlite::insert_on(self, tasks, crate::clock::system_now_ms()).await
    }
}

/// On PostgreSQL the insert also queues the `NOTIFY` that wakes other instances; PostgreSQL
/// delivers it when the caller's transaction commits (once per transaction), and drops it on
/// rollback.
#[cfg(feature = "postgres")]
#[async_trait]
impl EnqueueConnection for sqlx::PgConnection {
    async fn insert_tasks(&mut self, tasks: &[NewTask]) -> Result<Vec<TaskId>> {
        crate::postgres::insert_on(self, tasks).await
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
///
/// With a [unique key](EnqueueOptions::unique) that another task holds — committed, or
/// written earlier in this transaction — nothing is inserted and the id returned is that
/// task's. On PostgreSQL, a concurrent transaction that inserted the key and has not yet
/// committed makes this insert wait for its outcome: if it commits, its task is returned; if
/// it rolls back, this one is inserted.
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
    let survivors = conn.insert_tasks(std::slice::from_ref(&row)).await?;
    Ok(survivors.first().copied().unwrap_or(id))
}

/// A store that can open a transaction on its database for the application's own writes,
/// safely against cancellation (the `BEGIN` runs detached from the caller).
pub trait TransactionSource: Send + Sync {
    /// The sqlx database driver.
    type Database: sqlx::Database;

    /// Opens a transaction (SQLite: `BEGIN IMMEDIATE` on the writer connection).
    fn begin_transaction(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Database>>> + Send;
}

#[cfg(feature = "sqlite")]
impl TransactionSource for crate::sqlite::SqliteStore {
    type Database = sqlx::Sqlite;

    fn begin_transaction(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>>> + Send
    {
        self.begin()
    }
}

/// A transaction that can be committed in a spawned task, so that dropping the caller (a
/// client disconnect) cannot interrupt the `COMMIT` half-way.
pub trait DetachedCommit: Send + Sized {
    /// Commits in a spawned task and awaits it. (Boxed: handlers' futures must stay `Send`
    /// for any lifetime, which an opaque future over a transaction type cannot prove.)
    fn commit_detached(self) -> BoxFuture<Result<()>>;
}

/// A boxed, sendable future.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

#[cfg(feature = "sqlite")]
impl DetachedCommit for sqlx::Transaction<'static, sqlx::Sqlite> {
    fn commit_detached(self) -> BoxFuture<Result<()>> {
        Box::pin(crate::util::detached("commit", async move {
            self.commit()
                .await
                .map_err(crate::error::Error::db("commit"))
        }))
    }
}

#[cfg(feature = "postgres")]
impl TransactionSource for crate::postgres::PostgresStore {
    type Database = sqlx::Postgres;

    fn begin_transaction(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, sqlx::Postgres>>> + Send
    {
        self.begin()
    }
}

#[cfg(feature = "postgres")]
impl DetachedCommit for sqlx::Transaction<'static, sqlx::Postgres> {
    fn commit_detached(self) -> BoxFuture<Result<()>> {
        Box::pin(crate::util::detached("commit", async move {
            self.commit()
                .await
                .map_err(crate::error::Error::db("commit"))
        }))
    }
}
