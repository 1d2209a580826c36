//! Looking before the claim position, off the claims' path.
//!
//! While claims resume from a position (see [`resume`](super::resume)), a row placed before
//! it — a higher priority, a transaction that committed long after it began — is not seen by
//! them. Once a second (see [`Resume::look_due`]) the store reads whether a due `pending` row
//! of the claim's kind sorts before the position: a walk of the claim index from its head up
//! to the position, in claim order, that stops at the first such row. It runs on a claim
//! connection (sorting priced out, so it walks the index in order) in a task of its own, and
//! no claim waits for it. When it finds one, the next claim walks from the head.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::time::Instant;

use super::resume::{Position, Resume};

/// Whether a due row sorts before the position (1 or 0), for the claims of `filter`. Not an
/// `EXISTS`: PostgreSQL drops the `ORDER BY` of a subquery under `EXISTS`, and then plans a
/// bitmap scan of every entry before the position rather than the walk that stops at the
/// first due row.
macro_rules! before {
    ($filter:literal, $p:literal, $r:literal, $i:literal) => {
        concat!(
            "
SELECT count(*) FROM (
    SELECT 1 FROM durable_tasks_live
    WHERE state = 'pending' AND run_at <= durable_now() AND name = ANY($1::text[])",
            $filter,
            "
      AND ((-priority::int4), run_at, id) < (",
            $p,
            "::int4, ",
            $r,
            "::timestamptz, ",
            $i,
            "::uuid)
    ORDER BY (-priority::int4), run_at, id
    LIMIT 1
) AS first"
        )
    };
}

/// $1 task names, $2-$4 the position. Claims of any queue.
pub(super) const BEFORE_ANY: &str = before!("", "$2", "$3", "$4");

/// $1 task names, $2 queue, $3-$5 the position. Claims of one capped queue.
pub(super) const BEFORE_QUEUE: &str = before!(" AND queue = $2::text", "$3", "$4", "$5");

/// $1 task names, $2 queues left out, $3-$5 the position. Claims of the other queues.
pub(super) const BEFORE_OTHERS: &str = before!(" AND queue <> ALL($2::text[])", "$3", "$4", "$5");

/// One look: the claims it is for, and where they resume.
pub(super) struct Look {
    /// The claims' kind (their key in [`Resume`]).
    pub(super) kind: String,
    pub(super) names: Arc<[String]>,
    /// The claims' queue (`Some`), or the queues they leave out.
    pub(super) queue: Option<String>,
    pub(super) excluded: Vec<String>,
    pub(super) position: Position,
}

impl Look {
    /// Runs the look on `pool` in a task of its own; `resume` hears how it went (a look
    /// that failed, or whose task ended without an answer, counts as having found a row).
    pub(super) fn spawn(self, pool: PgPool, resume: Arc<Resume>) {
        let report = Report {
            resume,
            kind: self.kind.clone(),
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
        let text = match (&self.queue, self.excluded.is_empty()) {
            (Some(_), _) => BEFORE_QUEUE,
            (None, true) => BEFORE_ANY,
            (None, false) => BEFORE_OTHERS,
        };
        let query = sqlx::query_scalar::<_, i64>(text).bind(&self.names[..]);
        let query = match &self.queue {
            Some(queue) => query.bind(queue),
            None if self.excluded.is_empty() => query,
            None => query.bind(&self.excluded),
        };
        let p = self.position;
        let found = query
            .bind(p.rank)
            .bind(p.run_at)
            .bind(p.id)
            .fetch_one(pool)
            .await?;
        Ok(found > 0)
    }
}

/// Tells [`Resume`] how a look went when its task ends, however it ends.
struct Report {
    resume: Arc<Resume>,
    kind: String,
    began: Instant,
    found: Option<bool>,
}

impl Drop for Report {
    fn drop(&mut self) {
        self.resume
            .looked(&self.kind, self.found, self.began.elapsed());
    }
}
