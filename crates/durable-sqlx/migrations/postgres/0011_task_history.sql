-- durable:compatible-from 11
-- Finished tasks leave the table that claims scan. `durable_tasks` becomes a table
-- partitioned on a new column, `archived`: the live partition `durable_tasks_live` (the old
-- table, attached as it is: no rewrite) holds `pending` and `processing` rows, and finished
-- rows that still hold a unique key; the partition `durable_tasks_history` holds the other
-- finished rows. A statement that finishes a task sets `archived`, and PostgreSQL moves the
-- row in the same statement. Reads of `durable_tasks` see every task, as before.
--
-- Not compatible with earlier builds: their unique-key inserts name the old table's unique
-- index (`ON CONFLICT (unique_key)`), which a partitioned table cannot hold, and the rows
-- they finish would stay in the live partition.
ALTER TABLE durable_tasks RENAME TO durable_tasks_live;
-- The live partition's indexes are named for it (the table has none of its own: each
-- partition has those its reads need).
ALTER INDEX durable_tasks_pkey RENAME TO durable_tasks_live_pkey;
ALTER INDEX durable_tasks_finished RENAME TO durable_tasks_live_finished;
ALTER INDEX durable_tasks_failed RENAME TO durable_tasks_live_failed;
ALTER TABLE durable_tasks_live ADD COLUMN archived boolean NOT NULL DEFAULT false;
-- Lets ATTACH PARTITION skip its scan (the column was just added with a constant default).
ALTER TABLE durable_tasks_live ADD CONSTRAINT durable_tasks_live_not_archived
    CHECK (archived = false);

CREATE TABLE durable_tasks (LIKE durable_tasks_live INCLUDING DEFAULTS)
    PARTITION BY LIST (archived);
ALTER TABLE durable_tasks ATTACH PARTITION durable_tasks_live FOR VALUES IN (false);
ALTER TABLE durable_tasks_live DROP CONSTRAINT durable_tasks_live_not_archived;

-- Rows arrive once and are never updated again but by an operator's retry (which moves them
-- back): pages are packed, and vacuum is for the visibility map and pruning's deletes.
CREATE TABLE durable_tasks_history PARTITION OF durable_tasks FOR VALUES IN (true)
    WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.1);
ALTER TABLE durable_tasks_history ADD PRIMARY KEY (id);
ALTER TABLE durable_tasks_history ADD CONSTRAINT durable_tasks_history_state_check
    CHECK (state IN ('pending', 'processing', 'completed', 'failed', 'cancelled'));

-- A task's steps are kept with its history: moving the row must not cascade to them. Pruning
-- and deleting a task delete its steps.
ALTER TABLE durable_steps DROP CONSTRAINT IF EXISTS durable_steps_task_id_fkey;

-- The claim order, ascending in every column (priority negated), so a claim can resume
-- from a position with one row comparison instead of walking from the head of the index.
-- Claims read the live partition only: its indexes are its own.
DROP INDEX IF EXISTS durable_tasks_claim;
DROP INDEX IF EXISTS durable_tasks_claim_queue;
CREATE INDEX durable_tasks_live_ready
    ON durable_tasks_live ((-priority::int4), run_at, id) WHERE state = 'pending';
CREATE INDEX durable_tasks_live_ready_queue
    ON durable_tasks_live (queue, (-priority::int4), run_at, id) WHERE state = 'pending';

-- The lease sweep's index, on a column heartbeats do not change: a heartbeat (and the mark
-- of a last attempt's start) then rewrites no index and stays a HOT update. Not on the
-- lease owner: statements that look a fence up (id, owner, attempt) must probe the primary
-- key, not walk an index whose entries for that owner include every task it finished.
DROP INDEX IF EXISTS durable_tasks_lease;
CREATE INDEX durable_tasks_live_held
    ON durable_tasks_live (started_at) WHERE state = 'processing';

-- The admin's lists of finished tasks, on both partitions.
CREATE INDEX durable_tasks_history_finished
    ON durable_tasks_history (finished_at) WHERE state IN ('completed', 'cancelled');
CREATE INDEX durable_tasks_history_failed
    ON durable_tasks_history (finished_at, id) WHERE state = 'failed';

-- Finished rows already in the table move to the history partition, but those holding a
-- unique key in their state: once, here (an update through the parent moves each row).
UPDATE durable_tasks SET archived = true
WHERE state IN ('completed', 'failed', 'cancelled')
  AND (unique_key IS NULL
       OR (CASE state WHEN 'completed' THEN 4 WHEN 'failed' THEN 8 ELSE 16 END
           & unique_states) = 0);
