-- One row per task. Times are Unix milliseconds (UTC); read them by hand with
--   datetime(run_at / 1000, 'unixepoch').
CREATE TABLE IF NOT EXISTS durable_tasks (
    id               TEXT    PRIMARY KEY NOT NULL,   -- hyphenated UUID v7
    name             TEXT    NOT NULL,               -- stable task type name
    queue            TEXT    NOT NULL DEFAULT 'default',
    payload          TEXT    NOT NULL,               -- JSON
    state            TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    priority         INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_at           INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER
);

-- Claim order over due pending rows, all queues and per queue.
CREATE INDEX IF NOT EXISTS durable_tasks_claim
    ON durable_tasks (priority DESC, run_at, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS durable_tasks_claim_queue
    ON durable_tasks (queue, priority DESC, run_at, id) WHERE state = 'pending';
-- Lease sweep.
CREATE INDEX IF NOT EXISTS durable_tasks_lease
    ON durable_tasks (lease_expires_at) WHERE state = 'processing';
-- Retention pruning.
CREATE INDEX IF NOT EXISTS durable_tasks_finished
    ON durable_tasks (finished_at) WHERE state IN ('completed', 'cancelled');
