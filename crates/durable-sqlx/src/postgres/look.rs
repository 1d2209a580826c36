//! Looking before the claim position, off the claims' path.
//!
//! While claims resume from a position (see [`resume`](super::resume)), a row placed before
//! it — a higher priority, a transaction that committed long after it began — is not seen by
//! them. Once a second (see [`Resume::look_due`]) the store reads whether a due `pending` row
//! of the claim's kind sorts before the position, in claim order, stopping at the first such
//! row. It runs on a claim connection (sorting priced out, so it walks the index in order) in
//! a task of its own, and no claim waits for it. When it finds one, the next claim walks from
//! the head.
//!
//! Most looks are [near](Reach::Near): they walk the entries of a higher priority than the
//! position's, and those of its priority up to [`LATE`] before it — where the rows a resumed
//! claim passed over come from (a higher priority; an enqueue that committed late, whose
//! `run_at` is its transaction's start). Under a held snapshot the index keeps an entry for
//! every task claimed since, all of them before the position: a walk of everything there
//! passes them all (6,800 blocks and 20 ms two minutes into a held snapshot at 2,000 tasks a
//! second), a near look only the window's. A [full](Reach::Full) look, from the head, runs
//! every [`FULL_LOOK_EVERY`](super::resume::FULL_LOOK_EVERY): it finds what a near one cannot
//! (a task enqueued with a `run_at` further in the past than [`LATE`]), and only a full look
//! that is fast again ends the resuming.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;

use super::resume::{Position, Reach, Resume};

/// The first due row of the claims of `filter` that meets `range`, in claim order: a walk of
/// the claim index that stops there.
macro_rules! first_due {
    ($filter:literal, $($range:expr),+) => {
        concat!(
            "(
    SELECT 1 FROM durable_tasks_live
    WHERE state = 'pending' AND run_at <= durable_now() AND name = ANY($1::text[])",
            $filter,
            "
      AND ",
            $($range),+,
            "
    ORDER BY (-priority::int4), run_at, id
    LIMIT 1
)"
        )
    };
}

/// Whether a due row sorts before the position (1 or 0), for the claims of `filter`. Not an
/// `EXISTS`: PostgreSQL drops the `ORDER BY` of a subquery under `EXISTS`, and then plans a
/// bitmap scan of every entry before the position rather than the walk that stops at the
/// first due row.
macro_rules! before {
    ($filter:literal, $p:literal, $r:literal, $i:literal) => {
        concat!(
            "SELECT count(*) FROM ",
            first_due!($filter, claim_order!(), " < ", claim_order!($p, $r, $i)),
            " AS first"
        )
    };
}

/// How far before the position, at the position's priority, a near look walks: how late an
/// enqueueing transaction may commit and still be found within a second or so.
pub(super) const LATE: Duration = Duration::from_secs(10);

/// Whether a due row sorts before the position near it (1 or 0): of a higher priority, or of
/// the position's priority with a `run_at` at most [`LATE`] (`$lo`) before the position's.
/// Two walks of the claim index, each a range the index applies, each stopping at its first
/// due row.
macro_rules! near {
    ($filter:literal, $p:literal, $r:literal, $i:literal, $lo:literal) => {
        concat!(
            "SELECT count(*) FROM (",
            first_due!($filter, "(-priority::int4) < ", $p, "::int4"),
            " UNION ALL ",
            first_due!(
                $filter,
                "((-priority::int4), run_at) >= (",
                $p,
                "::int4, ",
                $lo,
                "::timestamptz) AND ",
                claim_order!(),
                " < ",
                claim_order!($p, $r, $i)
            ),
            ") AS first"
        )
    };
}

/// $1 task names, $2-$4 the position. Claims of any queue.
pub(super) const BEFORE_ANY: &str = before!("", "$2", "$3", "$4");

/// $1 task names, $2 queue, $3-$5 the position. Claims of one capped queue.
pub(super) const BEFORE_QUEUE: &str = before!(" AND queue = $2::text", "$3", "$4", "$5");

/// $1 task names, $2 queues left out, $3-$5 the position. Claims of the other queues.
pub(super) const BEFORE_OTHERS: &str = before!(" AND queue <> ALL($2::text[])", "$3", "$4", "$5");

/// $1 task names, $2-$4 the position, $5 [`LATE`] before it. Claims of any queue.
pub(super) const NEAR_ANY: &str = near!("", "$2", "$3", "$4", "$5");

/// $1 task names, $2 queue, $3-$5 the position, $6 [`LATE`] before it. Claims of one
/// capped queue.
pub(super) const NEAR_QUEUE: &str = near!(" AND queue = $2::text", "$3", "$4", "$5", "$6");

/// $1 task names, $2 queues left out, $3-$5 the position, $6 [`LATE`] before it. Claims of
/// the other queues.
pub(super) const NEAR_OTHERS: &str = near!(" AND queue <> ALL($2::text[])", "$3", "$4", "$5", "$6");

/// The statement of a look that reads `reach`, for claims of one queue (`Some`), of all
/// (`None`, nothing excluded) or of all but some.
pub(super) fn statement(reach: Reach, queue: Option<&str>, excluded: &[String]) -> &'static str {
    match (reach, queue, excluded.is_empty()) {
        (Reach::Full, Some(_), _) => BEFORE_QUEUE,
        (Reach::Full, None, true) => BEFORE_ANY,
        (Reach::Full, None, false) => BEFORE_OTHERS,
        (Reach::Near, Some(_), _) => NEAR_QUEUE,
        (Reach::Near, None, true) => NEAR_ANY,
        (Reach::Near, None, false) => NEAR_OTHERS,
    }
}

/// One look: the claims it is for, where they resume, and how far before that it reads.
pub(super) struct Look {
    /// The claims' kind (their key in [`Resume`]).
    pub(super) kind: String,
    pub(super) names: Arc<[String]>,
    /// The claims' queue (`Some`), or the queues they leave out.
    pub(super) queue: Option<String>,
    pub(super) excluded: Vec<String>,
    pub(super) position: Position,
    pub(super) reach: Reach,
}

impl Look {
    /// Runs the look on `pool` in a task of its own; `resume` hears how it went (a look
    /// that failed, or whose task ended without an answer, counts as having found a row).
    pub(super) fn spawn(self, pool: PgPool, resume: Arc<Resume>) {
        let report = Report {
            resume,
            kind: self.kind.clone(),
            reach: self.reach,
            began: Instant::now(),
            found: None,
        };
        tokio::spawn(async move {
            let mut report = report;
            match self.run(&pool).await {
                Ok(found) => report.found = Some(found),
                Err(error) => tracing::debug!(%error,
                    "look before the claim position failed; the next claim walks from the head"),
            }
        });
    }

    async fn run(&self, pool: &PgPool) -> sqlx::Result<bool> {
        let text = statement(self.reach, self.queue.as_deref(), &self.excluded);
        let query = sqlx::query_scalar::<_, i64>(text).bind(&self.names[..]);
        let query = match &self.queue {
            Some(queue) => query.bind(queue),
            None if self.excluded.is_empty() => query,
            None => query.bind(&self.excluded),
        };
        let p = self.position;
        let query = query.bind(p.rank).bind(p.run_at).bind(p.id);
        let query = match self.reach {
            Reach::Near => query.bind(p.run_at - late()),
            Reach::Full => query,
        };
        let found = query.fetch_one(pool).await?;
        Ok(found > 0)
    }
}

/// Tells [`Resume`] how a look went when its task ends, however it ends.
struct Report {
    resume: Arc<Resume>,
    kind: String,
    reach: Reach,
    began: Instant,
    found: Option<bool>,
}

impl Drop for Report {
    fn drop(&mut self) {
        self.resume
            .looked(&self.kind, self.reach, self.found, self.began.elapsed());
    }
}

/// [`LATE`] as a span of the database's time.
pub(super) fn late() -> chrono::Duration {
    chrono::Duration::from_std(LATE).unwrap_or(chrono::Duration::zero())
}
