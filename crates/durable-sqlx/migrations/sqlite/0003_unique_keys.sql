-- durable:compatible-from 2
-- Unique tasks (UniqueKey): the row's key, namespaced by task type (and prefixed with its
-- period's bucket), and the states in which it holds the key as a bitmask (pending 1,
-- processing 2, completed 4, failed 8, cancelled 16). Both NULL for ordinary tasks, which
-- builds of schema 2 write and never read.
ALTER TABLE durable_tasks ADD COLUMN unique_key TEXT;
ALTER TABLE durable_tasks ADD COLUMN unique_states INTEGER;
-- At most one row per key among the rows whose current state is in their own mask: the
-- index decides, so concurrent inserts cannot both win. Only keyed rows are in it. Inserts
-- name the same expression verbatim as their ON CONFLICT target.
CREATE UNIQUE INDEX durable_tasks_unique ON durable_tasks (unique_key)
    WHERE unique_key IS NOT NULL
      AND (CASE state WHEN 'pending' THEN 1 WHEN 'processing' THEN 2 WHEN 'completed' THEN 4
                      WHEN 'failed' THEN 8 WHEN 'cancelled' THEN 16 ELSE 0 END
           & unique_states) <> 0;
