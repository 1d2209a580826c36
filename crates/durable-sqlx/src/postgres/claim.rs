//! Claiming and completing on a connection: the one-statement claim, the per-queue capped claim.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use durable_core::store::{ClaimRequest, ClaimedTask};
use durable_core::TaskId;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{PgConnection, PgPool, Postgres, Row};
use tokio::time::Instant;
use uuid::Uuid;

use super::look::Look;
use super::moved::{row_moved, MOVED_RETRIES};
use super::resume::{Position, Resume};
use super::rows::claimed_from_row;
use super::{ms, sql};
use crate::error::{Error, Result};

/// The claim: a materialized CTE picks at most `LIMIT` due pending rows of the known task
/// names ($4) in claim order and locks them (`SKIP LOCKED`: rows another claimer holds are
/// passed over, not waited for); the UPDATE then changes exactly those rows. `MATERIALIZED`
/// keeps the CTE an optimisation fence, so the planner cannot fold the LIMIT into the UPDATE
/// and touch more rows. The UPDATE finds them by `id = ANY` of their ids: one probe of each
/// lane's primary key (migration 13), where a join to the CTE could be planned as a scan of
/// the lanes. The names are a filter on the rows the claim index yields (the index
/// has no name): rows of other types stay `pending` for an instance that knows them.
///
/// Claim order is `(-priority, run_at, id)`, ascending, as the claim indexes hold it
/// (migration 11). A resumed claim (`$from`: the bound's parameters) starts at a position
/// with one row comparison the index applies, instead of walking from the head of the index:
/// see [`Resume`].
macro_rules! claim {
    ($filter:literal, $($from:tt)*) => {
        concat!(
            "
WITH due AS MATERIALIZED (
    SELECT id FROM durable_tasks_live
    WHERE state = 'pending' AND run_at <= durable_now() AND name = ANY($4::text[])",
            $filter,
            $($from)*,
            "
    ORDER BY (-priority::int4), run_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE durable_tasks_live AS t
SET state = 'processing', attempts = t.attempts + 1, lease_owner = $1,
    lease_expires_at = durable_now() + $2::int8 * interval '1 millisecond',
    started_at = durable_now(), attempt_started_at = NULL, updated_at = durable_now()
WHERE t.id = ANY(ARRAY(SELECT id FROM due))
RETURNING t.id, t.name, t.queue, t.payload::text AS payload, t.attempts, t.max_attempts,
    t.run_at, t.trace_parent, t.priority, durable_now() AS claimed_at"
        )
    };
}

/// $1 owner, $2 lease ms, $3 limit, $4 task names. Any queue.
pub(super) const CLAIM_ANY: &str = claim!("", "");

/// $1 owner, $2 lease ms, $3 limit, $4 task names, $5 queue. One capped queue.
pub(super) const CLAIM_QUEUE: &str = claim!(" AND queue = $5::text", "");

/// $1 owner, $2 lease ms, $3 limit, $4 task names, $5 queues to leave out (the capped ones).
pub(super) const CLAIM_OTHERS: &str = claim!(" AND queue <> ALL($5::text[])", "");

/// The resumed claims' bound: the negated priority, run_at and id (their parameters).
macro_rules! resumed {
    ($p:literal, $r:literal, $i:literal) => {
        concat!(
            "
      AND ",
            claim_order!(),
            " >= ",
            claim_order!($p, $r, $i)
        )
    };
}

/// [`CLAIM_ANY`] from a position: $5-$7.
pub(super) const CLAIM_ANY_FROM: &str = claim!("", resumed!("$5", "$6", "$7"));

/// [`CLAIM_QUEUE`] from a position: $6-$8.
pub(super) const CLAIM_QUEUE_FROM: &str =
    claim!(" AND queue = $5::text", resumed!("$6", "$7", "$8"));

/// [`CLAIM_OTHERS`] from a position: $6-$8.
pub(super) const CLAIM_OTHERS_FROM: &str =
    claim!(" AND queue <> ALL($5::text[])", resumed!("$6", "$7", "$8"));

/// One claim's settings: the request, the store's claim positions, and whether each
/// statement is its own transaction (then a statement refused for a moved row is run again).
pub(super) struct Claim<'a> {
    pub(super) request: &'a ClaimRequest,
    pub(super) resume: &'a Arc<Resume>,
    /// Where looks before the position run (the claims' pool).
    pub(super) looks: &'a PgPool,
    pub(super) own_transaction: bool,
}

/// Claims per `claim` inside the caller's transaction: the capped queues first, then the
/// rest.
pub(super) async fn claim_on(
    conn: &mut PgConnection,
    claim: &Claim<'_>,
) -> Result<Vec<ClaimedTask>> {
    let request = claim.request;
    if request.capped.is_empty() {
        return claim_some(conn, claim, request.limit, None, &[]).await;
    }
    let mut remaining = request.limit;
    let mut claimed = Vec::new();
    for (queue, cap) in &request.capped {
        let n = (*cap).min(remaining);
        if n == 0 {
            continue;
        }
        let rows = claim_some(conn, claim, n, Some(queue), &[]).await?;
        remaining -= rows.len().min(remaining);
        claimed.extend(rows);
    }
    if remaining > 0 {
        let excluded: Vec<String> = request.capped.iter().map(|(q, _)| q.clone()).collect();
        let rows = claim_some(conn, claim, remaining, None, &excluded).await?;
        claimed.extend(rows);
    }
    Ok(claimed)
}

/// Completes the fenced attempts (as [`fence_columns`](super::rows::fence_columns)) on
/// `conn`, one autocommit statement (run again if refused for a moved row).
pub(super) async fn complete_on(
    conn: &mut PgConnection,
    (ids, owners, attempts): (Vec<Uuid>, Vec<Uuid>, Vec<i32>),
) -> Result<Vec<TaskId>> {
    // A loop rather than `again_if_moved`: each run reborrows the connection.
    let mut tries = 0;
    let done: Vec<Uuid> = loop {
        let run = sqlx::query_scalar(sql::COMPLETE)
            .bind(&ids)
            .bind(&owners)
            .bind(&attempts)
            .fetch_all(&mut *conn)
            .await;
        match run {
            Err(error) if row_moved(&error) && tries < MOVED_RETRIES => tries += 1,
            run => break run.map_err(Error::db("complete"))?,
        }
    };
    Ok(done.into_iter().map(TaskId::from_uuid).collect())
}

/// One claim statement: rows of `queue` (`Some`), of every queue but `excluded` (`None`), at
/// most `n`, from where the store's last claim of the kind ended when claims resume (see
/// [`Resume`]).
pub(super) async fn claim_some(
    conn: &mut PgConnection,
    claim: &Claim<'_>,
    n: usize,
    queue: Option<&str>,
    excluded: &[String],
) -> Result<Vec<ClaimedTask>> {
    let request = claim.request;
    if request.names.is_empty() {
        return Ok(Vec::new());
    }
    let kind = kind(queue, excluded);
    if let Some((position, reach)) = claim.resume.look_due(&kind) {
        let look = Look {
            kind: kind.clone(),
            names: Arc::clone(&request.names),
            queue: queue.map(str::to_owned),
            excluded: excluded.to_vec(),
            position,
            reach,
        };
        look.spawn(claim.looks.clone(), Arc::clone(claim.resume));
    }
    let mut tries = 0;
    let rows = loop {
        let from = claim.resume.start(&kind);
        let began = Instant::now();
        let run = claim_statement(request, n, queue, excluded, from)
            .fetch_all(&mut *conn)
            .await;
        match run {
            Err(error) if claim.own_transaction && row_moved(&error) && tries < MOVED_RETRIES => {
                tries += 1;
            }
            run => {
                let rows = run.map_err(Error::db("claim"))?;
                let last = rows.iter().filter_map(position).max();
                let at = rows
                    .first()
                    .and_then(|row| row.try_get::<DateTime<Utc>, _>("claimed_at").ok());
                claim.resume.record(&kind, from, began.elapsed(), last, at);
                break rows;
            }
        }
    };
    // The statement has committed (or will with its transaction): a row that cannot be read
    // must not fail the claim of the others. In a UTF8 database (PostgreSQL checks text on
    // input) no single row can be unreadable; what can be is every row, for a binary that
    // does not know the table's column types (a downgrade, a migration it predates). So the
    // row is not failed — another binary can run it — but left to its lease, which expires
    // and hands it back (a last attempt uncounted: it never started).
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        match claimed_from_row(row, request.owner) {
            Ok(task) => claimed.push(task),
            Err(error) => tracing::error!(%error, task_id = ?row.try_get::<Uuid, _>("id").ok(),
                "claimed a task row this version cannot read; leaving it until its lease expires"),
        }
    }
    Ok(claimed)
}

/// The claim positions' key of a claim of `queue` (`Some`) or of every queue but `excluded`.
fn kind(queue: Option<&str>, excluded: &[String]) -> String {
    match queue {
        Some(queue) => format!("queue:{queue}"),
        None if excluded.is_empty() => "any".to_owned(),
        None => format!("others:{}", excluded.join("\u{1f}")),
    }
}

/// The claim position of a claimed row.
fn position(row: &PgRow) -> Option<Position> {
    let priority: i16 = row.try_get("priority").ok()?;
    let run_at: DateTime<Utc> = row.try_get("run_at").ok()?;
    let id: Uuid = row.try_get("id").ok()?;
    Some(Position {
        rank: -i32::from(priority),
        run_at,
        id,
    })
}

/// The claim statement for `queue` / `excluded`, from `from` (`None`: the head), bound.
fn claim_statement<'q>(
    request: &'q ClaimRequest,
    n: usize,
    queue: Option<&'q str>,
    excluded: &'q [String],
    from: Option<Position>,
) -> Query<'q, Postgres, PgArguments> {
    let text = match (queue, excluded.is_empty(), from.is_some()) {
        (Some(_), _, false) => CLAIM_QUEUE,
        (Some(_), _, true) => CLAIM_QUEUE_FROM,
        (None, true, false) => CLAIM_ANY,
        (None, true, true) => CLAIM_ANY_FROM,
        (None, false, false) => CLAIM_OTHERS,
        (None, false, true) => CLAIM_OTHERS_FROM,
    };
    let query = sqlx::query(text)
        .bind(*request.owner.as_uuid())
        .bind(ms(request.lease))
        .bind(i64::try_from(n).unwrap_or(i64::MAX))
        .bind(&request.names[..]);
    let query = match queue {
        Some(queue) => query.bind(queue),
        None if excluded.is_empty() => query,
        None => query.bind(excluded),
    };
    match from {
        Some(from) => query.bind(from.rank).bind(from.run_at).bind(from.id),
        None => query,
    }
}
