-- Version 2: the `tag` of a `work` task. Nullable, so version 1, which does not name the
-- column, keeps inserting rows when it runs against this schema (a rollback).
ALTER TABLE completions ADD COLUMN tag TEXT;
