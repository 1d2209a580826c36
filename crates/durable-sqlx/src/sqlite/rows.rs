//! Reading rows back: claimed tasks, fences, records — and what to do with a claimed row this
//! version cannot read.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use durable_core::store::{ClaimedTask, Fence, TaskRecord};
use durable_core::{TaskId, TaskState, WorkerId};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::sql;
use crate::error::{Error, Result};

pub(super) fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH)
}

pub(super) fn parse_id(raw: &str) -> Result<TaskId> {
    raw.parse().map_err(|e: uuid::Error| Error::CorruptRow {
        id: raw.to_owned(),
        reason: e.to_string(),
    })
}

/// A claimed row that cannot be read (an id that is not a UUID, text that is not UTF-8, a
/// column of the wrong type): it is failed on its own by [`fail_unreadable`], never handed
/// to a worker, never failing the claim around it.
#[derive(Debug)]
pub(super) struct Unreadable {
    /// `None` when even the rowid cannot be read: the row is then left to its lease.
    rowid: Option<i64>,
    reason: String,
}

/// The claimed rows of `rows` that can be read, and those that cannot.
pub(super) fn claimed_rows<'r>(
    rows: impl IntoIterator<Item = &'r SqliteRow>,
    owner: WorkerId,
) -> (Vec<ClaimedTask>, Vec<Unreadable>) {
    let mut claimed = Vec::new();
    let mut unreadable = Vec::new();
    for row in rows {
        match claimed_from_row(row, owner) {
            Ok(task) => claimed.push(task),
            Err(error) => unreadable.push(Unreadable {
                rowid: row.try_get("claimed_rowid").ok(),
                reason: error.to_string(),
            }),
        }
    }
    (claimed, unreadable)
}

fn claimed_from_row(row: &SqliteRow, owner: WorkerId) -> Result<ClaimedTask> {
    let id: String = row.try_get("id").map_err(Error::db("claim"))?;
    let task = ClaimedTask::new(
        parse_id(&id)?,
        row.try_get("name").map_err(Error::db("claim"))?,
        row.try_get("queue").map_err(Error::db("claim"))?,
        row.try_get("payload").map_err(Error::db("claim"))?,
        row.try_get::<i64, _>("attempts")
            .map_err(Error::db("claim"))? as u32,
        row.try_get::<i64, _>("max_attempts")
            .map_err(Error::db("claim"))? as u32,
        owner,
    );
    let due: i64 = row.try_get("run_at").map_err(Error::db("claim"))?;
    let task = match chrono::DateTime::from_timestamp_millis(due) {
        Some(at) => task.with_due_at(at),
        None => task,
    };
    Ok(task.with_trace_parent(row.try_get("trace_parent").map_err(Error::db("claim"))?))
}

/// Marks the unreadable rows `owner` just claimed `failed`, with why they cannot be read.
pub(super) async fn fail_unreadable(
    conn: &mut SqliteConnection,
    owner: WorkerId,
    rows: &[Unreadable],
    now: i64,
) -> Result<()> {
    for row in rows {
        tracing::error!(reason = %row.reason, rowid = ?row.rowid,
            "claimed a task row that cannot be read; marking it failed");
        let Some(rowid) = row.rowid else { continue };
        sqlx::query(sql::FAIL_UNREADABLE)
            .bind(rowid)
            .bind(owner.to_string())
            .bind(now)
            .bind(crate::sql_messages::unreadable_row(&row.reason))
            .execute(&mut *conn)
            .await
            .map_err(Error::db("fail unreadable row"))?;
    }
    Ok(())
}

pub(super) fn fence_from_row(row: &SqliteRow) -> Result<Fence> {
    let id: String = row.try_get("id").map_err(Error::db("heartbeat"))?;
    let owner: String = row.try_get("lease_owner").map_err(Error::db("heartbeat"))?;
    Ok(Fence {
        id: parse_id(&id)?,
        owner: owner.parse().map_err(|e: uuid::Error| Error::CorruptRow {
            id: id.clone(),
            reason: e.to_string(),
        })?,
        attempt: row
            .try_get::<i64, _>("attempts")
            .map_err(Error::db("heartbeat"))? as u32,
    })
}

pub(super) fn record_from_row(row: &SqliteRow) -> Result<TaskRecord> {
    let db = || Error::db("get");
    let id: String = row.try_get("id").map_err(db())?;
    let corrupt = |reason: String| Error::CorruptRow {
        id: id.clone(),
        reason,
    };
    let state: String = row.try_get("state").map_err(db())?;
    let owner: Option<String> = row.try_get("lease_owner").map_err(db())?;
    let int = |col: &str| row.try_get::<i64, _>(col).map_err(db());
    let opt = |col: &str| row.try_get::<Option<i64>, _>(col).map_err(db());
    let mut record = TaskRecord::new(
        parse_id(&id)?,
        row.try_get::<String, _>("name").map_err(db())?,
        row.try_get::<String, _>("queue").map_err(db())?,
        row.try_get::<String, _>("payload").map_err(db())?,
        TaskState::from_str(&state).map_err(|e| corrupt(e.to_string()))?,
    );
    record.priority = int("priority")? as i16;
    record.attempts = int("attempts")? as u32;
    record.max_attempts = int("max_attempts")? as u32;
    record.requeues = int("requeues")? as u32;
    record.run_at = from_ms(int("run_at")?);
    record.lease_owner = owner
        .map(|o| o.parse().map_err(|e: uuid::Error| corrupt(e.to_string())))
        .transpose()?;
    record.lease_expires_at = opt("lease_expires_at")?.map(from_ms);
    record.last_error = row.try_get("last_error").map_err(db())?;
    let errors: String = row.try_get("errors").map_err(db())?;
    record.errors = crate::admin::attempt_errors(&id, &errors);
    record.unique_key = row.try_get("unique_key").map_err(db())?;
    record.started_at = opt("started_at")?.map(from_ms);
    record.cancel_requested_at = opt("cancel_requested_at")?.map(from_ms);
    record.created_at = from_ms(int("created_at")?);
    record.updated_at = from_ms(int("updated_at")?);
    record.finished_at = opt("finished_at")?.map(from_ms);
    Ok(record)
}
