-- durable:compatible-from 2
-- Cancelled tasks in the history, oldest cancellation first: what the counts per state read
-- (the runtime's state gauges, every `stats_interval` on every instance, and the admin
-- overview). Cancelled rows were counted on the pruning index, which holds the completed rows
-- too, so counting a few cancelled rows read every completed one kept for the retention.
-- Partial, so it holds only cancelled rows and stays small. An index only: builds of every
-- schema version run as before.
--
-- Built in the migration's transaction, as migration 9's index of failed rows was: the build
-- reads the history once, and tasks that finish meanwhile wait for it to move into the
-- history. (`CREATE INDEX CONCURRENTLY` would not hold them, but it waits for every older
-- transaction of the database, and another instance waiting for the migration lock is one.)
CREATE INDEX IF NOT EXISTS durable_tasks_history_cancelled
    ON durable_tasks_history (finished_at, id) WHERE state = 'cancelled';
