//! SQLite statements. Lists (rows, fences, queue names) are bound as one JSON array and
//! read with `json_each`, so a batch is one statement with no bind-parameter limit.

/// `errors` with one more failed attempt appended: the attempt, the time `$now` (Unix ms),
/// the attempt's worker and the message (SQL tokens), keeping the most recent 20
/// (`MAX_ERRORS`). SET expressions read the row as it was, so the attempt and the worker are
/// those of the attempt that failed.
macro_rules! push_error {
    ($now:literal, $($message:tt)+) => {
        concat!(
            "json_insert(CASE WHEN json_array_length(errors) >= 20 THEN json_remove(errors, '$[0]')
        ELSE errors END, '$[#]', json_object('attempt', attempts, 'at', ",
            $now,
            ", 'worker', lease_owner, 'message', ",
            $($message)+,
            "))"
        )
    };
}

/// The insert's target and columns, in the order every insert gives their values.
macro_rules! insert_into {
    () => {
        "INSERT INTO durable_tasks (id, name, queue, payload, state, priority, attempts,
    max_attempts, run_at, lease_owner, lease_expires_at, started_at, created_at, updated_at,
    trace_parent)"
    };
}

/// The insert from a JSON array of rows, with its parameter numbers: rows JSON, now.
macro_rules! insert {
    ($rows:literal, $now:literal) => {
        concat!(
            insert_into!(),
            "
SELECT j.value ->> '$.id', j.value ->> '$.name', j.value ->> '$.queue', j.value ->> '$.payload',
    j.value ->> '$.state', j.value ->> '$.priority', j.value ->> '$.attempts',
    j.value ->> '$.max_attempts', j.value ->> '$.run_at', j.value ->> '$.lease_owner',
    j.value ->> '$.lease_expires_at', j.value ->> '$.started_at', ",
            $now,
            ", ",
            $now,
            ", j.value ->> '$.trace_parent'
FROM json_each(",
            $rows,
            ") AS j"
        )
    };
}

/// ?1 rows JSON, ?2 now.
pub(super) const INSERT: &str = insert!("?1", "?2");

/// What a claim returns: the row's fields, and its `rowid` to fail a row whose fields cannot
/// be read (a corrupt id cannot name it).
macro_rules! claimed {
    () => {
        "RETURNING id, name, queue, payload, attempts, max_attempts, run_at, trace_parent,
    rowid AS claimed_rowid"
    };
}

/// The claim's filter on task names: only the types the claiming runtime registered, bound
/// as a JSON array. Checked on each row the claim index yields (the index has no name): rows
/// of other types stay `pending` for an instance that knows them.
macro_rules! known_names {
    ($names:literal) => {
        concat!(
            "
      AND name IN (SELECT value FROM json_each(",
            $names,
            "))"
        )
    };
}

/// The claim, with its parameters (numbered, or anonymous `?` bound in the order they
/// appear): owner, lease expiry, now (three times: started, updated, due), an extra filter on
/// `queue` (SQL text, may be empty), task names (a JSON array), limit. Due `pending` rows of
/// the named types, in claim order, become `processing` for the owner.
macro_rules! claim {
    ($owner:literal, $expiry:literal, $now:literal, $queues:literal, $names:literal, $limit:literal) => {
        concat!(
            "UPDATE durable_tasks
SET state = 'processing', attempts = attempts + 1, lease_owner = ",
            $owner,
            ", lease_expires_at = ",
            $expiry,
            ",
    started_at = ",
            $now,
            ", attempt_started_at = NULL, updated_at = ",
            $now,
            "
WHERE id IN (
    SELECT id FROM durable_tasks
    WHERE state = 'pending' AND run_at <= ",
            $now,
            $queues,
            known_names!($names),
            "
    ORDER BY priority DESC, run_at, id
    LIMIT ",
            $limit,
            ")
",
            claimed!()
        )
    };
}

/// ?1 owner, ?2 lease expiry, ?3 now, ?4 queue, ?5 limit, ?6 JSON array of task names.
pub(super) const CLAIM_QUEUE: &str = claim!("?1", "?2", "?3", " AND queue = ?4", "?6", "?5");

/// ?1 owner, ?2 lease expiry, ?3 now, ?4 JSON array of excluded queues, ?5 limit, ?6 JSON
/// array of task names.
pub(super) const CLAIM_OTHERS: &str = claim!(
    "?1",
    "?2",
    "?3",
    "
      AND queue NOT IN (SELECT value FROM json_each(?4))",
    "?6",
    "?5"
);

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

/// The completion's update, up to its fence condition, with its `now` parameter.
macro_rules! complete_set {
    ($now:literal) => {
        concat!(
            "UPDATE durable_tasks SET state = 'completed', lease_expires_at = NULL,
    finished_at = ",
            $now,
            ", updated_at = ",
            $now,
            "
WHERE "
        )
    };
}

/// [`COMPLETE`] inside [`CYCLE`] (same parameter numbers).
macro_rules! cycle_complete {
    () => {
        concat!(complete_set!("?2"), fenced!(), " RETURNING id")
    };
}

/// The any-queue claim inside [`CYCLE`].
macro_rules! cycle_claim {
    () => {
        claim!("?4", "?5", "?2", "", "?7", "?6")
    };
}

/// ?1 fences, ?2 new expiry, ?3 now.
pub(super) const HEARTBEAT: &str = concat!(
    "UPDATE durable_tasks SET lease_expires_at = ?2, updated_at = ?3 WHERE ",
    fenced!(),
    " RETURNING id, lease_owner, attempts"
);

/// ?1 fences, ?2 now.
pub(super) const COMPLETE: &str = cycle_complete!();

/// A whole writer cycle as one multi-statement query, so it costs one round trip to the
/// connection's worker thread instead of five (`BEGIN`, three statements, `COMMIT`).
/// sqlx binds `?NNN` by number across the statements: ?1 fences, ?2 now, ?3 rows,
/// ?4 owner, ?5 lease expiry, ?6 limit ('[]' excludes no queue), ?7 task names. Indexed by
/// `complete | insert << 1 | claim << 2`; completion rows come back with one column, claimed
/// rows with seven.
pub(super) const CYCLE: [&str; 8] = [
    "BEGIN IMMEDIATE; COMMIT;",
    concat!("BEGIN IMMEDIATE; ", cycle_complete!(), "; COMMIT;"),
    concat!("BEGIN IMMEDIATE; ", insert!("?3", "?2"), "; COMMIT;"),
    concat!(
        "BEGIN IMMEDIATE; ",
        cycle_complete!(),
        "; ",
        insert!("?3", "?2"),
        "; COMMIT;"
    ),
    concat!("BEGIN IMMEDIATE; ", cycle_claim!(), "; COMMIT;"),
    concat!(
        "BEGIN IMMEDIATE; ",
        cycle_complete!(),
        "; ",
        cycle_claim!(),
        "; COMMIT;"
    ),
    concat!(
        "BEGIN IMMEDIATE; ",
        insert!("?3", "?2"),
        "; ",
        cycle_claim!(),
        "; COMMIT;"
    ),
    concat!(
        "BEGIN IMMEDIATE; ",
        cycle_complete!(),
        "; ",
        insert!("?3", "?2"),
        "; ",
        cycle_claim!(),
        "; COMMIT;"
    ),
];

/// ?1 fence (one-element array), ?2 now, ?3 run_at, ?4 error. A row whose cancellation was
/// requested is `cancelled` instead (so are a failure's and a requeue's).
pub(super) const RETRY: &str = concat!(
    "UPDATE durable_tasks
     SET state = CASE WHEN cancel_requested_at IS NULL THEN 'pending' ELSE 'cancelled' END,
     finished_at = CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE ?2 END,
     run_at = ?3, last_error = ?4, errors = ",
    push_error!("?2", "?4"),
    ", lease_owner = NULL, lease_expires_at = NULL, updated_at = ?2
     WHERE ",
    fenced!()
);

/// ?1 fence (one-element array), ?2 now, ?3 error.
pub(super) const FAIL: &str = concat!(
    "UPDATE durable_tasks
     SET state = CASE WHEN cancel_requested_at IS NULL THEN 'failed' ELSE 'cancelled' END,
     last_error = ?3, errors = ",
    push_error!("?2", "?3"),
    ", lease_expires_at = NULL,
     finished_at = ?2, updated_at = ?2 WHERE ",
    fenced!()
);

/// The message of a shutdown requeue past its limit (`?3`): counted, or dead.
macro_rules! requeue_error {
    () => {
        concat!(
            "CASE WHEN attempts >= max_attempts THEN ",
            requeue_dead!("", "?3"),
            " ELSE ",
            requeue_counted!("", "?3"),
            " END"
        )
    };
}

/// ?1 fences, ?2 now, ?3 requeues that do not count (`REQUEUE_LIMIT`). Within the limit the
/// interrupted attempt is not counted; past it, it is, and on the last attempt the row is
/// dead. (SET expressions read the row as it was before the update.)
pub(super) const REQUEUE: &str = concat!(
    "UPDATE durable_tasks SET
    state = CASE WHEN cancel_requested_at IS NOT NULL THEN 'cancelled'
        WHEN requeues >= ?3 AND attempts >= max_attempts THEN 'failed' ELSE 'pending' END,
    attempts = CASE WHEN requeues >= ?3 THEN attempts ELSE attempts - 1 END,
    run_at = CASE WHEN requeues >= ?3 AND attempts >= max_attempts THEN run_at ELSE ?2 END,
    finished_at = CASE WHEN cancel_requested_at IS NOT NULL
        OR requeues >= ?3 AND attempts >= max_attempts THEN ?2 END,
    lease_owner = CASE WHEN requeues >= ?3 AND attempts >= max_attempts THEN lease_owner END,
    last_error = CASE WHEN requeues < ?3 THEN last_error ELSE ",
    requeue_error!(),
    " END,
    errors = CASE WHEN requeues < ?3 THEN errors ELSE ",
    push_error!("?2", requeue_error!()),
    " END,
    requeues = requeues + 1, lease_expires_at = NULL, updated_at = ?2
WHERE ",
    fenced!(),
    " RETURNING id"
);

/// ?1 fence (one-element array), ?2 now.
pub(super) const MARK_STARTED: &str = concat!(
    "UPDATE durable_tasks SET attempt_started_at = ?2, updated_at = ?2 WHERE ",
    fenced!()
);

/// ?1 rowid, ?2 owner, ?3 now, ?4 error. A claimed row that cannot be read: dead, without
/// running (named by rowid, as its id may be what is unreadable).
pub(super) const FAIL_UNREADABLE: &str = concat!(
    "
UPDATE durable_tasks
SET state = 'failed', last_error = ?4, errors = ",
    push_error!("?3", "?4"),
    ", lease_expires_at = NULL,
    finished_at = ?3, updated_at = ?3
WHERE rowid = ?1 AND lease_owner = ?2 AND state = 'processing'"
);

/// ?1 now. Expired on a last attempt that had started: dead.
pub(super) const RESCUE_FAIL: &str = concat!(
    "
UPDATE durable_tasks
SET state = 'failed', finished_at = ?1, updated_at = ?1, lease_expires_at = NULL,
    last_error = ",
    lease_expired_last!(""),
    ", errors = ",
    push_error!("?1", lease_expired_last!("")),
    "
WHERE state = 'processing' AND lease_expires_at < ?1 AND attempts >= max_attempts
  AND attempt_started_at IS NOT NULL"
);

/// What [`RESCUE_REQUEUE`] records of the attempt whose lease expired.
macro_rules! rescue_error {
    () => {
        concat!(
            "CASE WHEN attempts >= max_attempts THEN ",
            lease_expired_unstarted!(""),
            " ELSE ",
            lease_expired!(""),
            " END"
        )
    };
}

/// ?1 now. Every other expired row: back to pending, due now; a last attempt (left after
/// [`RESCUE_FAIL`]: it never started) is not counted.
pub(super) const RESCUE_REQUEUE: &str = concat!(
    "
UPDATE durable_tasks
SET state = 'pending', run_at = ?1, updated_at = ?1, lease_owner = NULL, lease_expires_at = NULL,
    attempts = CASE WHEN attempts >= max_attempts THEN attempts - 1 ELSE attempts END,
    last_error = ",
    rescue_error!(),
    ", errors = ",
    push_error!("?1", rescue_error!()),
    "
WHERE state = 'processing' AND lease_expires_at < ?1"
);

/// ?1 cutoff, ?2 limit.
pub(super) const PRUNE: &str = "
DELETE FROM durable_tasks WHERE id IN (
    SELECT id FROM durable_tasks
    WHERE state IN ('completed', 'cancelled') AND finished_at < ?1
    LIMIT ?2)";

pub(super) const GET: &str = "SELECT * FROM durable_tasks WHERE id = ?1";

pub(super) const COUNTS: &str = "SELECT state, count(*) AS n FROM durable_tasks GROUP BY state";

/// ?1 now. Due pending rows, counted on the partial claim index (which holds `run_at`).
pub(super) const BACKLOG: &str =
    "SELECT count(*) FROM durable_tasks WHERE state = 'pending' AND run_at <= ?1";

/// ?1 due before (now minus the wait), ?2 JSON array of known task names, ?3 rows to look
/// at. The first rows in claim order (the claim index, bounded), then the names among them
/// that are not known, counted. Names come back as bytes: one written behind the store's
/// back may not be UTF-8 text, and must not fail the report.
pub(super) const UNCLAIMABLE: &str = "
SELECT CAST(name AS BLOB) AS name, count(*) AS n FROM (
    SELECT name FROM durable_tasks
    WHERE state = 'pending' AND run_at <= ?1
    ORDER BY priority DESC, run_at, id
    LIMIT ?3)
WHERE name NOT IN (SELECT value FROM json_each(?2))
GROUP BY name
ORDER BY n DESC, name";

/// The any-queue claim of [`cycle_script`], with anonymous parameters: owner, lease expiry,
/// now, now, now, task names (a JSON array), limit.
pub(super) const BOUND_CLAIM: &str = claim!("?", "?", "?", "", "?", "?");

/// The claim of [`CYCLE`] on its own, for checking its plan.
#[cfg(test)]
pub(super) const CYCLE_CLAIM: &str = cycle_claim!();

/// The fences of a cycle that applied, when `changes()` says not all of them did (a stale
/// fence: rare). ?1 fences as JSON.
pub(super) const APPLIED: &str = "
SELECT id FROM durable_tasks
WHERE state = 'completed'
  AND id IN (SELECT f.value ->> '$.id' FROM json_each(?1) AS f)
  AND (id, lease_owner, attempts) IN (
      SELECT f.value ->> '$.id', f.value ->> '$.owner', f.value ->> '$.attempt'
      FROM json_each(?1) AS f)";
