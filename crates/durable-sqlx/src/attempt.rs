//! Transactional completion: an attempt's completion — and its steps' checkpoints — written
//! in the application's own transaction, with the application's rows, fenced.
//!
//! What this makes **exactly once** is a task's writes to the database the task store lives
//! in: they commit in the same transaction as the completion (or the step's checkpoint), and
//! that transaction can only commit its completion while the attempt still holds the task.
//! An attempt that lost its lease gets [`Error::Task`]`(`[`LeaseLost`](durable_core::Error::LeaseLost)`)`
//! and must not commit (pass the error on with `?`: dropping the transaction rolls it back),
//! so its rows never appear; the attempt that holds the task writes them once.
//!
//! Calls to anything else — an email API, a payment provider, another database — are only
//! **effectively once**: the attempt may crash after the call and before its commit, and the
//! next attempt calls again. Pass [`TaskContext::idempotency_key`] so the other side
//! deduplicates.

use durable_core::store::{async_trait, Fence};
use durable_core::TaskContext;
use serde::Serialize;

use crate::error::{Error, Result};

/// A connection an attempt's completion and steps can be written on — in practice
/// `&mut *tx` of the application's own `sqlx::Transaction` on the store's database.
#[async_trait]
pub trait AttemptConnection: Send {
    /// Marks the attempt `fence` completed on this connection; `false` when it no longer
    /// holds its task (nothing was written).
    async fn complete_attempt(&mut self, fence: &Fence) -> Result<bool>;

    /// Records step `name` of the attempt `fence` with its result `output` (JSON) on this
    /// connection; `false` when the attempt no longer holds its task (nothing was written).
    async fn save_step(&mut self, fence: &Fence, name: &str, output: &str) -> Result<bool>;
}

#[cfg(feature = "sqlite")]
#[async_trait]
impl AttemptConnection for sqlx::SqliteConnection {
    async fn complete_attempt(&mut self, fence: &Fence) -> Result<bool> {
        // No store here to ask: the system clock (what a test clock moves is the store's).
        crate::sqlite::complete_on(self, fence, crate::clock::system_now_ms()).await
    }
    async fn save_step(&mut self, fence: &Fence, name: &str, output: &str) -> Result<bool> {
        crate::sqlite::save_step_on(self, fence, name, output, crate::clock::system_now_ms()).await
    }
}

#[cfg(feature = "postgres")]
#[async_trait]
impl AttemptConnection for sqlx::PgConnection {
    async fn complete_attempt(&mut self, fence: &Fence) -> Result<bool> {
        crate::postgres::complete_on(self, fence).await
    }
    async fn save_step(&mut self, fence: &Fence, name: &str, output: &str) -> Result<bool> {
        crate::postgres::save_step_on(self, fence, name, output).await
    }
}

/// Completes the running attempt of `cx` in the caller's transaction `conn`: the task is
/// `completed` if, and only if, that transaction commits — together with whatever else the
/// task wrote in it. Commit, then return `Ok(())` from `run`: the runtime sees the completion
/// and writes nothing more (a completion that committed is final).
///
/// # Errors
///
/// [`Error::Task`]`(`[`LeaseLost`](durable_core::Error::LeaseLost)`)` when the attempt no
/// longer holds its task (its lease expired and another worker took it): **do not commit**;
/// return the error (`?`) so the transaction is dropped and rolled back. The attempt then
/// ends as a lost lease; the worker holding the task writes its own rows. A database error
/// otherwise.
///
/// # Examples
///
/// ```no_run
/// # #[cfg(feature = "sqlite")]
/// # mod demo {
/// use durable_core::{Task, TaskContext, TaskError};
/// use durable_sqlx::sqlite::SqliteStore;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct GrantCredits { user_id: i64 }
///
/// impl Task for GrantCredits {
///     const NAME: &'static str = "grant_credits";
///     type State = SqliteStore;
///
///     async fn run(self, cx: TaskContext<SqliteStore>) -> Result<(), TaskError> {
///         let mut tx = cx.state().begin().await?;
///         sqlx::query("UPDATE users SET credits = credits + 100 WHERE id = ?")
///             .bind(self.user_id)
///             .execute(&mut *tx)
///             .await?;
///         // The credits and the completion: both, or neither; never twice.
///         durable_sqlx::complete_in(&mut *tx, &cx).await?;
///         tx.commit().await?;
///         Ok(())
///     }
/// }
/// # }
/// ```
pub async fn complete_in<C, S>(conn: &mut C, cx: &TaskContext<S>) -> Result<()>
where
    C: AttemptConnection + ?Sized,
{
    if conn.complete_attempt(&cx.fence()).await? {
        cx.completion_written();
        Ok(())
    } else {
        Err(Error::Task(cx.lease_lost()))
    }
}

/// Records step `name` of the running attempt of `cx`, with result `value`, in the caller's
/// transaction `conn`: a step whose own writes go to the store's database commits them with
/// its checkpoint. Check [`TaskContext::finished_step`] first: an earlier attempt may have
/// committed it already.
///
/// # Errors
///
/// [`Error::Task`]`(`[`LeaseLost`](durable_core::Error::LeaseLost)`)` when the attempt no
/// longer holds its task — **do not commit**, return the error; `Error::Task(DuplicateStep)`
/// when this attempt already used `name`; `Error::Task(StepOutput)` when `value` does not
/// serialize; a database error otherwise (a step recorded already under `name` included).
///
/// # Examples
///
/// ```no_run
/// # #[cfg(feature = "postgres")]
/// # async fn demo(cx: durable_core::TaskContext<sqlx::PgPool>) -> Result<(), durable_core::TaskError> {
/// let order_id: i64 = match cx.finished_step("create-order").await? {
///     Some(id) => id, // committed by an earlier attempt
///     None => {
///         let mut tx = cx.state().begin().await?;
///         let id: i64 = sqlx::query_scalar("INSERT INTO orders DEFAULT VALUES RETURNING id")
///             .fetch_one(&mut *tx)
///             .await?;
///         durable_sqlx::step_in(&mut *tx, &cx, "create-order", &id).await?;
///         tx.commit().await?; // the order and the step's checkpoint, together
///         id
///     }
/// };
/// # let _ = order_id; Ok(()) }
/// ```
pub async fn step_in<C, S, T>(
    conn: &mut C,
    cx: &TaskContext<S>,
    name: &str,
    value: &T,
) -> Result<()>
where
    C: AttemptConnection + ?Sized,
    T: Serialize + ?Sized,
{
    cx.reserve_step(name)?;
    let output = serde_json::to_string(value).map_err(|source| {
        Error::Task(durable_core::Error::StepOutput {
            step: name.to_owned(),
            source,
        })
    })?;
    if conn.save_step(&cx.fence(), name, &output).await? {
        Ok(())
    } else {
        Err(Error::Task(cx.lease_lost()))
    }
}
