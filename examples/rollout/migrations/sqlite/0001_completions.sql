-- One row per task that ran to its end: `runs` counts the ends, so a task whose code ran to
-- completion twice (at least once delivery) shows `runs = 2` instead of a second row.
CREATE TABLE IF NOT EXISTS completions (
    task_id      TEXT    PRIMARY KEY,
    kind         TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    runs         INTEGER NOT NULL DEFAULT 1,
    completed_at INTEGER NOT NULL DEFAULT (unixepoch())
);
