-- durable:compatible-from 2
-- The history of a task's failed attempts: a JSON array of {attempt, at (Unix ms), worker,
-- message}, oldest first, the most recent 20 kept. Appended by every statement that records a
-- failed attempt, next to `last_error` (which stays as it was). A constant default: no rewrite
-- of the table; builds of schema 2 never read it and their writes leave it as it is.
ALTER TABLE durable_tasks ADD COLUMN errors jsonb NOT NULL DEFAULT '[]';

-- Attempts ended per minute and instance, for the admin overview: each runtime adds its
-- counts every few seconds, so reading the last hour costs a few dozen rows, not a scan of
-- the task table. Rows older than 24 hours are deleted by the writes.
CREATE TABLE IF NOT EXISTS durable_throughput (
    minute    timestamptz NOT NULL,  -- start of the minute
    worker    uuid        NOT NULL,  -- the runtime instance that counted
    completed bigint      NOT NULL DEFAULT 0,
    retried   bigint      NOT NULL DEFAULT 0,
    failed    bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, worker)
);

-- Failed tasks, oldest failure first: what an operator's bulk retry reads, and what the admin
-- overview counts. Partial, so it only holds failed rows and stays small.
CREATE INDEX IF NOT EXISTS durable_tasks_failed
    ON durable_tasks (finished_at, id) WHERE state = 'failed';
