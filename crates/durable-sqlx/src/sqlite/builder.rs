//! Opening a SQLite store: connection settings and durability.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::open;
use super::writer_owner::WriterOwner;
use super::{Pools, SqliteStore};
use crate::error::{Error, Result};

/// How SQLite makes a commit durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous=FULL` (default): an acknowledged task survives power loss, not only a
    /// process crash. Each commit waits for an fsync of the WAL; group commit amortizes it.
    #[default]
    Full,
    /// `synchronous=NORMAL`: commits do not wait for fsync. Survives a process crash, but
    /// the last transactions before a power loss or OS crash can be lost — acknowledged
    /// tasks included. Several times faster per single-row transaction.
    Normal,
}

/// Connection settings of a [`SqliteStore`].
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> durable_sqlx::Result<()> {
/// use durable_sqlx::sqlite::{Durability, SqliteStore};
/// let store = SqliteStore::builder("sqlite://app.db")
///     .durability(Durability::Full)
///     .readers(4)
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStoreBuilder {
    pub(super) url: String,
    pub(super) durability: Durability,
    pub(super) readers: u32,
    pub(super) busy_timeout: Duration,
    pub(super) acquire_timeout: Duration,
}

/// Bytes the WAL file is cut back to after a checkpoint that copied every frame (`PRAGMA
/// journal_size_limit`): 64 MiB, about 16,000 pages, far above what the automatic checkpoint
/// (every 1,000 pages) lets it reach when no reader holds it back.
pub const WAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

impl SqliteStoreBuilder {
    /// Sets the commit durability (default [`Durability::Full`]).
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Read connections (default 4). Writes always use one connection.
    #[must_use]
    pub fn readers(mut self, n: u32) -> Self {
        self.readers = n.max(1);
        self
    }

    /// How long a write waits for another *process* holding the write lock (default 10 s).
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How long an operation waits for a connection before failing (default 30 s). Every
    /// write shares one connection, which a write may legitimately hold for a while: a large
    /// batch, or up to [`busy_timeout`](Self::busy_timeout) waiting for another process's
    /// lock — keep this above that. (What bounds memory while writes wait is the client's
    /// write queue, `durable_core::client::ClientBuilder::max_queued_rows`, not this timeout.)
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Opens (and creates if missing) the database.
    pub async fn connect(self) -> Result<SqliteStore> {
        let url = self.url.trim();
        let with_scheme = if url.starts_with("sqlite:") {
            url.to_owned()
        } else {
            format!("sqlite://{url}")
        };
        let options = SqliteConnectOptions::from_str(&with_scheme)
            .map_err(|e| Error::InvalidUrl {
                url: url.to_owned(),
                reason: e.to_string(),
            })?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(self.busy_timeout)
            .synchronous(match self.durability {
                Durability::Full => SqliteSynchronous::Full,
                Durability::Normal => SqliteSynchronous::Normal,
            });
        let in_memory = options.get_filename().as_os_str() == ":memory:"
            || url.contains(":memory:")
            || url.contains("mode=memory");
        let options = if in_memory {
            options
        } else {
            // Create missing parent directories too, not only the file.
            if let Some(dir) = options.get_filename().parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|e| Error::InvalidUrl {
                        url: url.to_owned(),
                        reason: format!("cannot create directory {}: {e}", dir.display()),
                    })?;
                }
            }
            // A checkpoint cannot copy frames past the snapshot of the oldest open reader, so
            // a long read transaction (a report, a backup, a stuck connection) lets the WAL
            // grow by every write meanwhile. Without a limit the file keeps that size for
            // good; with one, the first write after a complete checkpoint cuts it back.
            options
                .journal_mode(SqliteJournalMode::Wal)
                .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string())
        };
        // No ping before each acquire: the connections are in-process, and a ping is one
        // more round trip to the connection's thread on every write.
        let owner = Arc::new(WriterOwner::default());
        let released = Arc::clone(&owner);
        let writer_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(self.acquire_timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            // Back in the pool: a transaction from `begin` on it has ended.
            .after_release(move |_, _| {
                released.released();
                Box::pin(std::future::ready(Ok(true)))
            });
        // Room for the cycle scripts (one per shape) besides the usual statements, and for a
        // large claim's rows without the connection's thread waiting on us.
        let writer_options = options
            .clone()
            .statement_cache_capacity(256)
            .row_buffer_size(1024);
        let writer = open::retry_while_busy(self.busy_timeout, || {
            writer_pool.clone().connect_with(writer_options.clone())
        })
        .await
        .map_err(Error::db("connect"))?;
        // An in-memory database lives in its one connection: readers must share it.
        let reader = if in_memory {
            writer.clone()
        } else {
            let reader_pool = SqlitePoolOptions::new()
                .max_connections(self.readers)
                .test_before_acquire(false)
                .acquire_timeout(self.acquire_timeout);
            let reader_options = options.read_only(false);
            open::retry_while_busy(self.busy_timeout, || {
                reader_pool.clone().connect_with(reader_options.clone())
            })
            .await
            .map_err(Error::db("connect"))?
        };
        Ok(SqliteStore {
            inner: Arc::new(Pools {
                writer,
                reader,
                owner,
                clock: crate::clock::Clock::default(),
                due: tokio::sync::watch::Sender::new(0),
            }),
        })
    }
}
