//! The admin overview on SQLite: counts that stay cheap at millions of rows
//! ([`AdminStore::stats`](durable_core::store::AdminStore::stats)) and the per-minute
//! throughput table.

use durable_core::store::{Count, Stats, ThroughputBucket};
use durable_core::{TaskState, WorkerId};
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::rows::from_ms;
use crate::admin::{bounded, count_limit, queue_counts};
use crate::error::{Error, Result};

/// Rows of one state, counted up to ?1. Each state is a literal, so the partial index of
/// that state applies (pending: the claim index; processing: the lease index; failed:
/// migration 9's index; cancelled: migration 12's). Completed rows are read from the table
/// (SQLite does not read the pruning index for one of its two states): the bound stops that
/// read early, as finished rows are mostly completed ones.
macro_rules! bounded_count {
    ($where:literal) => {
        concat!(
            "(SELECT count(*) FROM (SELECT 1 FROM durable_tasks WHERE ",
            $where,
            " LIMIT ?1))"
        )
    };
}

/// ?1 bound, ?2 now. One count per state, then the due pending rows.
pub(super) const STATES: &str = concat!(
    "SELECT ",
    bounded_count!("state = 'pending'"),
    " AS pending, ",
    bounded_count!("state = 'processing'"),
    " AS processing, ",
    bounded_count!("state = 'completed'"),
    " AS completed, ",
    bounded_count!("state = 'failed'"),
    " AS failed, ",
    bounded_count!("state = 'cancelled'"),
    " AS cancelled, ",
    bounded_count!("state = 'pending' AND run_at <= ?2"),
    " AS due"
);

/// ?1 bound, ?2 most queues. The queues with live rows: those of pending rows one index
/// probe each (a skip scan over the per-queue claim index), and those of at most ?1
/// processing rows; then each queue's live rows, bounded.
const QUEUES: &str = "
WITH RECURSIVE pending_queues(queue) AS (
    SELECT (SELECT queue FROM durable_tasks WHERE state = 'pending' ORDER BY queue LIMIT 1)
    UNION ALL
    SELECT (SELECT t.queue FROM durable_tasks AS t
            WHERE t.state = 'pending' AND t.queue > q.queue ORDER BY t.queue LIMIT 1)
    FROM pending_queues AS q WHERE q.queue IS NOT NULL
), queues AS (
    SELECT queue FROM pending_queues WHERE queue IS NOT NULL
    UNION
    SELECT queue FROM (SELECT queue FROM durable_tasks WHERE state = 'processing' LIMIT ?1)
)
SELECT q.queue,
    (SELECT count(*) FROM (SELECT 1 FROM durable_tasks AS t
        WHERE t.state = 'pending' AND t.queue = q.queue LIMIT ?1)) AS pending,
    (SELECT count(*) FROM (SELECT 1 FROM durable_tasks AS t
        WHERE t.state = 'processing' AND t.queue = q.queue LIMIT ?1)) AS processing
FROM queues AS q
ORDER BY q.queue
LIMIT ?2";

/// Most queues [`QUEUES`] reports.
const MAX_QUEUES: i64 = 1_000;

/// [`AdminStore::stats`](durable_core::store::AdminStore::stats): every figure exact up to
/// the bound, `AtLeast` past it (SQLite keeps no row estimates worth showing).
pub(super) async fn stats(pool: &SqlitePool, now: i64) -> Result<Stats> {
    let db = || Error::db("stats");
    let (states, due) = states(pool, now).await?;
    let rows = sqlx::query(QUEUES)
        .bind(count_limit())
        .bind(MAX_QUEUES)
        .fetch_all(pool)
        .await
        .map_err(db())?;
    let queues = rows
        .iter()
        .map(queue_counts)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(db())?;
    Ok(Stats::new(states, queues, due))
}

/// The counts per state and the due pending rows of [`stats`]: what
/// [`AdminStore::state_stats`](durable_core::store::AdminStore::state_stats) reads.
pub(super) async fn states(
    pool: &SqlitePool,
    now: i64,
) -> Result<(Vec<(TaskState, Count)>, Count)> {
    let db = || Error::db("stats");
    let row = sqlx::query(STATES)
        .bind(count_limit())
        .bind(now)
        .fetch_one(pool)
        .await
        .map_err(db())?;
    let mut states = Vec::with_capacity(TaskState::ALL.len());
    for state in TaskState::ALL {
        states.push((state, bounded(row.try_get(state.as_str()).map_err(db())?)));
    }
    let due = bounded(row.try_get("due").map_err(db())?);
    Ok((states, due))
}

/// One minute in milliseconds: the throughput table's bucket.
const MINUTE_MS: i64 = 60_000;

/// A day in milliseconds: how long throughput is kept.
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

/// ?1 worker, ?2 buckets as JSON (`m` start in ms, `c`, `r`, `f` counts), ?3 oldest minute
/// kept. Adds the counts per minute (several buckets of one minute summed first).
const ADD_THROUGHPUT: &str = "
INSERT INTO durable_throughput (minute, worker, completed, retried, failed)
SELECT (j.value ->> '$.m') / 60000 * 60000, ?1, sum(j.value ->> '$.c'), sum(j.value ->> '$.r'),
    sum(j.value ->> '$.f')
FROM json_each(?2) AS j
WHERE (j.value ->> '$.m') >= ?3
GROUP BY 1
ON CONFLICT (minute, worker) DO UPDATE
SET completed = completed + excluded.completed, retried = retried + excluded.retried,
    failed = failed + excluded.failed";

/// ?1 oldest minute kept.
const EXPIRE_THROUGHPUT: &str = "DELETE FROM durable_throughput WHERE minute < ?1";

/// ?1 since (ms), ?2 oldest minute kept. Counts per minute across instances, oldest first.
const THROUGHPUT: &str = "
SELECT minute, sum(completed) AS completed, sum(retried) AS retried, sum(failed) AS failed
FROM durable_throughput
WHERE minute >= max(?1 / 60000 * 60000, ?2)
GROUP BY minute
ORDER BY minute";

/// [`AdminStore::add_throughput`](durable_core::store::AdminStore::add_throughput), in the
/// caller's write transaction.
pub(super) async fn add_throughput(
    conn: &mut SqliteConnection,
    worker: WorkerId,
    buckets: &[ThroughputBucket],
    now: i64,
) -> Result<()> {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let json: Vec<serde_json::Value> = buckets
        .iter()
        .map(|b| {
            serde_json::json!({
                "m": b.start.timestamp_millis(),
                "c": n(b.completed),
                "r": n(b.retried),
                "f": n(b.failed),
            })
        })
        .collect();
    let json = serde_json::Value::Array(json).to_string();
    let oldest = now - DAY_MS;
    sqlx::query(ADD_THROUGHPUT)
        .bind(worker.to_string())
        .bind(json)
        .bind(oldest)
        .execute(&mut *conn)
        .await
        .map_err(Error::db("add throughput"))?;
    sqlx::query(EXPIRE_THROUGHPUT)
        .bind(oldest)
        .execute(&mut *conn)
        .await
        .map_err(Error::db("add throughput"))?;
    Ok(())
}

/// [`AdminStore::throughput`](durable_core::store::AdminStore::throughput).
pub(super) async fn throughput(
    pool: &SqlitePool,
    since: i64,
    now: i64,
) -> Result<Vec<ThroughputBucket>> {
    let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(THROUGHPUT)
        .bind(since)
        .bind(now - DAY_MS)
        .fetch_all(pool)
        .await
        .map_err(Error::db("throughput"))?;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(rows
        .into_iter()
        .map(|(minute, c, r, f)| ThroughputBucket::new(from_ms(minute), n(c), n(r), n(f)))
        .collect())
}
