//! Idempotency keys on PostgreSQL: taking a key, recording responses with a request's tasks,
//! releasing and purging keys. Every time comes from the database's clock (`durable_now()`).

use durable_core::store::{KeyClaim, KeyTake, NewTask, ResponseRecord, StoredResponse};
use durable_core::TaskId;
use sqlx::{Acquire as _, PgConnection, Row};

use super::rows::insert_on;
use super::{ms, PostgresStore};
use crate::error::{Error, Result};

/// Inserts the key `running`, or takes it over when its record expired or its first
/// request died unrecorded (same fingerprint, lock expired). `RETURNING` says whether this
/// request holds it now. $1 key, $2 fingerprint, $3 token, $4 lock ms, $5 keep ms.
const TAKE: &str = "
INSERT INTO durable_idempotency (key_hash, fingerprint, state, token, locked_until,
    created_at, expires_at)
VALUES ($1, $2, 'running', $3, durable_now() + $4::float8 * interval '1 millisecond', durable_now(),
    durable_now() + $5::float8 * interval '1 millisecond')
ON CONFLICT (key_hash) DO UPDATE SET
    fingerprint = excluded.fingerprint, state = 'running', token = excluded.token,
    locked_until = excluded.locked_until, status = NULL, headers = NULL, body = NULL,
    created_at = excluded.created_at, expires_at = excluded.expires_at
WHERE durable_idempotency.expires_at <= durable_now()
   OR (durable_idempotency.state = 'running'
       AND durable_idempotency.locked_until <= durable_now()
       AND durable_idempotency.fingerprint = excluded.fingerprint)
RETURNING token";

/// The key's row, when another request holds it.
const LOOKUP: &str = "
SELECT fingerprint, state, status, headers, body FROM durable_idempotency WHERE key_hash = $1";

/// Every record of a cycle in one statement: $1 keys, $2 tokens, $3 statuses, $4 headers,
/// $5 bodies, $6 whether the body is stored, $7 keep ms. Returns the keys recorded.
const RECORD: &str = "
UPDATE durable_idempotency AS k
SET state = 'completed', status = r.status, headers = r.headers,
    body = CASE WHEN r.stored THEN r.body END, locked_until = durable_now(),
    expires_at = durable_now() + r.keep_ms::float8 * interval '1 millisecond'
FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::bytea[], $6::bool[],
    $7::int8[]) AS r(key_hash, token, status, headers, body, stored, keep_ms)
WHERE k.key_hash = r.key_hash AND k.token = r.token AND k.state = 'running'";

const RELEASE: &str = "
DELETE FROM durable_idempotency WHERE key_hash = $1 AND token = $2 AND state = 'running'";

/// Bounded, and skipping rows another purge holds.
const PURGE: &str = "
DELETE FROM durable_idempotency WHERE key_hash IN (
    SELECT key_hash FROM durable_idempotency WHERE expires_at <= durable_now()
    LIMIT $1 FOR UPDATE SKIP LOCKED)";

/// Records responses on `conn` (inside the caller's transaction): every key must still be
/// `running` under the record's token, else [`Error::KeyLost`] (the caller rolls back).
pub(crate) async fn record_on(conn: &mut PgConnection, records: &[ResponseRecord]) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut keys = Vec::with_capacity(records.len());
    let mut tokens = Vec::with_capacity(records.len());
    let mut statuses = Vec::with_capacity(records.len());
    let mut headers = Vec::with_capacity(records.len());
    let mut bodies = Vec::with_capacity(records.len());
    let mut stored = Vec::with_capacity(records.len());
    let mut keep = Vec::with_capacity(records.len());
    for record in records {
        keys.push(record.key_hash.as_str());
        tokens.push(record.token.as_str());
        statuses.push(i32::from(record.response.status));
        headers.push(record.response.headers_json());
        bodies.push(record.response.body.clone().unwrap_or_default());
        stored.push(record.response.body.is_some());
        keep.push(ms(record.keep_for));
    }
    let done = sqlx::query(RECORD)
        .bind(keys)
        .bind(tokens)
        .bind(statuses)
        .bind(headers)
        .bind(bodies)
        .bind(stored)
        .bind(keep)
        .execute(conn)
        .await
        .map_err(Error::db("record response"))?;
    if done.rows_affected() == records.len() as u64 {
        Ok(())
    } else {
        Err(Error::KeyLost)
    }
}

impl PostgresStore {
    /// Rows and responses in one transaction.
    pub(super) async fn insert_with_responses(
        &self,
        tasks: &[NewTask],
        records: &[ResponseRecord],
    ) -> durable_core::Result<Vec<TaskId>> {
        let tasks = tasks.to_vec();
        let records = records.to_vec();
        self.run("insert", move |pool| async move {
            let mut tx = pool.begin().await.map_err(Error::db("insert"))?;
            let survivors = insert_on(&mut tx, &tasks).await?;
            record_on(&mut tx, &records).await?;
            tx.commit().await.map_err(Error::db("insert"))?;
            Ok(survivors)
        })
        .await
    }

    pub(super) async fn take_idempotency_key(
        &self,
        take: &KeyTake,
    ) -> durable_core::Result<KeyClaim> {
        let take = take.clone();
        self.run("take idempotency key", move |pool| async move {
            let mut conn = pool
                .acquire()
                .await
                .map_err(Error::db("take idempotency key"))?;
            let mut tx = conn
                .begin()
                .await
                .map_err(Error::db("take idempotency key"))?;
            let holder: Option<String> = sqlx::query_scalar(TAKE)
                .bind(&take.key_hash)
                .bind(&take.fingerprint)
                .bind(&take.token)
                .bind(ms(take.lock_for))
                .bind(ms(take.keep_for.max(take.lock_for)))
                .fetch_optional(&mut *tx)
                .await
                .map_err(Error::db("take idempotency key"))?;
            let claim = if holder.as_deref() == Some(take.token.as_str()) {
                KeyClaim::Taken
            } else {
                let row = sqlx::query(LOOKUP)
                    .bind(&take.key_hash)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(Error::db("take idempotency key"))?;
                claim_of(&row, &take.fingerprint)?
            };
            tx.commit()
                .await
                .map_err(Error::db("take idempotency key"))?;
            Ok(claim)
        })
        .await
    }

    pub(super) async fn release_idempotency_key(
        &self,
        key_hash: &str,
        token: &str,
    ) -> durable_core::Result<bool> {
        let (key_hash, token) = (key_hash.to_owned(), token.to_owned());
        self.run("release idempotency key", move |pool| async move {
            let done = sqlx::query(RELEASE)
                .bind(key_hash)
                .bind(token)
                .execute(&pool)
                .await
                .map_err(Error::db("release idempotency key"))?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    pub(super) async fn purge_idempotency_keys(&self, limit: u32) -> durable_core::Result<u64> {
        self.run("purge idempotency keys", move |pool| async move {
            let done = sqlx::query(PURGE)
                .bind(i64::from(limit))
                .execute(&pool)
                .await
                .map_err(Error::db("purge idempotency keys"))?;
            Ok(done.rows_affected())
        })
        .await
    }
}

/// What a row held by another request means for this one.
fn claim_of(row: &sqlx::postgres::PgRow, fingerprint: &str) -> Result<KeyClaim> {
    let read = |e| Error::db("read idempotency key")(e);
    let stored: String = row.try_get(0).map_err(read)?;
    let state: String = row.try_get(1).map_err(read)?;
    if stored != fingerprint {
        return Ok(KeyClaim::Mismatch);
    }
    if state != "completed" {
        return Ok(KeyClaim::Running);
    }
    let status: i32 = row.try_get(2).map_err(read)?;
    let headers: Option<String> = row.try_get(3).map_err(read)?;
    let body: Option<Vec<u8>> = row.try_get(4).map_err(read)?;
    Ok(KeyClaim::Completed(
        StoredResponse::new(u16::try_from(status).unwrap_or(500))
            .with_headers(StoredResponse::headers_from_json(
                headers.as_deref().unwrap_or("[]"),
            ))
            .with_body(body),
    ))
}
