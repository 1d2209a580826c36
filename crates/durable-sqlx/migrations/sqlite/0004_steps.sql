-- durable:compatible-from 2
-- The results of tasks' finished steps (TaskContext::step): one row per task and step name,
-- written fenced by the attempt that ran the step, deleted with its task. A new table and a
-- trigger: builds of schema 2 neither read nor mind them.
CREATE TABLE IF NOT EXISTS durable_steps (
    task_id    TEXT    NOT NULL,   -- durable_tasks.id
    name       TEXT    NOT NULL,   -- unique within the task
    output     TEXT    NOT NULL,   -- JSON
    attempt    INTEGER NOT NULL,   -- the attempt that ran the step
    created_at INTEGER NOT NULL,   -- Unix ms
    PRIMARY KEY (task_id, name)
) WITHOUT ROWID;

-- Steps go with their task (pruning, or any other delete), whatever the connection's
-- foreign_keys setting.
CREATE TRIGGER IF NOT EXISTS durable_steps_deleted_with_task
AFTER DELETE ON durable_tasks
BEGIN
    DELETE FROM durable_steps WHERE task_id = old.id;
END;
