//! The live partition's housekeeping on PostgreSQL: a `VACUUM` when its dead row versions pile
//! up, an `ANALYZE` when its rows outgrow the planner's statistics
//! ([`WorkerStore::maintain`](durable_core::store::WorkerStore::maintain)).
//!
//! Every claim leaves one dead version of a row in `durable_tasks_live` and every finished
//! task another (its move to the history partition), each with entries in the partition's
//! indexes; a claim that walks entries of dead versions visits the table for each. Autovacuum
//! looks at a database once a minute by default (`autovacuum_naptime`), which at a few
//! thousand tasks a second is hundreds of thousands of dead versions between two visits, and
//! some servers run with it off. The partition holds live work only, so vacuuming it is
//! cheap and often: a round that finds at least [`VACUUM_AT`] dead versions (or a tenth of
//! the live rows, for a large backlog) vacuums it. `SKIP_LOCKED`: when another instance is
//! vacuuming it, this one does not wait.
//!
//! While an old snapshot holds the vacuum horizon back, a vacuum removes nothing and only
//! reads the table again — the whole partition and its indexes, grown by every task since the
//! snapshot began: seconds of a core each time at a few thousand tasks a second. So when one
//! leaves the dead versions in place, the round notes what holds the horizon (the oldest
//! snapshot or open transaction of the database's sessions, a prepared transaction, a
//! replication slot) and vacuums again only once that is gone — at once then, so the
//! partition is cleaned as soon as the horizon moves. When nothing shows (a role that may not
//! see other sessions), the next vacuum waits twice as long as the last, up to
//! [`BACKOFF_MAX`]; the first one that removes the dead versions resets the pace. Meanwhile
//! each round truncates the lane whose turn is over once its tasks are done (see
//! [`lanes`](super::lanes)): the pages a vacuum cannot clean are given back all the same (and
//! whatever the vacuums do, a lane an earlier horizon left large).
//!
//! The vacuums also set the row count the planner works from, usually while the partition
//! holds a few rows. When a backlog then builds faster than statistics are taken, every
//! statement is planned for a partition of a few rows — for a claim, a read and sort of every
//! due row instead of an ordered walk of the claim index, slower as the backlog grows, which
//! is how a backlog feeds itself. So a round that finds the live rows at more than twice what
//! the planner assumes analyzes the partition first — unless they are within what the
//! statistics' lag accounts for: each backend reports its inserts and deletes up to a second
//! after it made them, so the live count can run a second or two of inserts ahead of the
//! partition. Under a held horizon, where no vacuum sets the count, that lag alone would make
//! every round analyze (once a second), and each analyze changes the plans of every statement
//! on the partition; a backlog instead keeps growing past it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use durable_core::store::Maintenance;
use sqlx::PgPool;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// Dead row versions in the live partition that make a round vacuum it.
pub(super) const VACUUM_AT: i64 = 2_000;

/// The longest wait between two vacuums that removed nothing.
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The first wait after a vacuum that removed nothing.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);

/// The live partition's dead and live row versions, as the statistics count them (flushed by
/// each backend within a second of its transactions; a vacuum sets them when it ends).
///
/// With them, what holds the vacuum horizon: the oldest transaction id among the database's
/// sessions' snapshots (`backend_xmin`: a `REPEATABLE READ` transaction, a long query) and
/// their own transactions (`backend_xid`: a transaction that wrote and was left open, whose
/// snapshot a `READ COMMITTED` session drops between statements), prepared transactions and
/// replication slots; as text, `NULL` when none shows.
///
/// And the rows the planner assumes the partition holds: the last `VACUUM` or `ANALYZE`'s
/// count of rows per page times its pages now, as the planner scales it (0: never counted).
///
/// Summed over the partition's leaves: lane 0 and the lanes (migration 13).
const COUNTS: &str = "
WITH leaves AS (SELECT relid FROM pg_partition_tree('durable_tasks_live') WHERE isleaf)
SELECT coalesce(sum(n_dead_tup), 0)::int8 AS dead, coalesce(sum(n_live_tup), 0)::int8 AS live,
    coalesce(sum(n_tup_ins), 0)::int8 AS inserted,
    (SELECT sum(CASE WHEN c.relpages > 0
            THEN c.reltuples / c.relpages
                * (pg_relation_size(c.oid) / current_setting('block_size')::int8)
            ELSE greatest(c.reltuples, 0) END)
     FROM pg_class c WHERE c.oid IN (SELECT relid FROM leaves))::int8 AS planned,
    (SELECT h::text FROM (
        SELECT backend_xmin AS h FROM pg_stat_activity WHERE datname = current_database()
        UNION ALL
        SELECT backend_xid FROM pg_stat_activity WHERE datname = current_database()
        UNION ALL
        SELECT transaction FROM pg_prepared_xacts WHERE database = current_database()
        UNION ALL
        SELECT xmin FROM pg_replication_slots
     ) AS held WHERE h IS NOT NULL ORDER BY age(h) DESC LIMIT 1) AS horizon
FROM pg_stat_user_tables WHERE relid IN (SELECT relid FROM leaves)";

/// What a round reads: dead and live row versions of the live partition, and the oldest
/// snapshot's `xmin`.
#[derive(Debug, sqlx::FromRow)]
struct Counts {
    dead: i64,
    live: i64,
    /// Rows inserted into the partition so far.
    inserted: i64,
    planned: i64,
    horizon: Option<String>,
}

/// A vacuum that left the dead versions in place: when the next may run, the wait that set
/// it, and the oldest snapshot then (while it is still the oldest, vacuums remove nothing).
#[derive(Debug, Clone)]
struct Backoff {
    until: Instant,
    wait: Duration,
    held_by: Option<String>,
}

/// One statement, outside any transaction (as `VACUUM` must be): sent with the simple query
/// protocol. `TRUNCATE false`: the partition's size follows the queue, so empty pages at its
/// end are soon filled again, and giving them back takes an `ACCESS EXCLUSIVE` lock on the
/// table every claim reads — which a vacuum waits up to 5 s for while any reader of
/// `durable_tasks` holds its lock, holding a connection all that time.
const VACUUM: &str = "VACUUM (SKIP_LOCKED, TRUNCATE false) durable_tasks_live";

/// New statistics of the live partition, for the planner (sampled: a fraction of a second
/// however large the partition). `SKIP_LOCKED`: not while another instance vacuums or
/// analyzes it.
const ANALYZE: &str = "ANALYZE (SKIP_LOCKED) durable_tasks_live";

/// Live rows in the live partition from which a round compares them with what the planner
/// assumes: below it, any plan reads little.
pub(super) const ANALYZE_FROM: i64 = 1_000;

/// Seconds of inserts the live count may run ahead of the partition (each backend reports its
/// counts up to a second after its transactions; the inserts and the finishes that remove the
/// rows are reported by different backends).
const LAG_SECONDS: f64 = 2.0;

/// Whether the planner's row count of the live partition, `planned`, is so far below the
/// `live` rows it holds that its plans are made for another table: a claim planned for a
/// partition of a few rows reads and sorts every due row to take ten (a bitmap scan) rather
/// than walking the claim index in order, and a backlog that builds faster than statistics
/// are taken (a vacuum horizon held back stops the vacuums that set them; autovacuum visits a
/// database once a minute) would make every claim read the whole backlog, slower as it grows.
/// `inserts_per_s`: the partition's insert rate since the last round; the live count is
/// trusted only past [`LAG_SECONDS`] of it.
fn stale(live: i64, planned: i64, inserts_per_s: f64) -> bool {
    // Whole rows: the rate comes from whole counts over a measured interval.
    #[allow(clippy::cast_possible_truncation)]
    let lag = (inserts_per_s.max(0.0) * LAG_SECONDS) as i64;
    live >= ANALYZE_FROM && live > lag && live > planned.max(0).saturating_mul(2)
}

/// When this store vacuums: whether it did anything since the last round, and how long to
/// wait after vacuums that removed nothing.
#[derive(Debug, Default)]
pub(super) struct Pace {
    /// Claims or finished attempts since the last round.
    active: AtomicBool,
    /// Set by a vacuum that removed nothing (`None`: vacuum at the next round that needs
    /// one).
    backoff: Mutex<Option<Backoff>>,
    /// The partition's insert count at the last round that read it, and when.
    inserted: Mutex<Option<(i64, Instant)>>,
    /// Lanes are never truncated ([`PostgresStoreBuilder::truncate_lanes`](super::PostgresStoreBuilder::truncate_lanes)).
    keep_lanes: bool,
}

impl Pace {
    /// A pace whose rounds never truncate a lane.
    pub(super) fn keeping_lanes() -> Self {
        Self {
            keep_lanes: true,
            ..Self::default()
        }
    }

    /// Whether the last vacuum removed nothing: the horizon is held back, and the lanes are
    /// truncated instead of vacuumed.
    fn held_back(&self) -> bool {
        self.backoff().is_some()
    }

    /// Records that this store claimed rows or finished attempts, which leave dead row
    /// versions behind.
    pub(super) fn note_active(&self) {
        self.active.store(true, Ordering::Relaxed);
    }

    /// Whether this store claimed rows or finished attempts since the last call: an idle
    /// instance leaves nothing behind, and its housekeeping need not look.
    fn take_active(&self) -> bool {
        self.active.swap(false, Ordering::Relaxed)
    }

    fn backoff(&self) -> std::sync::MutexGuard<'_, Option<Backoff>> {
        self.backoff
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Rows inserted into the partition per second since the last round, `inserted` the
    /// count now (0 at the first round, or when the count went back: a statistics reset).
    fn inserts_per_s(&self, inserted: i64) -> f64 {
        let mut last = self
            .inserted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let rate = match *last {
            Some((before, at)) if inserted >= before => {
                let secs = now.duration_since(at).as_secs_f64();
                // Counts far below 2^52: exact as f64.
                #[allow(clippy::cast_precision_loss)]
                let rows = (inserted - before) as f64;
                if secs > 0.0 {
                    rows / secs
                } else {
                    0.0
                }
            }
            _ => 0.0,
        };
        *last = Some((inserted, now));
        rate
    }

    /// Whether a vacuum may run now, `horizon` the oldest snapshot now.
    fn may_vacuum(&self, horizon: Option<&str>) -> bool {
        let mut backoff = self.backoff();
        let Some(last) = backoff.as_ref() else {
            return true;
        };
        match (&last.held_by, horizon) {
            // The snapshot that kept the last vacuum from removing anything is still open.
            (Some(held), Some(now)) if held == now => false,
            // It is gone: what it kept can be removed now.
            (Some(_), _) => {
                *backoff = None;
                true
            }
            (None, _) => Instant::now() >= last.until,
        }
    }

    /// After a vacuum: `removed` whether it brought the dead versions under the threshold;
    /// `horizon` the oldest snapshot when it ran.
    fn vacuumed(&self, removed: bool, horizon: Option<String>) {
        let mut backoff = self.backoff();
        *backoff = if removed {
            None
        } else {
            let wait = backoff
                .as_ref()
                .map_or(BACKOFF_FIRST, |b| (b.wait * 2).min(BACKOFF_MAX));
            Some(Backoff {
                until: Instant::now() + wait,
                wait,
                held_by: horizon,
            })
        };
    }
}

/// The live partition's row versions and the oldest snapshot.
async fn counts(pool: &PgPool) -> Result<Option<Counts>> {
    sqlx::query_as(COUNTS)
        .fetch_optional(pool)
        .await
        .map_err(Error::db("maintenance"))
}

/// One round of housekeeping on `pool`, paced by `pace`.
pub(super) async fn maintain_on(pool: &PgPool, pace: &Pace) -> Result<Maintenance> {
    if !pace.take_active() {
        return Ok(Maintenance::default());
    }
    let Some(Counts {
        dead,
        live,
        inserted,
        planned,
        horizon,
    }) = counts(pool).await?
    else {
        return Ok(Maintenance::default());
    };
    let inserts_per_s = pace.inserts_per_s(inserted);
    if stale(live, planned, inserts_per_s) {
        sqlx::raw_sql(ANALYZE)
            .execute(pool)
            .await
            .map_err(Error::db("analyze"))?;
        tracing::debug!(
            live,
            planned,
            inserts_per_s,
            "analyzed the live task table: it outgrew the planner's statistics"
        );
    }
    if !pace.keep_lanes {
        // A failed lane round (a role without the `TRUNCATE` privilege, a lost connection)
        // leaves the vacuum to run as before.
        let held = pace.held_back();
        match super::lanes::truncate_on(pool, held).await {
            Ok(round) => tracing::debug!(?round, held, "lane round"),
            Err(error) => tracing::warn!(%error, "lane round failed"),
        }
    }
    let dead_rows = Some(u64::try_from(dead).unwrap_or(0));
    let threshold = VACUUM_AT.max(live / 10);
    if dead < threshold || !pace.may_vacuum(horizon.as_deref()) {
        return Ok(Maintenance::new(dead_rows, false));
    }
    sqlx::raw_sql(VACUUM)
        .execute(pool)
        .await
        .map_err(Error::db("vacuum"))?;
    let after = counts(pool).await?.map_or(0, |c| c.dead);
    pace.vacuumed(after < threshold, horizon);
    if after >= threshold {
        tracing::debug!(
            dead_before = dead,
            dead_after = after,
            "vacuum of the live task table removed little: an old snapshot holds the horizon back"
        );
    }
    Ok(Maintenance::new(dead_rows, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn vacuums_that_remove_nothing_back_off_and_one_that_does_resets() {
        let pace = Pace::default();
        assert!(!pace.take_active());
        pace.note_active();
        assert!(pace.take_active());
        assert!(!pace.take_active(), "taken");

        assert!(pace.may_vacuum(None));
        pace.vacuumed(false, None);
        assert!(!pace.may_vacuum(None));
        tokio::time::advance(BACKOFF_FIRST).await;
        assert!(pace.may_vacuum(None));
        pace.vacuumed(false, None);
        tokio::time::advance(BACKOFF_FIRST).await;
        assert!(!pace.may_vacuum(None), "twice as long");
        tokio::time::advance(BACKOFF_FIRST).await;
        assert!(pace.may_vacuum(None));
        for _ in 0..10 {
            pace.vacuumed(false, None);
        }
        tokio::time::advance(BACKOFF_MAX).await;
        assert!(pace.may_vacuum(None), "capped");
        pace.vacuumed(true, None);
        assert!(pace.may_vacuum(None), "reset");
    }

    #[test]
    fn statistics_are_stale_when_the_rows_outgrow_them_twice_over() {
        assert!(
            !stale(ANALYZE_FROM - 1, -1, 0.0),
            "a small partition plans well anyway"
        );
        assert!(stale(ANALYZE_FROM, -1, 0.0), "never counted");
        assert!(
            stale(30_000, 40, 0.0),
            "vacuumed with a few rows, then a backlog"
        );
        assert!(!stale(30_000, 15_000, 0.0), "within twice");
        assert!(stale(30_001, 15_000, 0.0));
        assert!(
            !stale(40, 30_000, 0.0),
            "fewer rows than planned: plans read less than thought"
        );
    }

    #[test]
    fn a_second_of_inserts_not_yet_counted_out_is_not_a_backlog() {
        // A held horizon: the last analyze counted 20 live rows on pages full of dead
        // versions (planned 0); 2,000 tasks a second go in and out, and the inserts of the
        // last second are counted before the finishes that removed them.
        assert!(!stale(1_500, 0, 2_000.0), "within a second of inserts");
        assert!(!stale(4_000, 0, 2_000.0), "within two");
        assert!(stale(4_001, 0, 2_000.0), "a backlog past the lag");
        assert!(stale(30_000, 40, 2_000.0), "a backlog");
    }

    #[tokio::test(start_paused = true)]
    async fn the_insert_rate_is_measured_between_rounds() {
        let pace = Pace::default();
        assert!(
            pace.inserts_per_s(5_000).abs() < f64::EPSILON,
            "first round"
        );
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!((pace.inserts_per_s(6_000) - 2_000.0).abs() < 1e-6);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(pace.inserts_per_s(10).abs() < f64::EPSILON, "a reset");
    }

    #[tokio::test(start_paused = true)]
    async fn no_vacuum_while_the_snapshot_that_held_the_last_one_back_is_open() {
        let pace = Pace::default();
        pace.vacuumed(false, Some("731".to_owned()));
        tokio::time::advance(BACKOFF_MAX * 10).await;
        assert!(
            !pace.may_vacuum(Some("731")),
            "the same snapshot, however long"
        );
        assert!(pace.may_vacuum(Some("9120")), "another one now: at once");
        assert!(pace.may_vacuum(Some("731")), "and the pace is reset");

        pace.vacuumed(false, Some("731".to_owned()));
        assert!(pace.may_vacuum(None), "no snapshot shown: it ended");
    }
}
