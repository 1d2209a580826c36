//! One writer cycle on the writer connection: its statements, and what follows them.

use durable_core::store::{ClaimRequest, ClaimedTask, Fence};
use durable_core::TaskId;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Row, Sqlite, SqliteConnection, SqlitePool};

use super::combined::{Combined, WriteFailure};
use super::encode::{claim_args, fences_json, insert_json, names_json};
use super::rows::{claimed_rows, fail_unreadable, parse_id};
use super::sql;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::util::millis;

/// After a cycle script: its rows, or — when a statement failed and left the transaction
/// open (unless `BEGIN` itself failed) — a rollback before the connection goes back to the
/// pool, and the failure classified.
pub(super) async fn settle_script(
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
pub(super) async fn applied_on(
    conn: &mut SqliteConnection,
    fences: &[Fence],
) -> Result<Vec<TaskId>> {
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
pub(super) fn fences_among<E>(
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
/// lease expires); the others go to the worker. `now` is the store's clock.
pub(super) async fn settle_claimed(
    conn: &mut SqliteConnection,
    claim: Option<&ClaimRequest>,
    rows: &[&SqliteRow],
    now: i64,
) -> Vec<ClaimedTask> {
    let Some(request) = claim else {
        return Vec::new();
    };
    let (claimed, unreadable) = claimed_rows(rows.iter().copied(), request.owner);
    if !unreadable.is_empty() {
        if let Err(error) = fail_unreadable(conn, request.owner, &unreadable, now).await {
            tracing::warn!(%error, "could not mark unreadable claimed rows failed; \
                they come back when their lease expires");
        }
    }
    claimed
}

/// Whether a failed combined write failed because of one of its parts (a constraint, a
/// trigger, a value out of range: the others may succeed alone) or as a whole (locked,
/// I/O, connection: nothing would succeed now).
pub(super) fn classify(operation: &'static str, error: sqlx::Error) -> WriteFailure {
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

/// Claims per `request` on the writer connection, inside the caller's transaction, at
/// `now` (the store's clock).
pub(super) async fn claim_on(
    conn: &mut SqliteConnection,
    request: &ClaimRequest,
    now: i64,
) -> Result<Vec<ClaimedTask>> {
    if request.is_empty() {
        return Ok(Vec::new());
    }
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
        fail_unreadable(conn, request.owner, &unreadable, now).await?;
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
        fail_unreadable(conn, request.owner, &unreadable, now).await?;
        claimed.extend(got);
    }
    Ok(claimed)
}

/// Completes the fenced attempts (`fences` as JSON) inside the caller's transaction, at
/// `now` (the store's clock).
pub(super) async fn complete_on(
    conn: &mut SqliteConnection,
    fences: String,
    now: i64,
) -> Result<Vec<TaskId>> {
    let rows = sqlx::query(sql::COMPLETE)
        .bind(fences)
        .bind(now)
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
pub(super) fn unknown_completions(error: &Error) -> durable_core::Error {
    durable_core::Error::store(
        "complete",
        format!(
            "the completions were committed, but which of them applied could not be read: {error}"
        ),
    )
}

/// One combined writer cycle on the writer connection, in one of three shapes.
pub(super) struct Cycle {
    pub(super) pool: SqlitePool,
    pub(super) operation: &'static str,
    pub(super) fences: Vec<Fence>,
    pub(super) claim: Option<ClaimRequest>,
    /// The store's clock, read once the connection is held.
    pub(super) clock: Clock,
}

impl Cycle {
    /// The common shape: one multi-statement query with bound parameters
    /// ([`sql::cycle_script`]), one round trip to the connection's thread.
    pub(super) async fn bound(
        self,
        script: &'static str,
        mut args: SqliteArguments,
    ) -> std::result::Result<Combined, WriteFailure> {
        let mut conn = self.acquire().await?;
        let now = self.clock.now_ms();
        if let Some(claim) = &self.claim {
            claim_args(&mut args, claim, now).map_err(WriteFailure::Whole)?;
        }
        let result = sqlx::query_with(script, args).fetch_all(&mut *conn).await;
        let returned = settle_script(&mut conn, self.operation, result).await?;
        // Committed: from here on every part keeps its success.
        let (count_row, claim_rows): (Vec<&SqliteRow>, Vec<&SqliteRow>) =
            returned.iter().partition(|row| row.len() == 1);
        let changed = count_row
            .first()
            .and_then(|row| row.try_get::<i64, _>(0).ok());
        let claimed = settle_claimed(&mut conn, self.claim.as_ref(), &claim_rows, now).await;
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
    pub(super) async fn json(
        self,
        rows: Option<String>,
    ) -> std::result::Result<Combined, WriteFailure> {
        let fences = (!self.fences.is_empty()).then(|| fences_json(&self.fences));
        let names = match &self.claim {
            Some(claim) => Some(names_json(&claim.names).map_err(WriteFailure::Whole)?),
            None => None,
        };
        let mut conn = self.acquire().await?;
        // After the wait for the connection, so the claim sees rows committed meanwhile.
        let now = self.clock.now_ms();
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
        let claimed = settle_claimed(&mut conn, self.claim.as_ref(), &claim_rows, now).await;
        Ok((Ok(completed), claimed))
    }

    /// A claim with per-queue caps needs one statement per queue, each sized by the last:
    /// one transaction, statement by statement.
    pub(super) async fn stepwise(
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
            complete_on(&mut tx, fences_json(&self.fences), now)
                .await
                .map_err(WriteFailure::Part)?
        };
        if let Some(rows) = rows {
            insert_json(&mut tx, rows, now)
                .await
                .map_err(WriteFailure::Part)?;
        }
        let claimed = match &self.claim {
            Some(request) => claim_on(&mut tx, request, self.clock.now_ms())
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
