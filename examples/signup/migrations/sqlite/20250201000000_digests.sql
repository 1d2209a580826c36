-- One row per digest occurrence done (the periodic `signup_digest` task): its idempotency
-- record, keyed by the occurrence's time (Unix ms).
CREATE TABLE IF NOT EXISTS digests (
    scheduled_at INTEGER NOT NULL PRIMARY KEY,
    users        INTEGER NOT NULL,
    task_id      TEXT    NOT NULL
);
