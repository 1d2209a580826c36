//! Encoding rows, fences and claims for the cycle statements.

use durable_core::store::{ClaimRequest, Fence, NewTask, WriteBatch};
use durable_core::TaskId;
use serde_json::json;
use sqlx::sqlite::SqliteArguments;
use sqlx::SqliteConnection;

use super::{script, sql};
use crate::error::{Error, Result};
use crate::util::millis;

pub(super) fn fences_json(fences: &[Fence]) -> String {
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
pub(super) struct RowJson<'a> {
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
    /// Read only by the unique insert ([`super::unique`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    unique_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unique_states: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_parent: Option<&'a str>,
}

pub(super) fn rows_json<'a>(
    tasks: impl IntoIterator<Item = &'a NewTask>,
    now: i64,
) -> Result<String> {
    let rows: Vec<RowJson<'_>> = tasks
        .into_iter()
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
                unique_key: t.unique.as_ref().map(|u| u.stored_key(now)),
                unique_states: t.unique.as_ref().map(|u| u.states),
                trace_parent: t.trace_parent.as_deref(),
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
/// several inside a savepoint (a transaction if the connection has none). `now` is the
/// store's clock.
///
/// Returns one id per row: its own, or the id of the task holding its unique key.
pub(crate) async fn insert_on(
    conn: &mut SqliteConnection,
    tasks: &[NewTask],
    now: i64,
) -> Result<Vec<TaskId>> {
    if crate::unique::any_unique(tasks) {
        return super::unique::insert_unique(conn, tasks, now).await;
    }
    insert_plain(conn, tasks, now).await?;
    Ok(tasks.iter().map(|t| t.id).collect())
}

/// Inserts rows without unique keys.
async fn insert_plain(conn: &mut SqliteConnection, tasks: &[NewTask], now: i64) -> Result<()> {
    use sqlx::Connection as _;
    match crate::util::chunks(tasks).as_slice() {
        [] => Ok(()),
        [one] => insert_json(conn, rows_json(*one, now)?, now).await,
        several => {
            let mut tx = conn.begin().await.map_err(Error::db("insert"))?;
            for chunk in several {
                insert_json(&mut tx, rows_json(*chunk, now)?, now).await?;
            }
            tx.commit().await.map_err(Error::db("insert"))
        }
    }
}

/// Inserts rows already serialized by [`rows_json`] at `now`.
pub(super) async fn insert_json(conn: &mut SqliteConnection, rows: String, now: i64) -> Result<()> {
    sqlx::query(sql::INSERT)
        .bind(rows)
        .bind(now)
        .execute(conn)
        .await
        .map_err(Error::db("insert"))?;
    Ok(())
}

/// The parameters of [`script::cycle_script`] for `batch`'s completions and rows, the spare
/// slots of each bucket bound to NULL. The claim's come last and are added once the
/// connection is held ([`claim_args`]): its "now" must not predate rows committed while the
/// cycle waited for the connection.
pub(super) fn bound_cycle_args(batch: &WriteBatch<'_>, now: i64) -> Result<SqliteArguments> {
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
        let slots = script::bucket(batch.complete.len());
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
        for _ in batch.complete.len() * script::FENCE_PARAMS..slots * script::FENCE_PARAMS {
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
            add(
                &mut args,
                t.trace_parent
                    .as_ref()
                    .map_or(Value::Null, |tp| Value::Text(tp.clone())),
            )?;
        }
        for _ in batch.insert.len() * script::ROW_PARAMS
            ..script::bucket(batch.insert.len()) * script::ROW_PARAMS
        {
            add(&mut args, Value::Null)?;
        }
    }
    Ok(args)
}

/// Appends the claim's parameters (owner, lease expiry, now, now, now, task names, limit)
/// at `now`.
pub(super) fn claim_args(args: &mut SqliteArguments, claim: &ClaimRequest, now: i64) -> Result<()> {
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
pub(super) fn names_json(names: &[String]) -> Result<String> {
    serde_json::to_string(names).map_err(|source| Error::Encode {
        what: "task names as JSON",
        source: source.into(),
    })
}

/// One bound value of a cycle.
pub(super) enum Value {
    Text(String),
    Int(i64),
    Null,
}
