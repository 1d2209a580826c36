//! Rows to and from PostgreSQL: batch insert columns, fences, and decoding claimed and stored rows.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use durable_core::store::{ClaimedTask, Fence, NewTask, TaskRecord};
use durable_core::{TaskId, TaskState, WorkerId};
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, PgPool, Row};
use uuid::Uuid;

use super::{ms, sql};
use crate::error::{Error, Result};

/// The rows of an insert as one array per column.
#[derive(Default)]
pub(super) struct Columns {
    ids: Vec<Uuid>,
    names: Vec<String>,
    queues: Vec<String>,
    payloads: Vec<String>,
    priorities: Vec<i16>,
    max_attempts: Vec<i32>,
    run_at: Vec<Option<DateTime<Utc>>>,
    owners: Vec<Option<Uuid>>,
    lease_ms: Vec<Option<i64>>,
    trace_parents: Vec<Option<String>>,
}

impl Columns {
    /// The columns of `tasks`, in order.
    pub(super) fn of<'t>(tasks: impl IntoIterator<Item = &'t NewTask>) -> Self {
        let mut c = Self::default();
        for t in tasks {
            c.ids.push(*t.id.as_uuid());
            c.names.push(t.name.clone());
            c.queues.push(t.queue.clone());
            c.payloads.push(t.payload.clone());
            c.priorities.push(t.priority);
            c.max_attempts
                .push(i32::try_from(t.max_attempts.max(1)).unwrap_or(i32::MAX));
            c.run_at.push(t.run_at);
            c.owners.push(t.claimed_by.map(|l| *l.owner.as_uuid()));
            c.lease_ms.push(t.claimed_by.map(|l| ms(l.lease)));
            c.trace_parents.push(t.trace_parent.clone());
        }
        c
    }
    /// Binds the columns as `$1..$10` of an insert statement ([`sql::INSERT`] and the unique
    /// insert), in the order both take them.
    pub(super) fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query
            .bind(&self.ids)
            .bind(&self.names)
            .bind(&self.queues)
            .bind(&self.payloads)
            .bind(&self.priorities)
            .bind(&self.max_attempts)
            .bind(&self.run_at)
            .bind(&self.owners)
            .bind(&self.lease_ms)
            .bind(&self.trace_parents)
    }
}

/// A statement with its arguments being bound.
pub(super) type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Inserts rows on any PostgreSQL connection (a caller's transaction included), in one
/// statement that also sends the wakeup `NOTIFY` (delivered at commit) when a row is due.
///
/// A batch too large for one statement ([`chunks`](crate::util::chunks)) is written in
/// several inside a savepoint (a transaction if the connection has none): all or none.
///
/// Returns one id per row: its own, or the id of the task holding its unique key.
pub(crate) async fn insert_on(conn: &mut PgConnection, tasks: &[NewTask]) -> Result<Vec<TaskId>> {
    if crate::unique::any_unique(tasks) {
        return super::unique::insert_unique(conn, tasks).await;
    }
    insert_plain(conn, tasks).await?;
    Ok(tasks.iter().map(|t| t.id).collect())
}

/// Inserts rows without unique keys.
async fn insert_plain(conn: &mut PgConnection, tasks: &[NewTask]) -> Result<()> {
    match crate::util::chunks(tasks).as_slice() {
        [] => Ok(()),
        [one] => insert_statement(conn, one).await,
        several => {
            let mut tx = conn.begin().await.map_err(Error::db("insert"))?;
            for chunk in several {
                insert_statement(&mut tx, chunk).await?;
            }
            tx.commit().await.map_err(Error::db("insert"))
        }
    }
}

/// One insert statement (see [`sql::INSERT`]).
pub(super) async fn insert_statement(conn: &mut PgConnection, tasks: &[NewTask]) -> Result<()> {
    let c = Columns::of(tasks);
    c.bind(sqlx::query(sql::INSERT))
        .execute(conn)
        .await
        .map_err(Error::db("insert"))?;
    Ok(())
}

/// Runs one autocommit statement on a pooled connection, in the caller's task.
pub(super) async fn pooled<T>(
    pool: &PgPool,
    operation: &'static str,
    body: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
) -> durable_core::Result<T> {
    let mut conn = pool.acquire().await.map_err(Error::db(operation))?;
    Ok(body(&mut conn).await?)
}

/// The fences as the three arrays the fenced statements take.
pub(super) fn fence_columns(fences: &[Fence]) -> (Vec<Uuid>, Vec<Uuid>, Vec<i32>) {
    let mut ids = Vec::with_capacity(fences.len());
    let mut owners = Vec::with_capacity(fences.len());
    let mut attempts = Vec::with_capacity(fences.len());
    for f in fences {
        ids.push(*f.id.as_uuid());
        owners.push(*f.owner.as_uuid());
        attempts.push(attempt_i32(f.attempt));
    }
    (ids, owners, attempts)
}

pub(super) fn attempt_i32(attempt: u32) -> i32 {
    i32::try_from(attempt).unwrap_or(i32::MAX)
}

pub(super) fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// PostgreSQL text cannot hold NUL bytes; an error message with one would fail the write.
pub(super) fn clean_text(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s.to_owned()
    }
}

pub(super) fn claimed_from_row(row: &PgRow, owner: WorkerId) -> Result<ClaimedTask> {
    let db = || Error::db("claim");
    Ok(ClaimedTask::new(
        TaskId::from_uuid(row.try_get("id").map_err(db())?),
        row.try_get("name").map_err(db())?,
        row.try_get("queue").map_err(db())?,
        row.try_get("payload").map_err(db())?,
        count(row.try_get("attempts").map_err(db())?),
        count(row.try_get("max_attempts").map_err(db())?),
        owner,
    )
    .with_due_at(row.try_get("run_at").map_err(db())?)
    .with_trace_parent(row.try_get("trace_parent").map_err(db())?))
}

pub(super) fn record_from_row(row: &PgRow) -> Result<TaskRecord> {
    let db = || Error::db("get");
    let id: Uuid = row.try_get("id").map_err(db())?;
    let state: String = row.try_get("state").map_err(db())?;
    let state = TaskState::from_str(&state).map_err(|e| Error::CorruptRow {
        id: id.to_string(),
        reason: e.to_string(),
    })?;
    let mut record = TaskRecord::new(
        TaskId::from_uuid(id),
        row.try_get::<String, _>("name").map_err(db())?,
        row.try_get::<String, _>("queue").map_err(db())?,
        row.try_get::<String, _>("payload").map_err(db())?,
        state,
    );
    record.priority = row.try_get("priority").map_err(db())?;
    record.attempts = count(row.try_get("attempts").map_err(db())?);
    record.max_attempts = count(row.try_get("max_attempts").map_err(db())?);
    record.requeues = count(row.try_get("requeues").map_err(db())?);
    record.run_at = row.try_get("run_at").map_err(db())?;
    record.lease_owner = row
        .try_get::<Option<Uuid>, _>("lease_owner")
        .map_err(db())?
        .map(WorkerId::from_uuid);
    record.lease_expires_at = row.try_get("lease_expires_at").map_err(db())?;
    record.last_error = row.try_get("last_error").map_err(db())?;
    let errors: String = row.try_get("errors").map_err(db())?;
    record.errors = crate::admin::attempt_errors(&id.to_string(), &errors);
    record.unique_key = row.try_get("unique_key").map_err(db())?;
    record.started_at = row.try_get("started_at").map_err(db())?;
    record.cancel_requested_at = row.try_get("cancel_requested_at").map_err(db())?;
    record.created_at = row.try_get("created_at").map_err(db())?;
    record.updated_at = row.try_get("updated_at").map_err(db())?;
    record.finished_at = row.try_get("finished_at").map_err(db())?;
    Ok(record)
}
