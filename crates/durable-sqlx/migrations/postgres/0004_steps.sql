-- durable:compatible-from 2
-- The results of tasks' finished steps (TaskContext::step): one row per task and step name,
-- written fenced by the attempt that ran the step, deleted with its task. A new table: builds
-- of schema 2 neither read nor mind it.
CREATE TABLE IF NOT EXISTS durable_steps (
    task_id    uuid        NOT NULL REFERENCES durable_tasks (id) ON DELETE CASCADE,
    name       text        NOT NULL,  -- unique within the task
    output     jsonb       NOT NULL,  -- the step's result
    attempt    integer     NOT NULL,  -- the attempt that ran the step
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, name)
);
