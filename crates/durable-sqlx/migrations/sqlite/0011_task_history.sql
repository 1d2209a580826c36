-- durable:compatible-from 2
-- Schema version 11 on SQLite changes nothing: on PostgreSQL it splits `durable_tasks` into a
-- live partition and a history partition, so that claims skip the dead row versions finished
-- tasks leave behind. SQLite rewrites rows in place and has no dead versions to skip. The
-- version is kept the same on both backends so a release has one schema version.
SELECT 1;
