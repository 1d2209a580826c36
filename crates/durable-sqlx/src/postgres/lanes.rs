//! Truncating the live partition's lanes on PostgreSQL (migration 13), while vacuums cannot
//! clean them.
//!
//! Inserts go to lane 1 and lane 2 in turns of 10 seconds of the store's time. While an old
//! snapshot holds the vacuum horizon back, a vacuum removes nothing, and every task leaves its
//! dead row versions in its lane until the snapshot ends. But a lane whose turn ended has no
//! new rows, its tasks finish and leave it (to the history), and then all it holds is dead
//! versions: `TRUNCATE` gives its pages back whatever the horizon, before its next turn.
//!
//! A round ([`truncate_on`]) runs at each of the store's maintenance rounds. It looks at the
//! lane not taking inserts, from 2 seconds into the other's turn (transactions that began in
//! its turn may still insert):
//! * smaller than [`SMALL_BYTES`] while the vacuums back off for a held horizon, or than
//!   [`BLOATED_BYTES`] while they clean the lanes (in a clean queue a lane stays a few MiB,
//!   and a truncation's lock would be a short stall of the claims for nothing; past that
//!   size it grew under an earlier horizon, and vacuums would leave it so): left alone;
//! * locked by a session whose transaction is older than a second (a report reading the task
//!   tables, which truncating would also stall, and whose snapshot expects the rows): left
//!   alone, without queueing for the lock;
//! * more than [`STRAGGLERS`] rows left (a backlog being worked off): left for a later round;
//! * a few rows left (a long task, a retry waiting for its backoff, a task scheduled within
//!   a turn) 5 seconds into the turn: they move to lane 0, `durable_tasks_keyed`, so they do
//!   not keep the lane from being truncated until they finish;
//! * then, in one transaction: the lane is locked (`ACCESS EXCLUSIVE`, waiting at most
//!   20 ms: claims wait behind a queued lock), found empty again under the lock (no
//!   insert can be in flight), and truncated.
//!
//! A session whose snapshot is older than the truncation and that never read the lanes sees
//! them empty afterwards: the finished tasks it would have seen there are in the history, in
//! versions its snapshot is too old to see. Reports that need a consistent view of the tasks
//! over a long transaction read the history, or turn truncation off
//! ([`PostgresStoreBuilder::truncate_lanes`](super::PostgresStoreBuilder::truncate_lanes)).

use sqlx::{Connection as _, PgPool};

use super::moved::again_if_moved;
use crate::error::{Error, Result};

/// While vacuums back off, a lane smaller than this is left as it is: its pages are reused
/// after the horizon moves.
pub(super) const SMALL_BYTES: i64 = 512 * 1024;

/// While vacuums clean the lanes, a lane larger than this is truncated all the same: it grew
/// under a horizon held earlier (or one a report held, whose locks kept it), and vacuums
/// would leave it that size. A lane vacuumed as it fills holds a few MiB at a few thousand
/// tasks a second, so a clean queue is never truncated and pays no lock for it.
pub(super) const BLOATED_BYTES: i64 = 32 * 1024 * 1024;

/// Rows left in a lane past which a round waits for them rather than moving them.
pub(super) const STRAGGLERS: i64 = 100;

/// Seconds into the other lane's turn before the rows left are moved.
const MOVE_FROM_SECS: f64 = 5.0;

/// Seconds into the other lane's turn before a lane is looked at.
const LOOK_FROM_SECS: f64 = 2.0;

/// How long a round waits for a lane's lock (20 ms): claims queue behind it meanwhile.
const LOCK_WAIT: &str = "SET LOCAL lock_timeout = '20ms'";

/// The lane not taking inserts, how far the other's turn is (seconds), and its size.
const LOOK: &str = concat!(
    "
SELECT o.lane,
    pg_relation_size(CASE o.lane WHEN 1 THEN 'durable_tasks_lane_1'::regclass
                                 ELSE 'durable_tasks_lane_2'::regclass END) AS bytes,
    (extract(epoch FROM durable_now())
        - (floor(extract(epoch FROM durable_now()))::int8 / 10) * 10)::float8 AS into_turn
FROM (SELECT (3 - ",
    lane_now!(),
    ")::int2 AS lane) AS o"
);

/// $1 the lane: whether a session other than this one has held a lock on it for more than a
/// second. Read only for a lane worth truncating: `pg_locks` takes every lock-manager
/// partition's lock to read them all, a short stall of every statement taking a lock.
const HELD_OPEN: &str = "
SELECT EXISTS (
    SELECT 1 FROM pg_locks AS k JOIN pg_stat_activity AS a ON a.pid = k.pid
    WHERE k.relation = (CASE $1 WHEN 1 THEN 'durable_tasks_lane_1'::regclass
                                ELSE 'durable_tasks_lane_2'::regclass END)
      AND k.granted AND k.pid <> pg_backend_pid()
      AND a.xact_start < clock_timestamp() - interval '1 second')";

/// $1 the lane: its rows, counted up to one more than [`STRAGGLERS`].
const LEFT: &str =
    "SELECT count(*) FROM (SELECT 1 FROM durable_tasks_live WHERE lane = $1 LIMIT 101) AS l";

/// $1 the lane: its rows moved to lane 0 (with their key-less `durable_tasks_keyed` peers).
/// Moved rows are found by id, as every fenced statement finds its row: a worker that holds
/// one finishes it there.
const MOVE: &str = "UPDATE durable_tasks_live SET lane = 0 WHERE lane = $1";

/// Per lane (1, 2): the lock, the check that it is empty, the truncation.
const LOCK: [&str; 2] = [
    "LOCK TABLE durable_tasks_lane_1 IN ACCESS EXCLUSIVE MODE",
    "LOCK TABLE durable_tasks_lane_2 IN ACCESS EXCLUSIVE MODE",
];
const ANY_ROW: [&str; 2] = [
    "SELECT EXISTS (SELECT 1 FROM durable_tasks_lane_1)",
    "SELECT EXISTS (SELECT 1 FROM durable_tasks_lane_2)",
];
const TRUNCATE: [&str; 2] = [
    "TRUNCATE durable_tasks_lane_1",
    "TRUNCATE durable_tasks_lane_2",
];

/// What [`LOOK`] reads.
#[derive(Debug, sqlx::FromRow)]
struct Look {
    lane: i16,
    into_turn: f64,
    bytes: i64,
}

/// What a round did with the lane not taking inserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LaneRound {
    /// Nothing to do: too early in the turn, or the lane is small.
    Nothing,
    /// A session has held a lock on the lane for more than a second.
    HeldOpen,
    /// More rows are left in the lane than a round moves.
    Busy,
    /// A few rows left, not moved yet (early in the turn).
    Waiting,
    /// The lock was not granted in time.
    Locked,
    /// Truncated, after moving this many rows to lane 0.
    Truncated {
        /// Rows moved out of the lane first.
        moved: u64,
    },
}

/// Whether `error` is a lock not granted within `lock_timeout` (SQLSTATE `55P03`).
fn lock_not_granted(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(sqlx::error::DatabaseError::code)
        .is_some_and(|code| code == "55P03")
}

/// One round on `pool`: the lane not taking inserts truncated if it can be (see the module),
/// from [`SMALL_BYTES`] while `held` (the vacuums back off for a held horizon), else from
/// [`BLOATED_BYTES`].
pub(super) async fn truncate_on(pool: &PgPool, held: bool) -> Result<LaneRound> {
    let look: Look = sqlx::query_as(LOOK)
        .fetch_one(pool)
        .await
        .map_err(Error::db("lane look"))?;
    let from = if held { SMALL_BYTES } else { BLOATED_BYTES };
    if look.into_turn < LOOK_FROM_SECS || look.bytes < from {
        return Ok(LaneRound::Nothing);
    }
    let held_open: bool = sqlx::query_scalar(HELD_OPEN)
        .bind(look.lane)
        .fetch_one(pool)
        .await
        .map_err(Error::db("lane look"))?;
    if held_open {
        return Ok(LaneRound::HeldOpen);
    }
    let left: i64 = sqlx::query_scalar(LEFT)
        .bind(look.lane)
        .fetch_one(pool)
        .await
        .map_err(Error::db("lane rows left"))?;
    if left > STRAGGLERS {
        return Ok(LaneRound::Busy);
    }
    let mut moved = 0;
    if left > 0 {
        if look.into_turn < MOVE_FROM_SECS {
            return Ok(LaneRound::Waiting);
        }
        moved = again_if_moved(|| sqlx::query(MOVE).bind(look.lane).execute(pool))
            .await
            .map_err(Error::db("lane move"))?
            .rows_affected();
    }
    let i = usize::from(look.lane == 2);
    let mut conn = pool.acquire().await.map_err(Error::db("lane truncate"))?;
    let mut tx = conn.begin().await.map_err(Error::db("lane truncate"))?;
    sqlx::raw_sql(LOCK_WAIT)
        .execute(&mut *tx)
        .await
        .map_err(Error::db("lane truncate"))?;
    match sqlx::raw_sql(LOCK[i]).execute(&mut *tx).await {
        Ok(_) => {}
        Err(error) if lock_not_granted(&error) => return Ok(LaneRound::Locked),
        Err(error) => return Err(Error::db("lane lock")(error)),
    }
    let any: bool = sqlx::query_scalar(ANY_ROW[i])
        .fetch_one(&mut *tx)
        .await
        .map_err(Error::db("lane truncate"))?;
    if any {
        // A row came in (a transaction that began in the lane's turn committed late): the
        // next round moves it.
        return Ok(LaneRound::Waiting);
    }
    sqlx::raw_sql(TRUNCATE[i])
        .execute(&mut *tx)
        .await
        .map_err(Error::db("lane truncate"))?;
    tx.commit().await.map_err(Error::db("lane truncate"))?;
    Ok(LaneRound::Truncated { moved })
}
