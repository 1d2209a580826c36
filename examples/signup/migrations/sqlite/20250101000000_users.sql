CREATE TABLE IF NOT EXISTS users (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    email      TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL DEFAULT (unixepoch())
);

-- One row per welcome email actually sent: the idempotency record of the task.
CREATE TABLE IF NOT EXISTS sent_emails (
    email   TEXT    NOT NULL UNIQUE,
    task_id TEXT    NOT NULL,
    sent_at INTEGER NOT NULL DEFAULT (unixepoch())
);
