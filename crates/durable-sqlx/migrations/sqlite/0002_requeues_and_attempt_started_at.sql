-- Shutdown requeues of the task so far: the first ones do not count the interrupted attempt,
-- later ones do (Store::requeue).
ALTER TABLE durable_tasks ADD COLUMN requeues INTEGER NOT NULL DEFAULT 0;
-- When the current attempt started running the task's code (Unix ms). Set only for a task's
-- last attempt (Store::mark_started), cleared by every claim: a last attempt whose lease
-- expired before it started is handed back without counting.
ALTER TABLE durable_tasks ADD COLUMN attempt_started_at INTEGER;
-- Attempts in flight across the upgrade may have started: keep their lease expiry fatal on a
-- last attempt, as before.
UPDATE durable_tasks SET attempt_started_at = coalesce(started_at, updated_at)
WHERE state = 'processing';
