//! Inserting rows with unique keys on PostgreSQL (see [`crate::unique`]).
//!
//! The rounds run in one transaction (a savepoint inside the caller's), at `READ
//! COMMITTED` unless the caller chose otherwise: the insert waits for a concurrent
//! transaction holding the same key to end, and the lookup after it — a new statement, a
//! new snapshot — sees the holder that transaction committed. If the holder left its unique
//! states in between, the key is free and the next round inserts the row.

use std::collections::HashMap;

use durable_core::store::NewTask;
use durable_core::TaskId;
use sqlx::{Connection as _, PgConnection, Row};
use uuid::Uuid;

use super::rows::Columns as RowColumns;
use crate::error::{Error, Result};
use crate::unique::Resolve;

/// [`sql::INSERT`](super::sql::INSERT)'s parameters, then $11 namespaced keys, $12 state
/// masks, $13 periods in ms (NULL: none). Every row comes back with its stored key (the
/// period's bucket is computed here, from `now()`) and whether it was inserted; the wakeup
/// `NOTIFY` is sent as by the plain insert.
const INSERT_UNIQUE: &str = concat!(
    "
WITH r AS (
    SELECT u.*,
        CASE WHEN u.period_ms IS NULL THEN u.ukey
             ELSE 'p' || u.period_ms || '.'
                  || (floor(extract(epoch FROM durable_now()) * 1000)::int8 / u.period_ms)
                  || '/' || u.ukey
        END AS stored_key
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int2[], $6::int4[],
                $7::timestamptz[], $8::uuid[], $9::int8[], $10::text[], $11::text[], $12::int4[],
                $13::int8[])
        WITH ORDINALITY
        AS u(id, name, queue, payload, priority, max_attempts, run_at, owner, lease_ms,
             trace_parent, ukey, ustates, period_ms, ord)
), inserted AS (
    INSERT INTO durable_tasks_keyed (id, name, queue, payload, state, priority, attempts,
        max_attempts, run_at, lease_owner, lease_expires_at, started_at, created_at, updated_at,
        unique_key, unique_states, trace_parent)
    SELECT r.id, r.name, r.queue, r.payload::jsonb,
        CASE WHEN r.owner IS NULL THEN 'pending' ELSE 'processing' END,
        r.priority,
        CASE WHEN r.owner IS NULL THEN 0 ELSE 1 END,
        r.max_attempts,
        coalesce(r.run_at, durable_now()),
        r.owner,
        CASE WHEN r.owner IS NOT NULL THEN durable_now() + r.lease_ms * interval '1 millisecond' END,
        CASE WHEN r.owner IS NOT NULL THEN durable_now() END,
        durable_now(), durable_now(),
        r.stored_key, r.ustates, r.trace_parent
    FROM r
    ORDER BY r.ord
    ON CONFLICT (unique_key) WHERE ",
    unique_live!(),
    " DO NOTHING
    RETURNING id, state, run_at
), woke AS (
    SELECT pg_notify(",
    channel!(),
    ", '') FROM inserted WHERE state = 'pending' AND run_at <= durable_now() LIMIT 1
)
SELECT r.id, r.stored_key, i.id IS NOT NULL AS inserted, (SELECT count(*) FROM woke) AS woke
FROM r LEFT JOIN inserted AS i ON i.id = r.id"
);

/// $1 stored keys: the rows holding them, through the unique index.
const HOLDERS: &str = concat!(
    "SELECT unique_key, id FROM durable_tasks WHERE unique_key = ANY($1::text[]) AND ",
    unique_live!()
);

/// The rows' columns for [`INSERT_UNIQUE`]: an insert's, and the unique keys'.
struct Columns {
    rows: RowColumns,
    keys: Vec<Option<String>>,
    states: Vec<Option<i32>>,
    periods: Vec<Option<i64>>,
}

impl Columns {
    fn of(tasks: &[&NewTask]) -> Self {
        let unique = || tasks.iter().map(|t| t.unique.as_ref());
        Self {
            rows: RowColumns::of(tasks.iter().copied()),
            keys: unique().map(|u| u.map(|u| u.key.clone())).collect(),
            states: unique().map(|u| u.map(|u| u.states)).collect(),
            periods: unique().map(|u| u.and_then(|u| u.period_ms)).collect(),
        }
    }
}

/// Inserts `tasks` (some with unique keys) in one transaction or savepoint; returns each
/// row's surviving id.
pub(super) async fn insert_unique(
    conn: &mut PgConnection,
    tasks: &[NewTask],
) -> Result<Vec<TaskId>> {
    let mut tx = conn.begin().await.map_err(Error::db("insert"))?;
    let mut resolve = Resolve::new(tasks);
    while let Some(round) = resolve.next_round()? {
        let mut inserted = Vec::with_capacity(round.len());
        let mut stored: HashMap<TaskId, String> = HashMap::new();
        for chunk in round.chunks(CHUNK) {
            let c = Columns::of(chunk);
            let rows = c
                .rows
                .bind(sqlx::query(INSERT_UNIQUE))
                .bind(&c.keys)
                .bind(&c.states)
                .bind(&c.periods)
                .fetch_all(&mut *tx)
                .await
                .map_err(Error::db("insert"))?;
            for row in rows {
                let id = TaskId::from_uuid(row.try_get("id").map_err(Error::db("insert"))?);
                if row.try_get("inserted").map_err(Error::db("insert"))? {
                    inserted.push(id);
                } else if let Some(key) = row
                    .try_get::<Option<String>, _>("stored_key")
                    .map_err(Error::db("insert"))?
                {
                    stored.insert(id, key);
                }
            }
        }
        let keys = resolve.inserted(&inserted, |t| stored.get(&t.id).cloned())?;
        if keys.is_empty() {
            continue;
        }
        let rows: Vec<(String, Uuid)> = sqlx::query_as(HOLDERS)
            .bind(&keys)
            .fetch_all(&mut *tx)
            .await
            .map_err(Error::db("insert"))?;
        let found: HashMap<String, TaskId> = rows
            .into_iter()
            .map(|(key, id)| (key, TaskId::from_uuid(id)))
            .collect();
        resolve.found(&keys, &found);
    }
    tx.commit().await.map_err(Error::db("insert"))?;
    Ok(resolve.finish())
}

/// Rows per statement: unique inserts are small; this only bounds a large batch's statement.
const CHUNK: usize = 4096;
