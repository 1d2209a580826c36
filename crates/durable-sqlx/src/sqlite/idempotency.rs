//! Idempotency keys on SQLite: taking a key, recording a response with a request's tasks,
//! releasing and purging keys. Times are Unix ms from the store's clock.

use durable_core::store::{KeyClaim, KeyTake, NewTask, ResponseRecord, StoredResponse};
use durable_core::TaskId;
use sqlx::{Row, SqliteConnection};

use super::encode::insert_on;
use super::{to_core, SqliteStore};
use crate::error::{Error, Result};
use crate::util::millis;

/// Inserts the key `running`, or takes it over when its record expired or its first
/// request died unrecorded (same fingerprint, lock expired). `RETURNING` says whether this
/// request holds it now. ?1 key, ?2 fingerprint, ?3 token, ?4 locked until, ?5 now,
/// ?6 expires at.
const TAKE: &str = "
INSERT INTO durable_idempotency (key_hash, fingerprint, state, token, locked_until,
    created_at, expires_at)
VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6)
ON CONFLICT (key_hash) DO UPDATE SET
    fingerprint = excluded.fingerprint, state = 'running', token = excluded.token,
    locked_until = excluded.locked_until, status = NULL, headers = NULL, body = NULL,
    created_at = excluded.created_at, expires_at = excluded.expires_at
WHERE durable_idempotency.expires_at <= excluded.created_at
   OR (durable_idempotency.state = 'running'
       AND durable_idempotency.locked_until <= excluded.created_at
       AND durable_idempotency.fingerprint = excluded.fingerprint)
RETURNING token";

/// The key's row, when another request holds it.
const LOOKUP: &str = "
SELECT fingerprint, state, status, headers, body FROM durable_idempotency WHERE key_hash = ?1";

/// ?1 status, ?2 headers, ?3 body, ?4 now, ?5 expires at, ?6 key, ?7 token.
const RECORD: &str = "
UPDATE durable_idempotency
SET state = 'completed', status = ?1, headers = ?2, body = ?3, locked_until = ?4,
    expires_at = ?5
WHERE key_hash = ?6 AND token = ?7 AND state = 'running'";

const RELEASE: &str = "
DELETE FROM durable_idempotency WHERE key_hash = ?1 AND token = ?2 AND state = 'running'";

/// Bounded: a large backlog of expired keys is removed a batch at a time.
const PURGE: &str = "
DELETE FROM durable_idempotency WHERE key_hash IN (
    SELECT key_hash FROM durable_idempotency WHERE expires_at <= ?1 LIMIT ?2)";

/// Records responses on `conn` (inside the caller's transaction): every key must still be
/// `running` under the record's token, else [`Error::KeyLost`] (the caller rolls back).
pub(crate) async fn record_on(
    conn: &mut SqliteConnection,
    records: &[ResponseRecord],
    now: i64,
) -> Result<()> {
    for record in records {
        let response = &record.response;
        let done = sqlx::query(RECORD)
            .bind(i64::from(response.status))
            .bind(response.headers_json())
            .bind(response.body.as_deref())
            .bind(now)
            .bind(now.saturating_add(millis(record.keep_for)))
            .bind(&record.key_hash)
            .bind(&record.token)
            .execute(&mut *conn)
            .await
            .map_err(Error::db("record response"))?;
        if done.rows_affected() != 1 {
            return Err(Error::KeyLost);
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Rows and responses in one transaction of their own.
    pub(super) async fn insert_with_responses(
        &self,
        tasks: &[NewTask],
        records: &[ResponseRecord],
    ) -> durable_core::Result<Vec<TaskId>> {
        let tasks = tasks.to_vec();
        let records = records.to_vec();
        let clock = self.inner.clock.clone();
        to_core(
            self.transaction("insert", move |conn| {
                Box::pin(async move {
                    let now = clock.now_ms();
                    let survivors = insert_on(conn, &tasks, now).await?;
                    record_on(conn, &records, now).await?;
                    Ok(survivors)
                })
            })
            .await,
        )
    }

    pub(super) async fn take_idempotency_key(
        &self,
        take: &KeyTake,
    ) -> durable_core::Result<KeyClaim> {
        let take = take.clone();
        let clock = self.inner.clock.clone();
        to_core(
            self.transaction("take idempotency key", move |conn| {
                Box::pin(async move {
                    let now = clock.now_ms();
                    let holder: Option<String> = sqlx::query_scalar(TAKE)
                        .bind(&take.key_hash)
                        .bind(&take.fingerprint)
                        .bind(&take.token)
                        .bind(now.saturating_add(millis(take.lock_for)))
                        .bind(now)
                        .bind(now.saturating_add(millis(take.keep_for.max(take.lock_for))))
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(Error::db("take idempotency key"))?;
                    if holder.as_deref() == Some(take.token.as_str()) {
                        return Ok(KeyClaim::Taken);
                    }
                    let row = sqlx::query(LOOKUP)
                        .bind(&take.key_hash)
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(Error::db("take idempotency key"))?;
                    let read = |e| Error::db("read idempotency key")(e);
                    let fingerprint: String = row.try_get(0).map_err(read)?;
                    let state: String = row.try_get(1).map_err(read)?;
                    if fingerprint != take.fingerprint {
                        return Ok(KeyClaim::Mismatch);
                    }
                    if state != "completed" {
                        return Ok(KeyClaim::Running);
                    }
                    let status: i64 = row.try_get(2).map_err(read)?;
                    let headers: Option<String> = row.try_get(3).map_err(read)?;
                    let body: Option<Vec<u8>> = row.try_get(4).map_err(read)?;
                    Ok(KeyClaim::Completed(
                        StoredResponse::new(u16::try_from(status).unwrap_or(500))
                            .with_headers(StoredResponse::headers_from_json(
                                headers.as_deref().unwrap_or("[]"),
                            ))
                            .with_body(body),
                    ))
                })
            })
            .await,
        )
    }

    pub(super) async fn release_idempotency_key(
        &self,
        key_hash: &str,
        token: &str,
    ) -> durable_core::Result<bool> {
        let (key_hash, token) = (key_hash.to_owned(), token.to_owned());
        to_core(
            self.transaction("release idempotency key", move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(RELEASE)
                        .bind(key_hash)
                        .bind(token)
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("release idempotency key"))?;
                    Ok(done.rows_affected() == 1)
                })
            })
            .await,
        )
    }

    pub(super) async fn purge_idempotency_keys(&self, limit: u32) -> durable_core::Result<u64> {
        let clock = self.inner.clock.clone();
        to_core(
            self.transaction("purge idempotency keys", move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(PURGE)
                        .bind(clock.now_ms())
                        .bind(i64::from(limit))
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::db("purge idempotency keys"))?;
                    Ok(done.rows_affected())
                })
            })
            .await,
        )
    }
}
