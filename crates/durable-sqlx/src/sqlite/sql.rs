//! SQLite statements. Lists (rows, fences, queue names) are bound as one JSON array and
//! read with `json_each`, so a batch is one statement with no bind-parameter limit.

/// ?1 rows JSON, ?2 now.
pub(super) const INSERT: &str = "
INSERT INTO durable_tasks (id, name, queue, payload, state, priority, attempts, max_attempts,
    run_at, lease_owner, lease_expires_at, started_at, created_at, updated_at)
SELECT j.value ->> '$.id', j.value ->> '$.name', j.value ->> '$.queue', j.value ->> '$.payload',
    j.value ->> '$.state', j.value ->> '$.priority', j.value ->> '$.attempts',
    j.value ->> '$.max_attempts', j.value ->> '$.run_at', j.value ->> '$.lease_owner',
    j.value ->> '$.lease_expires_at', j.value ->> '$.started_at', ?2, ?2
FROM json_each(?1) AS j";

/// ?1 owner, ?2 lease expiry, ?3 now, ?4 queue, ?5 limit.
pub(super) const CLAIM_QUEUE: &str = "
UPDATE durable_tasks
SET state = 'processing', attempts = attempts + 1, lease_owner = ?1, lease_expires_at = ?2,
    started_at = ?3, updated_at = ?3
WHERE id IN (
    SELECT id FROM durable_tasks
    WHERE state = 'pending' AND queue = ?4 AND run_at <= ?3
    ORDER BY priority DESC, run_at, id
    LIMIT ?5)
RETURNING id, name, queue, payload, attempts, max_attempts";

/// ?1 owner, ?2 lease expiry, ?3 now, ?4 JSON array of excluded queues, ?5 limit.
pub(super) const CLAIM_OTHERS: &str = "
UPDATE durable_tasks
SET state = 'processing', attempts = attempts + 1, lease_owner = ?1, lease_expires_at = ?2,
    started_at = ?3, updated_at = ?3
WHERE id IN (
    SELECT id FROM durable_tasks
    WHERE state = 'pending' AND run_at <= ?3
      AND queue NOT IN (SELECT value FROM json_each(?4))
    ORDER BY priority DESC, run_at, id
    LIMIT ?5)
RETURNING id, name, queue, payload, attempts, max_attempts";

/// The fence condition: the row is `processing` and held by one of the fences in ?1. The
/// fence ids are looked up by primary key first, so a batch costs O(fences), not
/// O(processing rows × fences); then owner and attempt must match as a row value.
macro_rules! fenced {
    () => {
        "state = 'processing'
         AND id IN (SELECT f.value ->> '$.id' FROM json_each(?1) AS f)
         AND (id, lease_owner, attempts) IN (
             SELECT f.value ->> '$.id', f.value ->> '$.owner', f.value ->> '$.attempt'
             FROM json_each(?1) AS f)"
    };
}

/// ?1 fences, ?2 new expiry, ?3 now.
pub(super) const HEARTBEAT: &str = concat!(
    "UPDATE durable_tasks SET lease_expires_at = ?2, updated_at = ?3 WHERE ",
    fenced!(),
    " RETURNING id, lease_owner, attempts"
);

/// ?1 fences, ?2 now.
pub(super) const COMPLETE: &str = concat!(
    "UPDATE durable_tasks SET state = 'completed', lease_expires_at = NULL, finished_at = ?2,
     updated_at = ?2 WHERE ",
    fenced!(),
    " RETURNING id"
);

/// ?1 fence (one-element array), ?2 now, ?3 run_at, ?4 error.
pub(super) const RETRY: &str = concat!(
    "UPDATE durable_tasks SET state = 'pending', run_at = ?3, last_error = ?4, lease_owner = NULL,
     lease_expires_at = NULL, updated_at = ?2 WHERE ",
    fenced!()
);

/// ?1 fence (one-element array), ?2 now, ?3 error.
pub(super) const FAIL: &str = concat!(
    "UPDATE durable_tasks SET state = 'failed', last_error = ?3, lease_expires_at = NULL,
     finished_at = ?2, updated_at = ?2 WHERE ",
    fenced!()
);

/// ?1 fences, ?2 now. The interrupted attempt is not counted.
pub(super) const REQUEUE: &str = concat!(
    "UPDATE durable_tasks SET state = 'pending', attempts = attempts - 1, run_at = ?2,
     lease_owner = NULL, lease_expires_at = NULL, updated_at = ?2 WHERE ",
    fenced!()
);

/// ?1 now. Expired on the last attempt: dead.
pub(super) const RESCUE_FAIL: &str = "
UPDATE durable_tasks
SET state = 'failed', finished_at = ?1, updated_at = ?1, lease_expires_at = NULL,
    last_error = 'lease expired during attempt ' || attempts || ' of ' || max_attempts
        || ' (worker stopped heart-beating); no attempts left'
        || coalesce('; previous error: ' || last_error, '')
WHERE state = 'processing' AND lease_expires_at < ?1 AND attempts >= max_attempts";

/// ?1 now. Expired with attempts left: back to pending, due now.
pub(super) const RESCUE_REQUEUE: &str = "
UPDATE durable_tasks
SET state = 'pending', run_at = ?1, updated_at = ?1, lease_owner = NULL, lease_expires_at = NULL,
    last_error = 'lease expired during attempt ' || attempts
        || ' (worker stopped heart-beating)'
WHERE state = 'processing' AND lease_expires_at < ?1";

/// ?1 id, ?2 now.
pub(super) const CANCEL: &str = "
UPDATE durable_tasks SET state = 'cancelled', finished_at = ?2, updated_at = ?2
WHERE id = ?1 AND state = 'pending'";

/// ?1 cutoff, ?2 limit.
pub(super) const PRUNE: &str = "
DELETE FROM durable_tasks WHERE id IN (
    SELECT id FROM durable_tasks
    WHERE state IN ('completed', 'cancelled') AND finished_at < ?1
    LIMIT ?2)";

pub(super) const GET: &str = "SELECT * FROM durable_tasks WHERE id = ?1";

pub(super) const COUNTS: &str = "SELECT state, count(*) AS n FROM durable_tasks GROUP BY state";

/// Uses the partial claim index.
pub(super) const BACKLOG: &str = "SELECT count(*) FROM durable_tasks WHERE state = 'pending'";
