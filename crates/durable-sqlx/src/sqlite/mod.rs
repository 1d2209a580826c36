//! SQLite store: the embedded default. One file, WAL, every write serialized through one
//! connection so `SQLITE_BUSY` never reaches the caller; reads use a small pool.

mod open;
#[cfg(test)]
mod plan;
mod rows;
mod sql;
mod writer_owner;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use durable_core::{
    async_trait, ClaimRequest, ClaimedTask, Fence, NewTask, RescueReport, StateCounts, Store,
    TaskId, TaskRecord, WriteBatch, WriteOutcome, REQUEUE_LIMIT,
};
use serde_json::json;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqliteConnection, SqlitePool, Transaction};

use crate::error::{Error, Result};
use crate::util::{combined_write, detached, millis, Combined, WriteFailure};
use rows::{claimed_rows, fail_unreadable, fence_from_row, parse_id, record_from_row};
use writer_owner::{Holder, WriterOwner};

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
    url: String,
    durability: Durability,
    readers: u32,
    busy_timeout: Duration,
    acquire_timeout: Duration,
}

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
    /// write queue, `durable_core::ClientBuilder::max_queued_rows`, not this timeout.)
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
            options.journal_mode(SqliteJournalMode::Wal)
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
            }),
        })
    }
}

#[derive(Debug)]
struct Pools {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Who holds a transaction from [`SqliteStore::begin`] on the writer connection.
    owner: Arc<WriterOwner>,
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
/// use durable_core::Store;
/// use durable_sqlx::sqlite::SqliteStore;
///
/// let store = SqliteStore::connect("sqlite://app.db").await?; // created if missing
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Pools>,
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

    /// Runs one write transaction detached from the caller.
    async fn write<T, F>(&self, operation: &'static str, body: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> futures_core_boxed::BoxFuture<'c, Result<T>>
            + Send
            + 'static,
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

/// A boxed future alias without pulling in `futures`.
mod futures_core_boxed {
    pub(crate) type BoxFuture<'a, T> =
        std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn fences_json(fences: &[Fence]) -> String {
    serde_json::Value::Array(
        fences
            .iter()
            .map(|f| json!({"id": f.id.to_string(), "owner": f.owner.to_string(), "attempt": f.attempt}))
            .collect(),
    )
    .to_string()
}

/// One row of the insert's JSON array, in the shape `sql::INSERT` reads.
#[derive(serde::Serialize)]
struct RowJson<'a> {
    id: String,
    name: &'a str,
    queue: &'a str,
    payload: &'a str,
    state: &'static str,
    priority: i16,
    attempts: u32,
    max_attempts: u32,
    run_at: i64,
    lease_owner: Option<String>,
    lease_expires_at: Option<i64>,
    started_at: Option<i64>,
}

fn rows_json(tasks: &[NewTask], now: i64) -> Result<String> {
    let rows: Vec<RowJson<'_>> = tasks
        .iter()
        .map(|t| {
            let run_at = t.run_at.map_or(now, |at| at.timestamp_millis());
            let (state, attempts, owner, expires, started) = match &t.claimed_by {
                Some(claim) => (
                    "processing",
                    1,
                    Some(claim.owner.to_string()),
                    Some(now + millis(claim.lease)),
                    Some(now),
                ),
                None => ("pending", 0, None, None, None),
            };
            RowJson {
                id: t.id.to_string(),
                name: &t.name,
                queue: &t.queue,
                payload: &t.payload,
                state,
                priority: t.priority,
                attempts,
                max_attempts: t.max_attempts.max(1),
                run_at,
                lease_owner: owner,
                lease_expires_at: expires,
                started_at: started,
            }
        })
        .collect();
    serde_json::to_string(&rows).map_err(|source| Error::Encode {
        what: "task rows as JSON",
        source: source.into(),
    })
}

/// Inserts rows on any SQLite connection (a caller's transaction included), all or none: a
/// batch too large for one statement ([`chunks`](crate::util::chunks)) is written in
/// several inside a savepoint (a transaction if the connection has none).
pub(crate) async fn insert_on(conn: &mut SqliteConnection, tasks: &[NewTask]) -> Result<()> {
    use sqlx::Connection as _;
    let now = now_ms();
    match crate::util::chunks(tasks).as_slice() {
        [] => Ok(()),
        [one] => insert_json(conn, rows_json(one, now)?, now).await,
        several => {
            let mut tx = conn.begin().await.map_err(Error::db("insert"))?;
            for chunk in several {
                insert_json(&mut tx, rows_json(chunk, now)?, now).await?;
            }
            tx.commit().await.map_err(Error::db("insert"))
        }
    }
}

/// Inserts rows already serialized by [`rows_json`] at `now`.
async fn insert_json(conn: &mut SqliteConnection, rows: String, now: i64) -> Result<()> {
    sqlx::query(sql::INSERT)
        .bind(rows)
        .bind(now)
        .execute(conn)
        .await
        .map_err(Error::db("insert"))?;
    Ok(())
}

/// The parameters of [`sql::cycle_script`] for `batch`'s completions and rows, the spare
/// slots of each bucket bound to NULL. The claim's come last and are added once the
/// connection is held ([`claim_args`]): its "now" must not predate rows committed while the
/// cycle waited for the connection.
fn bound_cycle_args(batch: &WriteBatch<'_>, now: i64) -> Result<SqliteArguments> {
    use sqlx::Arguments as _;
    let encode = |source: sqlx::error::BoxDynError| Error::Encode {
        what: "cycle parameters",
        source,
    };
    let mut args = SqliteArguments::default();
    let add = |args: &mut SqliteArguments, value: Value| -> Result<()> {
        match value {
            Value::Text(v) => args.add(v),
            Value::Int(v) => args.add(v),
            Value::Null => args.add(Option::<i64>::None),
        }
        .map_err(encode)
    };
    if !batch.complete.is_empty() {
        let slots = sql::bucket(batch.complete.len());
        add(&mut args, Value::Int(now))?;
        add(&mut args, Value::Int(now))?;
        for f in batch.complete {
            add(&mut args, Value::Text(f.id.to_string()))?;
        }
        for _ in batch.complete.len()..slots {
            add(&mut args, Value::Null)?;
        }
        for f in batch.complete {
            add(&mut args, Value::Text(f.id.to_string()))?;
            add(&mut args, Value::Text(f.owner.to_string()))?;
            add(&mut args, Value::Int(i64::from(f.attempt)))?;
        }
        for _ in batch.complete.len() * sql::FENCE_PARAMS..slots * sql::FENCE_PARAMS {
            add(&mut args, Value::Null)?;
        }
    }
    if !batch.insert.is_empty() {
        for t in batch.insert {
            let run_at = t.run_at.map_or(now, |at| at.timestamp_millis());
            add(&mut args, Value::Text(t.id.to_string()))?;
            add(&mut args, Value::Text(t.name.clone()))?;
            add(&mut args, Value::Text(t.queue.clone()))?;
            add(&mut args, Value::Text(t.payload.clone()))?;
            let local = t.claimed_by.as_ref();
            let state = if local.is_some() {
                "processing"
            } else {
                "pending"
            };
            add(&mut args, Value::Text(state.to_owned()))?;
            add(&mut args, Value::Int(i64::from(t.priority)))?;
            add(&mut args, Value::Int(i64::from(local.is_some())))?;
            add(&mut args, Value::Int(i64::from(t.max_attempts.max(1))))?;
            add(&mut args, Value::Int(run_at))?;
            add(
                &mut args,
                local.map_or(Value::Null, |l| Value::Text(l.owner.to_string())),
            )?;
            add(
                &mut args,
                local.map_or(Value::Null, |l| Value::Int(now + millis(l.lease))),
            )?;
            add(&mut args, local.map_or(Value::Null, |_| Value::Int(now)))?;
            add(&mut args, Value::Int(now))?;
            add(&mut args, Value::Int(now))?;
        }
        for _ in
            batch.insert.len() * sql::ROW_PARAMS..sql::bucket(batch.insert.len()) * sql::ROW_PARAMS
        {
            add(&mut args, Value::Null)?;
        }
    }
    Ok(args)
}

/// Appends the claim's parameters (owner, lease expiry, now, now, now, task names, limit)
/// at `now`.
fn claim_args(args: &mut SqliteArguments, claim: &ClaimRequest, now: i64) -> Result<()> {
    use sqlx::Arguments as _;
    let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
    let encode = |source: sqlx::error::BoxDynError| Error::Encode {
        what: "claim parameters",
        source,
    };
    args.add(claim.owner.to_string()).map_err(encode)?;
    for value in [now + millis(claim.lease), now, now, now] {
        args.add(value).map_err(encode)?;
    }
    args.add(names_json(&claim.names)?).map_err(encode)?;
    args.add(limit).map_err(encode)?;
    Ok(())
}

/// Task names as the JSON array the statements read with `json_each`.
fn names_json(names: &[String]) -> Result<String> {
    serde_json::to_string(names).map_err(|source| Error::Encode {
        what: "task names as JSON",
        source: source.into(),
    })
}

/// One bound value of a cycle.
enum Value {
    Text(String),
    Int(i64),
    Null,
}

/// After a cycle script: its rows, or — when a statement failed and left the transaction
/// open (unless `BEGIN` itself failed) — a rollback before the connection goes back to the
/// pool, and the failure classified.
async fn settle_script(
    conn: &mut SqliteConnection,
    operation: &'static str,
    result: std::result::Result<Vec<SqliteRow>, sqlx::Error>,
) -> std::result::Result<Vec<SqliteRow>, WriteFailure> {
    match result {
        Ok(rows) => Ok(rows),
        Err(error) => {
            if let Err(rollback) = sqlx::query("ROLLBACK").execute(&mut *conn).await {
                if !rollback.to_string().contains("no transaction is active") {
                    tracing::warn!(error = %rollback, "rollback after a failed write failed");
                    return Err(WriteFailure::Whole(Error::db(operation)(rollback)));
                }
            }
            Err(classify(operation, error))
        }
    }
}

/// Which of `fences` hold a row they completed (after a cycle whose `changes()` fell short).
async fn applied_on(conn: &mut SqliteConnection, fences: &[Fence]) -> Result<Vec<TaskId>> {
    let rows = sqlx::query(sql::APPLIED)
        .bind(fences_json(fences))
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::db("complete"))?;
    Ok(fences_among(
        fences,
        rows.iter().map(|r| r.try_get::<String, _>(0)),
    ))
}

/// The fences whose id is among `ids` (ids a completion returned). Matched as text against
/// the fences, so a value that does not read as text is left out rather than failing the
/// answer: the completion it belongs to is committed either way.
fn fences_among<E>(
    fences: &[Fence],
    ids: impl Iterator<Item = std::result::Result<String, E>>,
) -> Vec<TaskId> {
    let ids: std::collections::HashSet<String> = ids.filter_map(std::result::Result::ok).collect();
    fences
        .iter()
        .filter(|f| ids.contains(&f.id.to_string()))
        .map(|f| f.id)
        .collect()
}

/// After a cycle's `COMMIT`: nothing may fail the cycle any more. Claimed rows that cannot be
/// read are failed on their own (a failure to do so only logged: they come back when their
/// lease expires); the others go to the worker.
async fn settle_claimed(
    conn: &mut SqliteConnection,
    claim: Option<&ClaimRequest>,
    rows: &[&SqliteRow],
) -> Vec<ClaimedTask> {
    let Some(request) = claim else {
        return Vec::new();
    };
    let (claimed, unreadable) = claimed_rows(rows.iter().copied(), request.owner);
    if !unreadable.is_empty() {
        if let Err(error) = fail_unreadable(conn, request.owner, &unreadable).await {
            tracing::warn!(%error, "could not mark unreadable claimed rows failed; \
                they come back when their lease expires");
        }
    }
    claimed
}

/// Whether a failed combined write failed because of one of its parts (a constraint, a
/// trigger, a value out of range: the others may succeed alone) or as a whole (locked,
/// I/O, connection: nothing would succeed now).
fn classify(operation: &'static str, error: sqlx::Error) -> WriteFailure {
    let part = error
        .as_database_error()
        .and_then(sqlx::error::DatabaseError::code)
        .and_then(|code| code.parse::<i32>().ok())
        // SQLITE_ERROR, TOOBIG, CONSTRAINT (triggers included), MISMATCH, RANGE.
        .is_some_and(|code| matches!(code & 0xff, 1 | 18 | 19 | 20 | 25));
    let error = Error::db(operation)(error);
    if part {
        WriteFailure::Part(error)
    } else {
        WriteFailure::Whole(error)
    }
}

/// Claims per `request` on the writer connection, inside the caller's transaction.
async fn claim_on(conn: &mut SqliteConnection, request: &ClaimRequest) -> Result<Vec<ClaimedTask>> {
    if request.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let expires = now + millis(request.lease);
    let owner = request.owner.to_string();
    let names = names_json(&request.names)?;
    let mut remaining = request.limit;
    let mut claimed = Vec::new();
    for (queue, cap) in &request.capped {
        let n = (*cap).min(remaining);
        if n == 0 {
            continue;
        }
        let rows = sqlx::query(sql::CLAIM_QUEUE)
            .bind(&owner)
            .bind(expires)
            .bind(now)
            .bind(queue)
            .bind(n as i64)
            .bind(&names)
            .fetch_all(&mut *conn)
            .await
            .map_err(Error::db("claim"))?;
        let (got, unreadable) = claimed_rows(&rows, request.owner);
        fail_unreadable(conn, request.owner, &unreadable).await?;
        remaining -= got.len();
        claimed.extend(got);
    }
    if remaining > 0 {
        let excluded = serde_json::Value::from(
            request
                .capped
                .iter()
                .map(|(q, _)| q.clone())
                .collect::<Vec<_>>(),
        )
        .to_string();
        let rows = sqlx::query(sql::CLAIM_OTHERS)
            .bind(&owner)
            .bind(expires)
            .bind(now)
            .bind(excluded)
            .bind(remaining as i64)
            .bind(&names)
            .fetch_all(&mut *conn)
            .await
            .map_err(Error::db("claim"))?;
        let (got, unreadable) = claimed_rows(&rows, request.owner);
        fail_unreadable(conn, request.owner, &unreadable).await?;
        claimed.extend(got);
    }
    Ok(claimed)
}

/// Completes the fenced attempts (`fences` as JSON) inside the caller's transaction.
async fn complete_on(conn: &mut SqliteConnection, fences: String) -> Result<Vec<TaskId>> {
    let rows = sqlx::query(sql::COMPLETE)
        .bind(fences)
        .bind(now_ms())
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::db("complete"))?;
    rows.iter()
        .map(|r| {
            parse_id(
                &r.try_get::<String, _>("id")
                    .map_err(Error::db("complete"))?,
            )
        })
        .collect()
}

/// The completions' answer when their cycle committed but which of them applied could not be
/// read: an error for that part alone. Asked again, a completion gets its answer from the
/// row ([`sql::APPLIED`] recognises a completion its fence already made).
fn unknown_completions(error: &Error) -> durable_core::Error {
    durable_core::Error::store(
        "complete",
        format!(
            "the completions were committed, but which of them applied could not be read: {error}"
        ),
    )
}

/// One combined writer cycle on the writer connection, in one of three shapes.
struct Cycle {
    pool: SqlitePool,
    operation: &'static str,
    fences: Vec<Fence>,
    claim: Option<ClaimRequest>,
}

impl Cycle {
    /// The common shape: one multi-statement query with bound parameters
    /// ([`sql::cycle_script`]), one round trip to the connection's thread.
    async fn bound(
        self,
        script: &'static str,
        mut args: SqliteArguments,
    ) -> std::result::Result<Combined, WriteFailure> {
        let mut conn = self.acquire().await?;
        if let Some(claim) = &self.claim {
            claim_args(&mut args, claim, now_ms()).map_err(WriteFailure::Whole)?;
        }
        let result = sqlx::query_with(script, args).fetch_all(&mut *conn).await;
        let returned = settle_script(&mut conn, self.operation, result).await?;
        // Committed: from here on every part keeps its success.
        let (count_row, claim_rows): (Vec<&SqliteRow>, Vec<&SqliteRow>) =
            returned.iter().partition(|row| row.len() == 1);
        let changed = count_row
            .first()
            .and_then(|row| row.try_get::<i64, _>(0).ok());
        let claimed = settle_claimed(&mut conn, self.claim.as_ref(), &claim_rows).await;
        let completed = if self.fences.is_empty() {
            Ok(Vec::new())
        } else if changed == i64::try_from(self.fences.len()).ok() {
            Ok(self.fences.iter().map(|f| f.id).collect())
        } else {
            // Some fence was stale: ask which ones applied.
            applied_on(&mut conn, &self.fences)
                .await
                .map_err(|e| unknown_completions(&e))
        };
        Ok((completed, claimed))
    }

    /// Batches too large to bind: the same script shape with JSON arrays ([`sql::CYCLE`]).
    async fn json(self, rows: Option<String>) -> std::result::Result<Combined, WriteFailure> {
        let fences = (!self.fences.is_empty()).then(|| fences_json(&self.fences));
        let names = match &self.claim {
            Some(claim) => Some(names_json(&claim.names).map_err(WriteFailure::Whole)?),
            None => None,
        };
        let mut conn = self.acquire().await?;
        // After the wait for the connection, so the claim sees rows committed meanwhile.
        let now = now_ms();
        let index = usize::from(fences.is_some())
            | usize::from(rows.is_some()) << 1
            | usize::from(self.claim.is_some()) << 2;
        let result = sqlx::query(sql::CYCLE[index])
            .bind(fences.unwrap_or_default())
            .bind(now)
            .bind(rows.unwrap_or_default())
            .bind(self.claim.as_ref().map(|c| c.owner.to_string()))
            .bind(self.claim.as_ref().map(|c| now + millis(c.lease)))
            .bind(
                self.claim
                    .as_ref()
                    .map(|c| i64::try_from(c.limit).unwrap_or(i64::MAX)),
            )
            .bind(names)
            .fetch_all(&mut *conn)
            .await;
        let returned = settle_script(&mut conn, self.operation, result).await?;
        // Committed: from here on every part keeps its success.
        let (completions, claim_rows): (Vec<&SqliteRow>, Vec<&SqliteRow>) =
            returned.iter().partition(|row| row.len() == 1);
        let completed = fences_among(
            &self.fences,
            completions.iter().map(|row| row.try_get::<String, _>(0)),
        );
        let claimed = settle_claimed(&mut conn, self.claim.as_ref(), &claim_rows).await;
        Ok((Ok(completed), claimed))
    }

    /// A claim with per-queue caps needs one statement per queue, each sized by the last:
    /// one transaction, statement by statement.
    async fn stepwise(
        self,
        rows: Option<String>,
        now: i64,
    ) -> std::result::Result<Combined, WriteFailure> {
        let whole = |e| WriteFailure::Whole(Error::db(self.operation)(e));
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(whole)?;
        let completed = if self.fences.is_empty() {
            Vec::new()
        } else {
            complete_on(&mut tx, fences_json(&self.fences))
                .await
                .map_err(WriteFailure::Part)?
        };
        if let Some(rows) = rows {
            insert_json(&mut tx, rows, now)
                .await
                .map_err(WriteFailure::Part)?;
        }
        let claimed = match &self.claim {
            Some(request) => claim_on(&mut tx, request)
                .await
                .map_err(WriteFailure::Part)?,
            None => Vec::new(),
        };
        tx.commit().await.map_err(whole)?;
        Ok((Ok(completed), claimed))
    }

    async fn acquire(
        &self,
    ) -> std::result::Result<sqlx::pool::PoolConnection<Sqlite>, WriteFailure> {
        self.pool
            .acquire()
            .await
            .map_err(|e| WriteFailure::Whole(Error::db(self.operation)(e)))
    }
}

impl SqliteStore {
    /// The rows could not be encoded: nothing about them can be written, the rest of the
    /// cycle still can.
    async fn write_without_rows(&self, batch: WriteBatch<'_>, error: Error) -> WriteOutcome {
        let rest = WriteBatch::new().complete(batch.complete);
        let rest = match batch.claim {
            Some(claim) => rest.claim(claim),
            None => rest,
        };
        let outcome = Store::write(self, rest).await;
        WriteOutcome::new(Err(error.into()), outcome.completed, outcome.claimed)
    }
}

fn to_core<T>(r: Result<T>) -> durable_core::Result<T> {
    r.map_err(Into::into)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    /// Every write goes through the one writer connection.
    fn single_writer(&self) -> bool {
        true
    }

    /// Applies the embedded migrations missing from the file, in one `BEGIN IMMEDIATE`
    /// transaction on the writer connection: processes migrating one file at once wait for
    /// each other. Starts against a newer schema whose migrations accept this version, and
    /// fails naming both versions otherwise (see `docs/UPGRADING.md`).
    async fn migrate(&self) -> durable_core::Result<()> {
        let pool = self.inner.writer.clone();
        to_core(
            detached("migrate", async move {
                let migrate = &crate::migrate::sqlite::MIGRATOR;
                crate::migrate::sqlite::run(&pool, &migrate.migrations).await
            })
            .await,
        )
    }

    async fn insert(&self, tasks: &[NewTask]) -> durable_core::Result<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        let tasks = tasks.to_vec();
        to_core(
            self.write("insert", move |conn| {
                Box::pin(async move { insert_on(conn, &tasks).await })
            })
            .await,
        )
    }

    async fn claim(&self, request: &ClaimRequest) -> durable_core::Result<Vec<ClaimedTask>> {
        if request.is_empty() {
            return Ok(Vec::new());
        }
        let request = request.clone();
        to_core(
            self.write("claim", move |conn| {
                Box::pin(async move { claim_on(conn, &request).await })
            })
            .await,
        )
    }

    /// One `BEGIN IMMEDIATE` transaction for the whole cycle — completions, inserts, claim —
    /// sent as one multi-statement query: one commit (one fsync with `synchronous=FULL`) and
    /// one round trip to the connection's thread instead of three transactions of three.
    async fn write(&self, batch: WriteBatch<'_>) -> WriteOutcome {
        if batch.is_empty() {
            return WriteOutcome::new(Ok(()), Ok(Vec::new()), Ok(Vec::new()));
        }
        let now = now_ms();
        let claim = batch.claim.filter(|c| !c.is_empty()).cloned();
        let operation = match (batch.complete.is_empty(), batch.insert.is_empty(), &claim) {
            (false, true, None) => "complete",
            (true, false, None) => "insert",
            (true, true, Some(_)) => "claim",
            _ => "write",
        };
        if crate::util::chunks(batch.insert).len() > 1 {
            // Too large for one statement: the rows in a transaction of their own, written
            // in several, then the rest of the cycle.
            let inserted = Store::insert(self, batch.insert).await;
            let mut rest = batch;
            rest.insert = &[];
            let rest = Store::write(self, rest).await;
            return WriteOutcome::new(inserted, rest.completed, rest.claimed);
        }
        let pool = self.inner.writer.clone();
        let capped = claim.as_ref().is_some_and(|c| !c.capped.is_empty());
        if !capped
            && batch.insert.len() <= sql::MAX_BOUND_ROWS
            && batch.complete.len() <= sql::MAX_BOUND_ROWS
        {
            let args = match bound_cycle_args(&batch, now) {
                Ok(args) => args,
                Err(error) => return self.write_without_rows(batch, error).await,
            };
            let script = sql::cycle_script(
                (!batch.complete.is_empty()).then(|| sql::bucket(batch.complete.len())),
                (!batch.insert.is_empty()).then(|| sql::bucket(batch.insert.len())),
                claim.is_some(),
            );
            let cycle = Cycle {
                pool,
                operation,
                fences: batch.complete.to_vec(),
                claim,
            };
            return combined_write(self, batch, cycle.bound(script, args)).await;
        }
        let rows = match (!batch.insert.is_empty())
            .then(|| rows_json(batch.insert, now))
            .transpose()
        {
            Ok(rows) => rows,
            Err(error) => return self.write_without_rows(batch, error).await,
        };
        let cycle = Cycle {
            pool,
            operation,
            fences: batch.complete.to_vec(),
            claim,
        };
        if capped {
            combined_write(self, batch, cycle.stepwise(rows, now)).await
        } else {
            combined_write(self, batch, cycle.json(rows)).await
        }
    }

    async fn heartbeat(&self, held: &[Fence], lease: Duration) -> durable_core::Result<Vec<Fence>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let fences = fences_json(held);
        to_core(
            self.write("heartbeat", move |conn| {
                Box::pin(async move {
                    let now = now_ms();
                    let rows = sqlx::query(sql::HEARTBEAT)
                        .bind(fences)
                        .bind(now + millis(lease))
                        .bind(now)
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(Error::db("heartbeat"))?;
                    rows.iter().map(fence_from_row).collect()
                })
            })
            .await,
        )
    }

    async fn complete(&self, fences: &[Fence]) -> durable_core::Result<Vec<TaskId>> {
        if fences.is_empty() {
            return Ok(Vec::new());
        }
        let fences = fences_json(fences);
        to_core(
            self.write("complete", move |conn| {
                Box::pin(async move { complete_on(conn, fences).await })
            })
            .await,
        )
    }

    async fn retry(
        &self,
        fence: &Fence,
        delay: Duration,
        error: &str,
    ) -> durable_core::Result<bool> {
        let fences = fences_json(std::slice::from_ref(fence));
        let error = error.to_owned();
        to_core(
            self.write("retry", move |conn| {
                Box::pin(async move {
                    let now = now_ms();
                    let done = sqlx::query(sql::RETRY)
                        .bind(fences)
                        .bind(now)
                        .bind(now + crate::util::delay_ms(delay))
                        .bind(error)
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("retry"))?;
                    Ok(done.rows_affected() == 1)
                })
            })
            .await,
        )
    }

    async fn fail(&self, fence: &Fence, error: &str) -> durable_core::Result<bool> {
        let fences = fences_json(std::slice::from_ref(fence));
        let error = error.to_owned();
        to_core(
            self.write("fail", move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(sql::FAIL)
                        .bind(fences)
                        .bind(now_ms())
                        .bind(error)
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("fail"))?;
                    Ok(done.rows_affected() == 1)
                })
            })
            .await,
        )
    }

    async fn requeue(&self, fences: &[Fence]) -> durable_core::Result<u64> {
        if fences.is_empty() {
            return Ok(0);
        }
        let fences = fences_json(fences);
        to_core(
            self.write("requeue", move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(sql::REQUEUE)
                        .bind(fences)
                        .bind(now_ms())
                        .bind(i64::from(REQUEUE_LIMIT))
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("requeue"))?;
                    Ok(done.rows_affected())
                })
            })
            .await,
        )
    }

    async fn mark_started(&self, fence: &Fence) -> durable_core::Result<bool> {
        let fences = fences_json(std::slice::from_ref(fence));
        to_core(
            self.write("mark started", move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(sql::MARK_STARTED)
                        .bind(fences)
                        .bind(now_ms())
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("mark started"))?;
                    Ok(done.rows_affected() == 1)
                })
            })
            .await,
        )
    }

    /// Fails when the calling task holds a transaction from [`SqliteStore::begin`].
    async fn check_enqueue(&self) -> durable_core::Result<()> {
        self.inner.owner.check().await
    }

    async fn rescue_expired(&self) -> durable_core::Result<RescueReport> {
        to_core(
            self.write("rescue", move |conn| {
                Box::pin(async move {
                    let now = now_ms();
                    let failed = sqlx::query(sql::RESCUE_FAIL)
                        .bind(now)
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("rescue"))?
                        .rows_affected();
                    let requeued = sqlx::query(sql::RESCUE_REQUEUE)
                        .bind(now)
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("rescue"))?
                        .rows_affected();
                    Ok(RescueReport { requeued, failed })
                })
            })
            .await,
        )
    }

    async fn cancel(&self, id: TaskId) -> durable_core::Result<bool> {
        to_core(
            self.write("cancel", move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(sql::CANCEL)
                        .bind(id.to_string())
                        .bind(now_ms())
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("cancel"))?;
                    Ok(done.rows_affected() == 1)
                })
            })
            .await,
        )
    }

    async fn prune(&self, older_than: Duration, limit: u32) -> durable_core::Result<u64> {
        to_core(
            self.write("prune", move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(sql::PRUNE)
                        .bind(now_ms() - millis(older_than))
                        .bind(i64::from(limit))
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("prune"))?;
                    Ok(done.rows_affected())
                })
            })
            .await,
        )
    }

    async fn get(&self, id: TaskId) -> durable_core::Result<Option<TaskRecord>> {
        let row = sqlx::query(sql::GET)
            .bind(id.to_string())
            .fetch_optional(&self.inner.reader)
            .await
            .map_err(Error::db("get"))?;
        to_core(row.as_ref().map(record_from_row).transpose())
    }

    async fn backlog(&self) -> durable_core::Result<u64> {
        let n: i64 = sqlx::query_scalar(sql::BACKLOG)
            .bind(now_ms())
            .fetch_one(&self.inner.reader)
            .await
            .map_err(Error::db("backlog"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn unclaimable(
        &self,
        known: &[String],
        waiting: Duration,
    ) -> durable_core::Result<Vec<(String, u64)>> {
        let rows: Vec<(Vec<u8>, i64)> = sqlx::query_as(sql::UNCLAIMABLE)
            .bind(now_ms().saturating_sub(millis(waiting)))
            .bind(names_json(known)?)
            .bind(i64::from(durable_core::UNCLAIMABLE_SCAN))
            .fetch_all(&self.inner.reader)
            .await
            .map_err(Error::db("unclaimable"))?;
        Ok(rows
            .into_iter()
            .map(|(name, n)| {
                let name = String::from_utf8_lossy(&name).into_owned();
                (name, u64::try_from(n).unwrap_or(0))
            })
            .collect())
    }

    async fn counts(&self) -> durable_core::Result<StateCounts> {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql::COUNTS)
            .fetch_all(&self.inner.reader)
            .await
            .map_err(Error::db("counts"))?;
        to_core(crate::util::state_counts(rows))
    }
}
