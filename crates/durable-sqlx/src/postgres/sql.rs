//! PostgreSQL statements. Lists (rows, fences, queue names) are bound as typed arrays and
//! read with `unnest`, so a batch is one statement with a fixed number of parameters.
//!
//! Every time comes from the database's clock through `durable_now()` (migration 8: `now()`,
//! the start of the statement's transaction; inlined by the planner, so it costs nothing and
//! the claim indexes still apply), so instances whose clocks disagree still agree on leases.
//! A test clock redefines that function in the store's schema to move the store's time. Durations are
//! bound as whole milliseconds (`int8`).
//!
//! Names are unqualified: they resolve through the connection's `search_path`.

/// The `NOTIFY` channel: one per schema, so stores on different schemas of one database do
/// not wake each other. Computed by the server from the session's `search_path`, so the
/// store's own inserts and the caller's transactions (`enqueue_in`) agree on it.
macro_rules! channel {
    () => {
        "left('durable_tasks.' || current_schema(), 63)"
    };
}

/// A row in claim order and a claim position ($p the negated priority, $r the `run_at`, $i
/// the id, as parameters): compared with a row comparison the claim indexes apply.
macro_rules! claim_order {
    () => {
        "((-priority::int4), run_at, id)"
    };
    ($p:literal, $r:literal, $i:literal) => {
        concat!("(", $p, "::int4, ", $r, "::timestamptz, ", $i, "::uuid)")
    };
}

/// `errors` with one more failed attempt appended: the attempt, the store's time (Unix ms),
/// the attempt's worker and the message (SQL tokens, after the column prefix `$p`), keeping
/// the most recent 20 (`MAX_ERRORS`). SET expressions read the row as it was, so the attempt
/// and the worker are those of the attempt that failed.
macro_rules! push_error {
    ($p:literal, $($message:tt)+) => {
        concat!(
            "(CASE WHEN jsonb_array_length(",
            $p,
            "errors) >= 20 THEN ",
            $p,
            "errors - 0 ELSE ",
            $p,
            "errors END) || jsonb_build_array(jsonb_build_object('attempt', ",
            $p,
            "attempts, 'at', floor(extract(epoch FROM durable_now()) * 1000)::int8, 'worker', ",
            $p,
            "lease_owner, 'message', ",
            $($message)+,
            "))"
        )
    };
}

/// Whether a row entering the state `$state` (an SQL expression over the row as it was, its
/// columns prefixed `$p`) is archived — finished, and not holding its unique key in that
/// state — so that the statement moves it to `durable_tasks_history` (migration 11). A
/// finished row that still holds its key stays in the live partition, whose unique index
/// is the only one that enforces keys.
macro_rules! archived_as {
    ($p:literal, $($state:tt)+) => {
        concat!(
            "((",
            $($state)+,
            ") IN ('completed', 'failed', 'cancelled') AND (",
            $p,
            "unique_key IS NULL OR (CASE (",
            $($state)+,
            ") WHEN 'completed' THEN 4 WHEN 'failed' THEN 8 ELSE 16 END & ",
            $p,
            "unique_states) = 0))"
        )
    };
}

/// The lane that takes inserts now (migration 13): lanes 1 and 2 take turns of 10 seconds of
/// the store's time, so a lane's rows are done, and the lane can be truncated, during the
/// other's turn.
macro_rules! lane_now {
    () => {
        "(1 + (floor(extract(epoch FROM durable_now()))::int8 / 10) % 2)::int2"
    };
}

/// The lane of a row inserted due at `$run_at` (an SQL expression): lane 0 when that is more
/// than a turn ahead — it would keep its lane from being truncated until then — else the
/// lane that takes inserts now.
macro_rules! lane_for {
    ($($run_at:tt)+) => {
        concat!(
            "CASE WHEN ",
            $($run_at)+,
            " > durable_now() + interval '10 seconds' THEN 0::int2 ELSE ",
            lane_now!(),
            " END"
        )
    };
}

/// The listener's channel name, asked of the server once per connection.
pub(super) const CHANNEL: &str = concat!("SELECT ", channel!());

/// $1 ids, $2 names, $3 queues, $4 payloads (JSON text), $5 priorities, $6 max attempts,
/// $7 run_at (NULL: now), $8 lease owners (NULL: pending), $9 lease lengths in ms.
///
/// One statement: inserts every row, then sends one `NOTIFY` if any inserted row is pending
/// and due (rows inserted already claimed, or scheduled later, wake nobody). The notification
/// is delivered when the surrounding transaction commits, and only once per transaction.
pub(super) const INSERT: &str = concat!(
    "
WITH inserted AS (
    INSERT INTO durable_tasks_live (id, name, queue, payload, state, priority, attempts,
        max_attempts, run_at, lease_owner, lease_expires_at, started_at, created_at, updated_at,
        trace_parent, lane)
    SELECT r.id, r.name, r.queue, r.payload::jsonb,
        CASE WHEN r.owner IS NULL THEN 'pending' ELSE 'processing' END,
        r.priority,
        CASE WHEN r.owner IS NULL THEN 0 ELSE 1 END,
        r.max_attempts,
        coalesce(r.run_at, durable_now()),
        r.owner,
        CASE WHEN r.owner IS NOT NULL THEN durable_now() + r.lease_ms * interval '1 millisecond' END,
        CASE WHEN r.owner IS NOT NULL THEN durable_now() END,
        durable_now(), durable_now(), r.trace_parent, ",
    lane_for!("coalesce(r.run_at, durable_now())"),
    "
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int2[], $6::int4[],
                $7::timestamptz[], $8::uuid[], $9::int8[], $10::text[])
        AS r(id, name, queue, payload, priority, max_attempts, run_at, owner, lease_ms,
             trace_parent)
    RETURNING state, run_at
)
SELECT pg_notify(",
    channel!(),
    ", '')::text AS notified
FROM (SELECT 1 FROM inserted WHERE state = 'pending' AND run_at <= durable_now() LIMIT 1) AS due"
);

/// The fenced rows of a batch write: rows still `processing` under the (id, owner, attempt)
/// of one of the fences $1/$2/$3, locked in id order (two batch writes over overlapping rows
/// then wait for each other instead of deadlocking). The SET list comes last, as tokens, so
/// it can be built with `concat!`.
///
/// Each fence is looked up by its id, one primary-key probe per fence (a lateral subquery
/// over the fences in id order), its state checked once the row is locked, and the update
/// finds the locked rows by id only: `id = ANY` of their ids, a scan of the primary key with
/// no join for the planner to choose. Joined to the locked rows instead, the update was
/// planned, on the statistics of a healthy queue (a few rows left on pages that held
/// thousands), as a hash join over a sequential scan of the live partition, or a nested loop
/// with that scan as its inner side: under a held vacuum horizon, a read of every version of
/// every task finished since, per completion batch (or per fence). An array the planner
/// cannot see into counts as ten ids, so only a partition of a few dozen pages is read whole. No part states `state = 'processing'` to the planner
/// where the lease-sweep indexes (`durable_tasks_*_held`, partial on that state) could
/// serve it: a plan that walks that index — chosen while it looked small — walks, under a
/// held vacuum horizon, an entry for every task finished since, for every fence: seconds
/// per completion batch. The probe's `LIMIT 1` (an id matches one row) is what keeps it so:
/// the planner pushes the outer `state` test into a subquery without one, and then costs
/// a walk of that index against the probe.
macro_rules! fenced {
    ($returning:literal; $($set:tt)+) => {
        concat!(
            "
WITH held AS MATERIALIZED (
    SELECT t.id
    FROM (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int4[]) AS u(id, owner, attempt)
          ORDER BY id) AS f
    CROSS JOIN LATERAL (
        SELECT l.id, l.state FROM durable_tasks_live AS l
        WHERE l.id = f.id AND l.lease_owner = f.owner AND l.attempts = f.attempt
        LIMIT 1
        FOR UPDATE
    ) AS t
    WHERE t.state = 'processing'
)
UPDATE durable_tasks AS t SET ",
            $($set)+,
            "
WHERE t.id = ANY(ARRAY(SELECT id FROM held)) AND NOT t.archived
RETURNING ",
            $returning
        )
    };
}

/// $1-$3 fences, $4 lease ms.
pub(super) const HEARTBEAT: &str = fenced!(
    "t.id, t.lease_owner, t.attempts";
    "lease_expires_at = durable_now() + $4::int8 * interval '1 millisecond', updated_at = durable_now()"
);

/// $1-$3 fences. The row moves to the history partition (unless it holds its key).
pub(super) const COMPLETE: &str = fenced!(
    "t.id";
    "state = 'completed', archived = ",
    archived_as!("t.", "'completed'"),
    ", lease_expires_at = NULL, finished_at = durable_now(), updated_at = durable_now()"
);

/// Whether a requeue is past the limit ($4) and of the task's last attempt: it kills the row.
macro_rules! requeue_kills {
    () => {
        "t.requeues >= $4::int4 AND t.attempts >= t.max_attempts"
    };
}

/// The state a shutdown requeue leaves a row in.
macro_rules! requeue_state {
    () => {
        concat!(
            "CASE WHEN t.cancel_requested_at IS NOT NULL THEN 'cancelled' WHEN ",
            requeue_kills!(),
            " THEN 'failed' ELSE 'pending' END"
        )
    };
}

/// The message of a shutdown requeue past its limit (`$4`): counted, or dead.
macro_rules! requeue_error {
    () => {
        concat!(
            "CASE WHEN t.attempts >= t.max_attempts THEN ",
            requeue_dead!("t.", "$4::int4"),
            " ELSE ",
            requeue_counted!("t.", "$4::int4"),
            " END"
        )
    };
}

/// $1-$3 fences, $4 requeues that do not count (`REQUEUE_LIMIT`). Within the limit the
/// interrupted attempt is not counted; past it, it is, and on the last attempt the row is
/// dead (SET expressions read the row as it was). The rows handed back are due at once, and
/// one `NOTIFY` tells the other instances so they take them now, not at their next poll (the
/// requeuing runtime is shutting down and no longer claims).
pub(super) const REQUEUE: &str = concat!(
    "WITH moved AS (",
    fenced!(
        "t.id, t.state";
        "state = ",
        requeue_state!(),
        ", archived = ",
        archived_as!("t.", requeue_state!()),
        ",
    attempts = CASE WHEN t.requeues >= $4::int4 THEN t.attempts ELSE t.attempts - 1 END,
    run_at = CASE WHEN ",
        requeue_kills!(),
        " THEN t.run_at ELSE durable_now() END,
    finished_at = CASE WHEN t.cancel_requested_at IS NOT NULL OR ",
        requeue_kills!(),
        " THEN durable_now() END,
    lease_owner = CASE WHEN ",
        requeue_kills!(),
        " THEN t.lease_owner END,
    last_error = CASE WHEN t.requeues < $4::int4 THEN t.last_error ELSE ",
        requeue_error!(),
        " END,
    errors = CASE WHEN t.requeues < $4::int4 THEN t.errors ELSE ",
        push_error!("t.", requeue_error!()),
        " END,
    requeues = t.requeues + 1, lease_expires_at = NULL, updated_at = durable_now()"
    ),
    ")
SELECT coalesce(array_agg(id), '{}') AS ids,
    CASE WHEN bool_or(state = 'pending') THEN pg_notify(",
    channel!(),
    ", '')::text END AS notified
FROM moved"
);

// Single-row statements, planned per run. The single-row statements of an attempt (its
// failure, retry, snooze, cancellation, start mark, step, completion in a transaction) run
// unprepared (`persistent(false)`): each looks
// its row up by id and also states `state = 'processing'`, which the lease-sweep index
// (partial on that state) could serve. A prepared statement's generic plan, chosen while
// that index is small, can walk it instead of probing the primary key, and keeps doing so
// when a held vacuum horizon has filled it with the entries of every task finished since;
// a plan made for each run sees the index as it is. They run once per failed or snoozed
// attempt, so the planning costs little.

/// $1 id, $2 owner, $3 attempt.
pub(super) const MARK_STARTED: &str = "
UPDATE durable_tasks_live SET attempt_started_at = durable_now(), updated_at = durable_now()
WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 'processing'";

/// $1 id, $2 owner, $3 attempt, $4 delay ms, $5 error. Notifies when due at once. A row whose
/// cancellation was requested is `cancelled` instead (so are a failure's and a requeue's).
pub(super) const RETRY: &str = concat!(
    "
WITH moved AS (
    UPDATE durable_tasks
    SET state = CASE WHEN cancel_requested_at IS NULL THEN 'pending' ELSE 'cancelled' END,
        archived = ",
    archived_as!(
        "",
        "CASE WHEN cancel_requested_at IS NULL THEN 'pending' ELSE 'cancelled' END"
    ),
    ",
        run_at = durable_now() + $4::int8 * interval '1 millisecond',
        finished_at = CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE durable_now() END,
        last_error = $5, errors = ",
    push_error!("", "$5::text"),
    ", lease_owner = NULL, lease_expires_at = NULL, updated_at = durable_now()
    WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 'processing'
      AND NOT archived
    RETURNING run_at
)
SELECT count(*) AS n, CASE WHEN bool_or(run_at <= durable_now()) THEN pg_notify(",
    channel!(),
    ", '')::text END AS notified
FROM moved"
);

/// $1 id, $2 owner, $3 attempt, $4 error.
pub(super) const FAIL: &str = concat!(
    "
UPDATE durable_tasks
SET state = CASE WHEN cancel_requested_at IS NULL THEN 'failed' ELSE 'cancelled' END,
    archived = ",
    archived_as!(
        "",
        "CASE WHEN cancel_requested_at IS NULL THEN 'failed' ELSE 'cancelled' END"
    ),
    ",
    last_error = $4, errors = ",
    push_error!("", "$4::text"),
    ", lease_expires_at = NULL, finished_at = durable_now(),
    updated_at = durable_now()
WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 'processing'
  AND NOT archived"
);

/// Whether an expired lease kills its row: the task's last attempt, which had started.
macro_rules! expiry_kills {
    () => {
        "t.attempts >= t.max_attempts AND t.attempt_started_at IS NOT NULL"
    };
}

/// The state a rescue leaves a row in.
macro_rules! rescue_state {
    () => {
        concat!(
            "CASE WHEN t.cancel_requested_at IS NOT NULL THEN 'cancelled' WHEN ",
            expiry_kills!(),
            " THEN 'failed' ELSE 'pending' END"
        )
    };
}

/// What a rescue records of the attempt whose lease expired.
macro_rules! rescue_error {
    () => {
        concat!(
            "CASE WHEN t.attempts < t.max_attempts THEN ",
            lease_expired!("t."),
            " WHEN t.attempt_started_at IS NULL THEN ",
            lease_expired_unstarted!("t."),
            " ELSE ",
            lease_expired_last!("t."),
            " END"
        )
    };
}

/// Rows whose lease expired: `cancelled` if their cancellation was requested, back to
/// `pending` (due now) or, on a last attempt that had started, `failed`; a last attempt that never started is handed back not counted. Rows
/// locked by a concurrent write (a late heartbeat or completion) are skipped and looked at
/// again by the next sweep. Notifies when it requeued any.
pub(super) const RESCUE: &str = concat!(
    "
WITH expired AS MATERIALIZED (
    SELECT id FROM durable_tasks_live
    WHERE state = 'processing' AND lease_expires_at < durable_now()
    FOR UPDATE SKIP LOCKED
),
moved AS (
    UPDATE durable_tasks AS t
    SET state = ",
    rescue_state!(),
    ", archived = ",
    archived_as!("t.", rescue_state!()),
    ",
        attempts = CASE WHEN t.attempts >= t.max_attempts AND t.attempt_started_at IS NULL
            THEN t.attempts - 1 ELSE t.attempts END,
        run_at = CASE WHEN ",
    expiry_kills!(),
    " THEN t.run_at ELSE durable_now() END,
        finished_at = CASE WHEN t.cancel_requested_at IS NOT NULL OR ",
    expiry_kills!(),
    " THEN durable_now() END,
        lease_owner = CASE WHEN ",
    expiry_kills!(),
    " THEN t.lease_owner END,
        lease_expires_at = NULL,
        updated_at = durable_now(),
        last_error = ",
    rescue_error!(),
    ",
        errors = ",
    push_error!("t.", rescue_error!()),
    "
    FROM expired
    WHERE t.id = expired.id AND NOT t.archived
    RETURNING t.state
),
c AS (
    SELECT count(*) FILTER (WHERE state = 'pending') AS requeued,
           count(*) FILTER (WHERE state = 'failed') AS failed,
           count(*) FILTER (WHERE state = 'cancelled') AS cancelled
    FROM moved
)
SELECT requeued, failed, cancelled, CASE WHEN requeued > 0 THEN pg_notify(",
    channel!(),
    ", '')::text END AS notified
FROM c"
);

/// $1 age in ms, $2 limit. Bounded, oldest first, skipping rows someone else has locked;
/// mostly the history partition's (only rows holding a unique key finish live), which no
/// claim reads. The rows' steps go with them.
pub(super) const PRUNE: &str = "
WITH doomed AS MATERIALIZED (
    SELECT id FROM durable_tasks
    WHERE state IN ('completed', 'cancelled')
      AND finished_at < durable_now() - $1::int8 * interval '1 millisecond'
    ORDER BY finished_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM durable_tasks AS t USING doomed WHERE t.id = doomed.id RETURNING t.id
), steps AS (
    DELETE FROM durable_steps AS s USING gone WHERE s.task_id = gone.id
)
SELECT count(*) FROM gone";

/// The columns of a [`TaskRecord`](durable_core::store::TaskRecord), payload as text.
/// `FROM durable_tasks` (every task) unless another table (the live partition) is named.
macro_rules! record_columns {
    () => {
        record_columns!("durable_tasks")
    };
    ($table:literal) => {
        concat!(
            "SELECT id, name, queue, payload::text AS payload, state, priority, attempts,
    max_attempts, requeues, run_at, lease_owner, lease_expires_at, last_error,
    errors::text AS errors, unique_key, started_at, cancel_requested_at, created_at,
    updated_at, finished_at
FROM ",
            $table
        )
    };
}

/// $1 id.
pub(super) const GET: &str = concat!(record_columns!(), " WHERE id = $1");

pub(super) const COUNTS: &str = "SELECT state, count(*) AS n FROM durable_tasks GROUP BY state";

/// Due pending rows, counted on the partial claim index (which holds `run_at`).
pub(super) const BACKLOG: &str =
    "SELECT count(*) FROM durable_tasks_live WHERE state = 'pending' AND run_at <= durable_now()";

/// $1 wait in ms, $2 known task names, $3 rows to look at. The first rows due for at least
/// the wait, in claim order (the claim index, bounded), then the names among them that are
/// not known, counted.
pub(super) const UNCLAIMABLE: &str = "
SELECT name, count(*) AS n FROM (
    SELECT name FROM durable_tasks_live
    WHERE state = 'pending' AND run_at <= durable_now() - $1::int8 * interval '1 millisecond'
    ORDER BY (-priority::int4), run_at, id
    LIMIT $3
) AS due
WHERE name <> ALL($2::text[])
GROUP BY name
ORDER BY n DESC, name";
