//! The live partition's housekeeping on PostgreSQL: a `VACUUM` when its dead row versions pile
//! up ([`WorkerStore::maintain`](durable_core::store::WorkerStore::maintain)).
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
//! reads the table again; so when one leaves the dead versions in place, the next waits
//! twice as long, up to [`BACKOFF_MAX`], and the first one that removes them resets the pace.

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
const COUNTS: &str = "
SELECT coalesce(n_dead_tup, 0) AS dead, coalesce(n_live_tup, 0) AS live
FROM pg_stat_user_tables WHERE relid = 'durable_tasks_live'::regclass";

/// One statement, outside any transaction (as `VACUUM` must be): sent with the simple query
/// protocol.
const VACUUM: &str = "VACUUM (SKIP_LOCKED) durable_tasks_live";

/// When this store vacuums: whether it did anything since the last round, and how long to
/// wait after vacuums that removed nothing.
#[derive(Debug, Default)]
pub(super) struct Pace {
    /// Claims or finished attempts since the last round.
    active: AtomicBool,
    /// No vacuum before this (`None`: at the next round that needs one), and the wait that
    /// set it.
    backoff: Mutex<Option<(Instant, Duration)>>,
}

impl Pace {
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

    fn backoff(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Duration)>> {
        self.backoff
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a vacuum may run now.
    fn may_vacuum(&self) -> bool {
        self.backoff()
            .is_none_or(|(until, _)| Instant::now() >= until)
    }

    /// After a vacuum: `removed` whether it brought the dead versions under the threshold.
    fn vacuumed(&self, removed: bool) {
        let mut backoff = self.backoff();
        *backoff = if removed {
            None
        } else {
            let wait = backoff.map_or(BACKOFF_FIRST, |(_, w)| (w * 2).min(BACKOFF_MAX));
            Some((Instant::now() + wait, wait))
        };
    }
}

/// The live partition's (dead, live) row versions.
async fn counts(pool: &PgPool) -> Result<Option<(i64, i64)>> {
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
    let Some((dead, live)) = counts(pool).await? else {
        return Ok(Maintenance::default());
    };
    let dead_rows = Some(u64::try_from(dead).unwrap_or(0));
    let threshold = VACUUM_AT.max(live / 10);
    if dead < threshold || !pace.may_vacuum() {
        return Ok(Maintenance::new(dead_rows, false));
    }
    sqlx::raw_sql(VACUUM)
        .execute(pool)
        .await
        .map_err(Error::db("vacuum"))?;
    let after = counts(pool).await?.map_or(0, |(dead, _)| dead);
    pace.vacuumed(after < threshold);
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

        assert!(pace.may_vacuum());
        pace.vacuumed(false);
        assert!(!pace.may_vacuum());
        tokio::time::advance(BACKOFF_FIRST).await;
        assert!(pace.may_vacuum());
        pace.vacuumed(false);
        tokio::time::advance(BACKOFF_FIRST).await;
        assert!(!pace.may_vacuum(), "twice as long");
        tokio::time::advance(BACKOFF_FIRST).await;
        assert!(pace.may_vacuum());
        for _ in 0..10 {
            pace.vacuumed(false);
        }
        tokio::time::advance(BACKOFF_MAX).await;
        assert!(pace.may_vacuum(), "capped");
        pace.vacuumed(true);
        assert!(pace.may_vacuum(), "reset");
    }
}
