-- durable:compatible-from 2
-- One row per periodic schedule (a new table: builds of schema 2 never read it). Every instance
-- running a schedule moves its row from the value it read to the next occurrence, and inserts
-- that occurrence's task in the same transaction: the one whose update matched enqueued it.
-- Times are Unix milliseconds (UTC).
CREATE TABLE IF NOT EXISTS durable_schedules (
    name             TEXT    PRIMARY KEY NOT NULL,  -- the schedule's stable name
    enqueued_through INTEGER NOT NULL,              -- occurrences up to this time are handled
    spec             TEXT    NOT NULL,              -- the schedule, as the last writer described it
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
