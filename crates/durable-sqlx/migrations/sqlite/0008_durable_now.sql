-- durable:compatible-from 2
-- Schema version 8 on PostgreSQL adds `durable_now()`, the function its statements take the
-- time from. SQLite takes the time from the application (the store's clock) and needs no
-- change; this migration keeps the schema versions of both backends in step.
SELECT 1;
