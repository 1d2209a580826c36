//! SQLite store: the embedded default. One file, WAL, every write serialized through one
//! connection so `SQLITE_BUSY` never reaches the caller; reads use a small pool.

#[macro_use]
mod sql;

mod actions;
mod admin;
mod builder;
mod cancel;
mod combined;
mod cycle;
mod encode;
mod idempotency;
mod listing;
mod open;
mod overview;
mod parts;
#[cfg(test)]
mod plan;
mod rows;
mod schedule;
mod script;
mod steps;
mod unique;
mod worker;
mod writer_owner;

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::util::detached;
pub use builder::{Durability, SqliteStoreBuilder, WAL_SIZE_LIMIT};
pub(crate) use encode::insert_on;
pub(crate) use idempotency::record_on;
pub(crate) use steps::{complete_on, save_step_on};
use writer_owner::{Holder, WriterOwner};

#[derive(Debug)]
pub(super) struct Pools {
    pub(super) writer: SqlitePool,
    pub(super) reader: SqlitePool,
    /// Who holds a transaction from [`SqliteStore::begin`] on the writer connection.
    pub(super) owner: Arc<WriterOwner>,
    /// The time every statement takes as "now" (moved only by a test clock).
    pub(super) clock: Clock,
    /// Bumped when an operator's action made tasks due (a retry, a requeue): the runtimes of
    /// this process on the store ([`WorkerStore::wakeups`](durable_core::store::WorkerStore::wakeups))
    /// claim at once instead of at their next poll. Another process on the file polls.
    pub(super) due: tokio::sync::watch::Sender<u64>,
}

/// Task store on one SQLite file (or `sqlite::memory:` for tests).
///
/// Writes go through one connection in `BEGIN IMMEDIATE` transactions: inside the process
/// they queue instead of colliding, and another process on the same file is waited for
/// (`busy_timeout`) instead of failing with `SQLITE_BUSY`.
///
/// Share [`writer_pool`](Self::writer_pool) with your application's own writes on the same
/// file (through [`begin`](Self::begin)) to keep that guarantee for them too.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> durable_sqlx::Result<()> {
/// use durable_sqlx::sqlite::SqliteStore;
///
/// let store = SqliteStore::connect("sqlite://app.db").await?; // created if missing
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) inner: Arc<Pools>,
}

impl SqliteStore {
    /// Settings for `url`: `sqlite://path/to/file.db`, `sqlite::memory:`, or a bare path.
    pub fn builder(url: impl Into<String>) -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            url: url.into(),
            durability: Durability::Full,
            readers: 4,
            busy_timeout: Duration::from_secs(10),
            acquire_timeout: Duration::from_secs(30),
        }
    }

    /// Opens `url` with default settings (creating the file if missing).
    pub async fn connect(url: impl Into<String>) -> Result<Self> {
        Self::builder(url).connect().await
    }

    /// The single-connection pool every write goes through.
    pub fn writer_pool(&self) -> &SqlitePool {
        &self.inner.writer
    }

    /// The pool for reads.
    pub fn reader_pool(&self) -> &SqlitePool {
        &self.inner.reader
    }

    /// Opens a `BEGIN IMMEDIATE` transaction on the writer connection, for the application's
    /// own writes together with [`enqueue_in`](crate::enqueue_in).
    ///
    /// # Cancel safety
    ///
    /// The `BEGIN` runs in a spawned task, so dropping this future (a client disconnect
    /// dropping a handler) cannot leave the pooled connection inside a transaction.
    ///
    /// # The only writer connection
    ///
    /// While the transaction is open, every other write of the process waits: keep it short.
    /// Write tasks in it with [`enqueue_in`](crate::enqueue_in) (`Durable::spawn_in`): an
    /// enqueue through the [`Client`](durable_core::Client) needs the connection this
    /// transaction holds. From the task that called `begin` (or, in a runtime's main future,
    /// the same thread), such an enqueue fails with
    /// [`Error::InsideWriterTransaction`](durable_core::Error::InsideWriterTransaction)
    /// instead of waiting; from another task it waits for the commit — so a task that awaits
    /// a second task enqueueing through the client, while holding the transaction, still
    /// waits until the writer's 30 s acquire timeout.
    pub async fn begin(&self) -> Result<Transaction<'static, Sqlite>> {
        let pool = self.inner.writer.clone();
        let owner = Arc::clone(&self.inner.owner);
        let holder = Holder::current();
        detached("begin", async move {
            let tx = pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(Error::db("begin"))?;
            // Before the transaction exists for anyone to drop: its release comes after.
            owner.hold(holder);
            Ok(tx)
        })
        .await
    }

    /// The store's "now" in Unix milliseconds: every time it writes or compares is taken
    /// from here (the system clock, plus what a test clock moved it by).
    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Runs one write transaction detached from the caller.
    async fn transaction<T, F>(&self, operation: &'static str, body: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let pool = self.inner.writer.clone();
        detached(operation, async move {
            let mut tx = pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(Error::db(operation))?;
            let value = body(&mut tx).await?;
            tx.commit().await.map_err(Error::db(operation))?;
            Ok(value)
        })
        .await
    }
}

/// A boxed future borrowing the connection it runs on.
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

fn to_core<T>(r: Result<T>) -> durable_core::Result<T> {
    r.map_err(Into::into)
}
