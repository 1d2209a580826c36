-- durable:compatible-from 2
-- Schema version 13 on SQLite changes nothing: on PostgreSQL it splits the live partition into
-- lanes that can be truncated while an old snapshot keeps vacuums from removing the dead row
-- versions finished tasks leave behind. SQLite rewrites rows in place and has no dead
-- versions. The version is kept the same on both backends so a release has one schema version.
SELECT 1;
