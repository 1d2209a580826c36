//! The admin overview on PostgreSQL: counts that stay cheap at millions of rows
//! ([`AdminStore::stats`](durable_core::store::AdminStore::stats)) and the per-minute
//! throughput table.

use chrono::{DateTime, Utc};
use durable_core::store::{Count, Stats, ThroughputBucket, COUNT_BOUND};
use durable_core::{TaskState, WorkerId};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{PgPool, Postgres, Row};

use crate::admin::{bounded, count_limit, queue_counts};
use crate::error::{Error, Result};

/// Rows of one state, counted up to $1. Each state is a literal, so the partial index of
/// that state applies (pending: the claim index; processing: the lease index; completed: the
/// pruning index; failed: migration 9's index; cancelled: migration 12's, as the pruning
/// index holds the completed rows too and a count of a few cancelled rows would read all of
/// them). Live states are counted in the live partition only (the history partition has no
/// index for them).
macro_rules! bounded_count {
    ($where:literal) => {
        bounded_count!("durable_tasks", $where)
    };
    ($table:literal, $where:literal) => {
        concat!(
            "(SELECT count(*) FROM (SELECT 1 FROM ",
            $table,
            " WHERE ",
            $where,
            " LIMIT $1) AS c)"
        )
    };
}

/// $1 bound; $2, $3, $4: whether to count completed, failed and cancelled rows (NULL when
/// not: the planner's estimate already said there are more than the bound, and reading that
/// many rows is what this avoids); $5: whether to count the due pending rows (the state
/// gauges do not read them, and under a held vacuum horizon each walk of the claim index
/// passes every entry the horizon keeps). One count per state, then the due pending rows.
const STATES: &str = concat!(
    "SELECT ",
    bounded_count!("durable_tasks_live", "state = 'pending'"),
    " AS pending, ",
    bounded_count!("durable_tasks_live", "state = 'processing'"),
    " AS processing, CASE WHEN $2 THEN ",
    bounded_count!("state = 'completed'"),
    " END AS completed, CASE WHEN $3 THEN ",
    bounded_count!("state = 'failed'"),
    " END AS failed, CASE WHEN $4 THEN ",
    bounded_count!("state = 'cancelled'"),
    " END AS cancelled, CASE WHEN $5 THEN ",
    bounded_count!(
        "durable_tasks_live",
        "state = 'pending' AND run_at <= durable_now()"
    ),
    " END AS due"
);

/// $1 bound, $2 most queues (all from the live partition). The queues with live rows: those of pending rows one index
/// probe each (a skip scan over the per-queue claim index, as PostgreSQL has none of its
/// own), and those of at most $1 processing rows; then each queue's live rows, bounded.
const QUEUES: &str = "
WITH RECURSIVE pending_queues AS (
    (SELECT queue FROM durable_tasks_live WHERE state = 'pending' ORDER BY queue LIMIT 1)
    UNION ALL
    SELECT (SELECT t.queue FROM durable_tasks_live AS t
            WHERE t.state = 'pending' AND t.queue > q.queue ORDER BY t.queue LIMIT 1)
    FROM pending_queues AS q WHERE q.queue IS NOT NULL
), queues AS (
    SELECT queue FROM pending_queues WHERE queue IS NOT NULL
    UNION
    SELECT queue FROM (SELECT queue FROM durable_tasks_live WHERE state = 'processing' LIMIT $1) AS p
)
SELECT q.queue,
    (SELECT count(*) FROM (SELECT 1 FROM durable_tasks_live AS t
        WHERE t.state = 'pending' AND t.queue = q.queue LIMIT $1) AS c) AS pending,
    (SELECT count(*) FROM (SELECT 1 FROM durable_tasks_live AS t
        WHERE t.state = 'processing' AND t.queue = q.queue LIMIT $1) AS c) AS processing
FROM queues AS q
ORDER BY q.queue
LIMIT $2";

/// Most queues [`QUEUES`] reports.
const MAX_QUEUES: i64 = 1_000;

/// The planner's estimate of a terminal state's rows (`EXPLAIN`, not executed), for a count
/// past the bound: a figure from the table's statistics rather than a read of every row.
fn estimate_statement(state: TaskState) -> Option<&'static str> {
    match state {
        TaskState::Completed => {
            Some("EXPLAIN (FORMAT JSON) SELECT 1 FROM durable_tasks WHERE state = 'completed'")
        }
        TaskState::Failed => {
            Some("EXPLAIN (FORMAT JSON) SELECT 1 FROM durable_tasks WHERE state = 'failed'")
        }
        TaskState::Cancelled => {
            Some("EXPLAIN (FORMAT JSON) SELECT 1 FROM durable_tasks WHERE state = 'cancelled'")
        }
        TaskState::Pending | TaskState::Processing => None,
    }
}

/// [`AdminStore::stats`](durable_core::store::AdminStore::stats). Terminal states the
/// planner estimates past the bound are not counted: they are the bulk of a large table, and
/// the estimate is all a count stopping at the bound could say anyway (labelled so).
pub(super) async fn stats(pool: &PgPool) -> Result<Stats> {
    let db = || Error::db("stats");
    let (states, due) = states_and_due(pool).await?;
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

/// Whether [`states`] counts the due pending rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    /// Counted, as [`stats`] reports them.
    Counted,
    /// Left out of the statement.
    Skipped,
}

/// The counts per state of [`stats`], without its due pending rows: what
/// [`AdminStore::state_stats`](durable_core::store::AdminStore::state_stats) reads.
pub(super) async fn states(pool: &PgPool) -> Result<Vec<(TaskState, Count)>> {
    Ok(read_states(pool, Due::Skipped).await?.0)
}

/// The counts per state and the due pending rows of [`stats`].
async fn states_and_due(pool: &PgPool) -> Result<(Vec<(TaskState, Count)>, Count)> {
    let (states, row) = read_states(pool, Due::Counted).await?;
    let due = bounded(row.try_get("due").map_err(Error::db("stats"))?);
    Ok((states, due))
}

/// Runs [`STATES`]: the counts per state, and the row (with `due` when counted).
async fn read_states(pool: &PgPool, due: Due) -> Result<(Vec<(TaskState, Count)>, PgRow)> {
    let db = || Error::db("stats");
    let estimates = estimates(pool).await?;
    let row = bind_states(sqlx::query(STATES), &estimates, due)
        .fetch_one(pool)
        .await
        .map_err(db())?;
    let mut states = Vec::with_capacity(TaskState::ALL.len());
    for state in TaskState::ALL {
        let estimate = estimates
            .iter()
            .find(|(s, _)| *s == state)
            .and_then(|(_, e)| *e);
        let count = match estimate {
            Some(estimate) => estimate,
            None => bounded(row.try_get(state.as_str()).map_err(db())?),
        };
        states.push((state, count));
    }
    Ok((states, row))
}

/// [`states`]' count statement under `EXPLAIN` (not executed), bound as [`states`] binds it
/// for `due`.
pub(super) async fn explain_states(
    pool: &PgPool,
    due: Due,
) -> Result<Query<'static, Postgres, PgArguments>> {
    let estimates = estimates(pool).await?;
    let explain = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {STATES}")));
    Ok(bind_states(explain, &estimates, due))
}

/// The planner's estimate of each terminal state's rows: `Some` past the bound (the state is
/// reported as that estimate, not counted).
async fn estimates(pool: &PgPool) -> Result<Vec<(TaskState, Option<Count>)>> {
    let mut estimates = Vec::with_capacity(3);
    for state in [
        TaskState::Completed,
        TaskState::Failed,
        TaskState::Cancelled,
    ] {
        let estimate = match estimate_statement(state) {
            Some(explain) => estimated(pool, explain).await?,
            None => None,
        };
        estimates.push((state, estimate));
    }
    Ok(estimates)
}

/// Binds [`STATES`]' parameters: the bound, whether each terminal state is counted, and
/// whether the due rows are.
fn bind_states<'q>(
    query: Query<'q, Postgres, PgArguments>,
    estimates: &[(TaskState, Option<Count>)],
    due: Due,
) -> Query<'q, Postgres, PgArguments> {
    let counted = |state: TaskState| {
        estimates
            .iter()
            .all(|(s, estimate)| *s != state || estimate.is_none())
    };
    query
        .bind(count_limit())
        .bind(counted(TaskState::Completed))
        .bind(counted(TaskState::Failed))
        .bind(counted(TaskState::Cancelled))
        .bind(due == Due::Counted)
}

/// The planner's row estimate, when it is past the bound (below it, rows are counted).
async fn estimated(pool: &PgPool, explain: &'static str) -> Result<Option<Count>> {
    let plan: serde_json::Value = sqlx::query_scalar(explain)
        .fetch_one(pool)
        .await
        .map_err(Error::db("stats"))?;
    let rows = plan
        .get(0)
        .and_then(|p| p.get("Plan"))
        .and_then(|p| p.get("Plan Rows"))
        .and_then(serde_json::Value::as_f64);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a positive estimate
    Ok(rows
        .map(|r| r.max(0.0).round() as u64)
        .filter(|&r| r > COUNT_BOUND)
        .map(Count::Estimated))
}

/// $1 worker, $2 minutes, $3 completed, $4 retried, $5 failed. Adds the counts per minute
/// (several buckets of one minute are summed first: one upsert may not touch a row twice),
/// and deletes the minutes older than 24 hours.
const ADD_THROUGHPUT: &str = "
WITH b AS (
    SELECT date_trunc('minute', u.m) AS minute, sum(u.c)::int8 AS completed,
        sum(u.r)::int8 AS retried, sum(u.f)::int8 AS failed
    FROM unnest($2::timestamptz[], $3::int8[], $4::int8[], $5::int8[]) AS u(m, c, r, f)
    WHERE u.m >= durable_now() - interval '24 hours'
    GROUP BY 1
), added AS (
    INSERT INTO durable_throughput AS t (minute, worker, completed, retried, failed)
    SELECT minute, $1, completed, retried, failed FROM b
    ON CONFLICT (minute, worker) DO UPDATE
    SET completed = t.completed + excluded.completed, retried = t.retried + excluded.retried,
        failed = t.failed + excluded.failed
    RETURNING 1
)
DELETE FROM durable_throughput WHERE minute < durable_now() - interval '24 hours'";

/// $1 since. Counts per minute across instances, at most 24 hours back, oldest first.
const THROUGHPUT: &str = "
SELECT minute, sum(completed)::int8 AS completed, sum(retried)::int8 AS retried,
    sum(failed)::int8 AS failed
FROM durable_throughput
WHERE minute >= greatest(date_trunc('minute', $1::timestamptz),
                         durable_now() - interval '24 hours')
GROUP BY minute
ORDER BY minute";

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// [`AdminStore::add_throughput`](durable_core::store::AdminStore::add_throughput).
pub(super) async fn add_throughput(
    pool: &PgPool,
    worker: WorkerId,
    buckets: &[ThroughputBucket],
) -> Result<()> {
    let minutes: Vec<DateTime<Utc>> = buckets.iter().map(|b| b.start).collect();
    let completed: Vec<i64> = buckets.iter().map(|b| i64_of(b.completed)).collect();
    let retried: Vec<i64> = buckets.iter().map(|b| i64_of(b.retried)).collect();
    let failed: Vec<i64> = buckets.iter().map(|b| i64_of(b.failed)).collect();
    sqlx::query(ADD_THROUGHPUT)
        .bind(worker.as_uuid())
        .bind(minutes)
        .bind(completed)
        .bind(retried)
        .bind(failed)
        .execute(pool)
        .await
        .map_err(Error::db("add throughput"))?;
    Ok(())
}

/// [`AdminStore::throughput`](durable_core::store::AdminStore::throughput).
pub(super) async fn throughput(
    pool: &PgPool,
    since: DateTime<Utc>,
) -> Result<Vec<ThroughputBucket>> {
    let rows: Vec<(DateTime<Utc>, i64, i64, i64)> = sqlx::query_as(THROUGHPUT)
        .bind(since)
        .fetch_all(pool)
        .await
        .map_err(Error::db("throughput"))?;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(rows
        .into_iter()
        .map(|(start, c, r, f)| ThroughputBucket::new(start, n(c), n(r), n(f)))
        .collect())
}
