-- durable:compatible-from 2
-- Cancelled tasks, oldest cancellation first: what the counts per state read (the runtime's
-- state gauges, every `stats_interval`, and the admin overview). Cancelled rows were counted
-- on the pruning index, which holds the completed rows too, so counting a few cancelled rows
-- read every completed one kept for the retention. Partial, so it holds only cancelled rows
-- and stays small. An index only: builds of every schema version run as before.
CREATE INDEX IF NOT EXISTS durable_tasks_cancelled
    ON durable_tasks (finished_at, id) WHERE state = 'cancelled';
