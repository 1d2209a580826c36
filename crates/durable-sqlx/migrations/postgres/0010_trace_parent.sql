-- durable:compatible-from 2
-- The W3C `traceparent` of the context that enqueued the task (a request, usually), so the
-- attempts that run it, on any instance, can be joined to that trace. NULL: none was known.
-- A nullable column without default: no rewrite of the table, and instances of earlier
-- versions keep inserting rows (without it).
ALTER TABLE durable_tasks ADD COLUMN trace_parent text;
