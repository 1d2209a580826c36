-- One row per task that ran to its end: `runs` counts the ends, so a task whose code ran to
-- completion twice (at least once delivery) shows `runs = 2` instead of a second row.
CREATE TABLE IF NOT EXISTS completions (
    task_id      UUID        PRIMARY KEY,
    kind         TEXT        NOT NULL,
    seq          BIGINT      NOT NULL,
    version      INTEGER     NOT NULL,
    runs         INTEGER     NOT NULL DEFAULT 1,
    completed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
