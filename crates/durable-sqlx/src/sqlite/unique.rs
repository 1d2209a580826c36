//! Inserting rows with unique keys on SQLite (see [`crate::unique`]).
//!
//! SQLite runs one writer at a time, so within the insert's transaction the row holding a
//! key cannot change between the insert and the lookup; the rounds of
//! [`Resolve`](crate::unique::Resolve) only matter on PostgreSQL, and are kept here so both
//! stores answer through the same steps.

use std::collections::HashMap;

use durable_core::store::NewTask;
use durable_core::TaskId;
use sqlx::{Connection as _, SqliteConnection};

use super::encode::rows_json;
use super::rows::parse_id;
use crate::error::{Error, Result};
use crate::unique::Resolve;

/// ?1 rows JSON (with `unique_key` and `unique_states`), ?2 now. The rows a key kept out are
/// skipped; the ids of the others come back. (`WHERE true`: SQLite's parser needs it between
/// a `SELECT .. FROM` and an upsert clause.)
const INSERT_UNIQUE: &str = concat!(
    "INSERT INTO durable_tasks (id, name, queue, payload, state, priority, attempts,
    max_attempts, run_at, lease_owner, lease_expires_at, started_at, created_at, updated_at,
    unique_key, unique_states, trace_parent)
SELECT j.value ->> '$.id', j.value ->> '$.name', j.value ->> '$.queue', j.value ->> '$.payload',
    j.value ->> '$.state', j.value ->> '$.priority', j.value ->> '$.attempts',
    j.value ->> '$.max_attempts', j.value ->> '$.run_at', j.value ->> '$.lease_owner',
    j.value ->> '$.lease_expires_at', j.value ->> '$.started_at', ?2, ?2,
    j.value ->> '$.unique_key', j.value ->> '$.unique_states', j.value ->> '$.trace_parent'
FROM json_each(?1) AS j
WHERE true
ON CONFLICT (unique_key) WHERE ",
    unique_live!(),
    " DO NOTHING
RETURNING id"
);

/// ?1 stored keys (JSON array): the rows holding them, through the unique index.
const HOLDERS: &str = concat!(
    "SELECT unique_key, id FROM durable_tasks
WHERE unique_key IN (SELECT value FROM json_each(?1)) AND ",
    unique_live!()
);

/// Inserts `tasks` (some with unique keys) in one savepoint; returns each row's surviving id.
pub(super) async fn insert_unique(
    conn: &mut SqliteConnection,
    tasks: &[NewTask],
    now: i64,
) -> Result<Vec<TaskId>> {
    let mut tx = conn.begin().await.map_err(Error::db("insert"))?;
    let mut resolve = Resolve::new(tasks);
    while let Some(round) = resolve.next_round()? {
        let mut inserted = Vec::with_capacity(round.len());
        for chunk in round.chunks(CHUNK) {
            let ids: Vec<String> = sqlx::query_scalar(INSERT_UNIQUE)
                .bind(rows_json(chunk.iter().copied(), now)?)
                .bind(now)
                .fetch_all(&mut *tx)
                .await
                .map_err(Error::db("insert"))?;
            for id in ids {
                inserted.push(parse_id(&id)?);
            }
        }
        let keys = resolve.inserted(&inserted, |t| t.unique.as_ref().map(|u| u.stored_key(now)))?;
        if keys.is_empty() {
            continue;
        }
        let keys_json = serde_json::to_string(&keys).map_err(|source| Error::Encode {
            what: "unique keys as JSON",
            source: source.into(),
        })?;
        let rows: Vec<(String, String)> = sqlx::query_as(HOLDERS)
            .bind(keys_json)
            .fetch_all(&mut *tx)
            .await
            .map_err(Error::db("insert"))?;
        let mut found = HashMap::with_capacity(rows.len());
        for (key, id) in rows {
            found.insert(key, parse_id(&id)?);
        }
        resolve.found(&keys, &found);
    }
    tx.commit().await.map_err(Error::db("insert"))?;
    Ok(resolve.finish())
}

/// Rows per statement: unique inserts are small; this only bounds a large batch's statement.
const CHUNK: usize = 4096;
