-- One row per digest occurrence done (the periodic `signup_digest` task): its idempotency
-- record, keyed by the occurrence's time.
CREATE TABLE IF NOT EXISTS digests (
    scheduled_at timestamptz NOT NULL PRIMARY KEY,
    users        bigint      NOT NULL,
    task_id      uuid        NOT NULL
);
