-- durable:compatible-from 2
-- One row per periodic schedule (a new table: builds of schema 2 never read it). Every instance
-- running a schedule moves its row from the value it read to the next occurrence, and inserts
-- that occurrence's task in the same transaction: the one whose update matched enqueued it.
CREATE TABLE durable_schedules (
    name             text        PRIMARY KEY,        -- the schedule's stable name
    enqueued_through timestamptz NOT NULL,           -- occurrences up to this time are handled
    spec             text        NOT NULL,           -- the schedule, as the last writer described it
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
