-- durable:compatible-from 13
-- Lanes: the live partition split so that what finished tasks leave behind can be truncated
-- rather than vacuumed.
--
-- Every task leaves dead row versions in the live partition (its claim, its move to the
-- history). A vacuum removes them, unless an old snapshot holds the vacuum horizon back (a
-- transaction left open, a long `REPEATABLE READ` report): then none can be removed, and a
-- single table grows by every task for as long as the snapshot lives, pages that stay
-- allocated after it ends. `TRUNCATE` does not depend on the horizon.
--
-- `durable_tasks_live` becomes a table partitioned on a new column, `lane`:
-- * lane 0, `durable_tasks_keyed`, is the former live partition: rows with a unique key (its
--   unique index is the one that enforces keys), rows scheduled more than a turn ahead, and
--   the few rows still there when their lane is truncated;
-- * lanes 1 and 2 take every other insert in turns of 10 seconds of the database's clock.
--   Their rows finish and leave, and a lane whose turn ended and whose rows are gone can be
--   truncated (what the store's maintenance does while vacuums remove nothing) before its
--   next turn.
--
-- Builds of schema 12 cannot run on this schema: their keyed inserts name the live partition
-- for `ON CONFLICT`, and a partitioned table has no index on the key alone.
ALTER TABLE durable_tasks ADD COLUMN IF NOT EXISTS lane smallint NOT NULL DEFAULT 0;
ALTER TABLE durable_tasks DETACH PARTITION durable_tasks_live;
ALTER TABLE durable_tasks_live RENAME TO durable_tasks_keyed;
ALTER INDEX durable_tasks_live_pkey RENAME TO durable_tasks_keyed_pkey;
ALTER INDEX durable_tasks_live_failed RENAME TO durable_tasks_keyed_failed;
ALTER INDEX durable_tasks_live_finished RENAME TO durable_tasks_keyed_finished;
ALTER INDEX durable_tasks_live_held RENAME TO durable_tasks_keyed_held;
ALTER INDEX durable_tasks_live_ready RENAME TO durable_tasks_keyed_ready;
ALTER INDEX durable_tasks_live_ready_queue RENAME TO durable_tasks_keyed_ready_queue;
-- Checked constraints let both attachments below skip their scan of the rows.
ALTER TABLE durable_tasks_keyed ADD CONSTRAINT durable_tasks_keyed_lane CHECK (lane = 0);
ALTER TABLE durable_tasks_keyed ADD CONSTRAINT durable_tasks_keyed_live CHECK (NOT archived);

CREATE TABLE durable_tasks_live (LIKE durable_tasks INCLUDING DEFAULTS) PARTITION BY LIST (lane);
ALTER TABLE durable_tasks_live ATTACH PARTITION durable_tasks_keyed FOR VALUES IN (0);
ALTER TABLE durable_tasks ATTACH PARTITION durable_tasks_live FOR VALUES IN (false);
ALTER TABLE durable_tasks_keyed DROP CONSTRAINT durable_tasks_keyed_live;

-- A lane holds work in progress only: a finished row moves to the history in the statement
-- that finishes it (a lane holds no unique key, so none stays), and no key is enforced here.
CREATE TABLE durable_tasks_lane_1 PARTITION OF durable_tasks_live FOR VALUES IN (1)
    WITH (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE durable_tasks_lane_1 ADD PRIMARY KEY (id);
ALTER TABLE durable_tasks_lane_1 ADD CONSTRAINT durable_tasks_lane_1_work
    CHECK (state IN ('pending', 'processing') AND unique_key IS NULL AND attempts >= 0
           AND max_attempts >= 1);
CREATE INDEX durable_tasks_lane_1_ready
    ON durable_tasks_lane_1 ((-priority::int4), run_at, id) WHERE state = 'pending';
CREATE INDEX durable_tasks_lane_1_ready_queue
    ON durable_tasks_lane_1 (queue, (-priority::int4), run_at, id) WHERE state = 'pending';
CREATE INDEX durable_tasks_lane_1_held
    ON durable_tasks_lane_1 (started_at) WHERE state = 'processing';

CREATE TABLE durable_tasks_lane_2 PARTITION OF durable_tasks_live FOR VALUES IN (2)
    WITH (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE durable_tasks_lane_2 ADD PRIMARY KEY (id);
ALTER TABLE durable_tasks_lane_2 ADD CONSTRAINT durable_tasks_lane_2_work
    CHECK (state IN ('pending', 'processing') AND unique_key IS NULL AND attempts >= 0
           AND max_attempts >= 1);
CREATE INDEX durable_tasks_lane_2_ready
    ON durable_tasks_lane_2 ((-priority::int4), run_at, id) WHERE state = 'pending';
CREATE INDEX durable_tasks_lane_2_ready_queue
    ON durable_tasks_lane_2 (queue, (-priority::int4), run_at, id) WHERE state = 'pending';
CREATE INDEX durable_tasks_lane_2_held
    ON durable_tasks_lane_2 (started_at) WHERE state = 'processing';
