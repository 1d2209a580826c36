-- durable:compatible-from 2
-- Idempotency keys of HTTP requests (Idempotency-Key header): one row per key, taken
-- `running` before the request's handler runs, `completed` with the response in the same
-- transaction as the request's tasks. Times are Unix ms.
CREATE TABLE IF NOT EXISTS durable_idempotency (
    -- SHA-256 (hex) of the method, path, scope and header value.
    key_hash     TEXT    NOT NULL PRIMARY KEY,
    -- SHA-256 (hex) of the request body: the same key with another body is refused.
    fingerprint  TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('running', 'completed')),
    -- The holder's fence: a record or release under another token does nothing.
    token        TEXT    NOT NULL,
    -- A `running` key past this may be taken over (its first request died unrecorded).
    locked_until INTEGER NOT NULL,
    status       INTEGER,
    -- JSON array of [name, value] pairs.
    headers      TEXT,
    -- NULL on a completed key: the body was not stored (over the limit or of unknown size).
    body         BLOB,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS durable_idempotency_expires ON durable_idempotency (expires_at);
