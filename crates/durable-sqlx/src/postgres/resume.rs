//! Where a claim starts its walk of the claim index.
//!
//! A claim takes the first due `pending` rows in claim order, `(-priority, run_at, id)`. Every
//! row it takes leaves an entry at the head of the partial claim index that points at a row
//! version no longer `pending`. PostgreSQL marks such an entry dead the first time a scan
//! finds its row version dead to every snapshot, and skips it from then on — but while some
//! older snapshot is open (a transaction left idle in a session, a long `REPEATABLE READ`
//! report) no entry made since can be marked, and every claim walks all of them, each a
//! visit to the table: a claim's cost grows with the tasks claimed since that snapshot
//! began (1,682 buffers, 12 ms, after 50,000 tasks on a 2-core machine) until the claims
//! cannot keep up with the offered rate.
//!
//! So a claim may start where the last one of this store ended instead, with a row
//! comparison the index applies (`(-priority, run_at, id) >= position`): the walk then
//! covers only the rows claimed since, however long the snapshot is held. What that walk
//! would miss is a row placed before the position after the last claim passed it — a
//! transaction that enqueued with an earlier `run_at` (its start) and committed late, a
//! higher priority — so:
//!
//! - the position is the last claimed row's `run_at`, or [`SLACK`] before the claim's own
//!   time if that is earlier: a row not yet committed has its transaction's start as
//!   `run_at`, so one that commits within [`SLACK`] of its start is still found by the next
//!   claim. While claims keep up, that is [`SLACK`] behind the last claimed row; behind a
//!   backlog, where the rows claimed are older than that, the next claim starts where this
//!   one ended instead of walking again over [`SLACK`]'s worth of rows it claimed;
//! - every [`FULL_EVERY`] — or [`FULL_SHARE`] times as long as the last look took, if longer,
//!   so that looks take at most a twentieth of the time however slow they get — the store
//!   looks before the position, off the claims' path: one read on a connection of its own
//!   (see [`look`](super::look)) for a due row there. When it finds one, or cannot tell (the
//!   read failed), the next claim walks from the head and takes what a resumed claim passed
//!   over. The look walks the same entries a walk from the head would, but no claim waits
//!   for it: under a held snapshot a walk from the head takes tens of milliseconds, and every
//!   task due while it ran waited that long;
//! - claims resume only after a walk from the head, or a look, took [`SLOW`] (by default) or
//!   more, which is when the head is full of entries that cannot be marked. Otherwise every
//!   claim walks from the head (entries get marked as they are passed), and the order is
//!   exact.
//!
//! Under a held snapshot a task that sorts before the position waits until the next look
//! finds it (a second, more when looks are slow) and the claim after that; nothing is ever
//! left behind. A look that has not answered after two periods counts as failed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use uuid::Uuid;

/// How long before a claim's own time the next resumed claim starts at the latest: the time
/// an enqueueing transaction may take to commit and still be found by the next claim.
pub(super) const SLACK: Duration = Duration::from_millis(500);

/// How often the store looks before the position while claims resume.
pub(super) const FULL_EVERY: Duration = Duration::from_secs(1);

/// While claims resume, the next look runs only after this many times the time the last one
/// (or the last walk from the head) took, when that is longer than [`FULL_EVERY`].
pub(super) const FULL_SHARE: u32 = 20;

/// How long a walk from the head must take for the following claims to resume, by default
/// ([`PostgresStoreBuilder::claim_resume_after`](super::PostgresStoreBuilder::claim_resume_after)).
pub(super) const SLOW: Duration = Duration::from_millis(8);

/// A position in claim order: negated priority, `run_at`, id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Position {
    /// `-priority`, as the index holds it.
    pub(super) rank: i32,
    /// The row's `run_at`.
    pub(super) run_at: DateTime<Utc>,
    /// The row's id.
    pub(super) id: Uuid,
}

/// The claims of one kind (any queue, one queue, all but some queues).
#[derive(Debug, Default)]
struct Cursor {
    /// Where resumed claims start; `None` until a claim took a row.
    from: Option<Position>,
    /// When the last walk from the head or look before the position ended, and how long it
    /// took.
    looked_at: Option<Instant>,
    look_took: Duration,
    /// Whether that was slow: claims resume until a walk or a look is fast again.
    slow: bool,
    /// A look found a due row before the position, or failed: the next claim walks from the
    /// head.
    behind: bool,
    /// When the look in flight began.
    looking: Option<Instant>,
}

impl Cursor {
    /// How long after the last walk or look the next look is due.
    fn period(&self) -> Duration {
        FULL_EVERY.max(self.look_took.saturating_mul(FULL_SHARE))
    }
}

/// The claim positions of one store, by kind of claim.
#[derive(Debug)]
pub(super) struct Resume {
    /// How long a walk from the head must take for claims to resume.
    slow: Duration,
    cursors: Mutex<HashMap<String, Cursor>>,
}

impl Default for Resume {
    fn default() -> Self {
        Self::new(SLOW)
    }
}

impl Resume {
    /// Claim positions that resume after a walk from the head took `slow` or more.
    pub(super) fn new(slow: Duration) -> Self {
        Self {
            slow,
            cursors: Mutex::default(),
        }
    }

    /// Where a claim of kind `key` should start: `None` for the head of the index.
    pub(super) fn start(&self, key: &str) -> Option<Position> {
        let cursors = self.lock();
        let cursor = cursors.get(key)?;
        if !cursor.slow || cursor.behind {
            return None;
        }
        // Looks stopped answering (two periods without one ending): walk from the head.
        let overdue = cursor.period().saturating_mul(2);
        let last = cursor.looked_at?;
        if last.elapsed() >= overdue && cursor.looking.is_none_or(|t| t.elapsed() >= overdue) {
            return None;
        }
        cursor.from
    }

    /// The position to look before, when a look of kind `key` is due (claims resume, none
    /// is in flight, the last ended a period ago); the look is then in flight until
    /// [`looked`](Self::looked).
    pub(super) fn look_due(&self, key: &str) -> Option<Position> {
        let mut cursors = self.lock();
        let cursor = cursors.get_mut(key)?;
        if !cursor.slow || cursor.behind || cursor.looking.is_some() {
            return None;
        }
        let from = cursor.from?;
        if cursor.looked_at?.elapsed() < cursor.period() {
            return None;
        }
        cursor.looking = Some(Instant::now());
        Some(from)
    }

    /// Records the look of kind `key` that took `took`: whether it found a due row before
    /// the position (`None`: it failed).
    pub(super) fn looked(&self, key: &str, found: Option<bool>, took: Duration) {
        let mut cursors = self.lock();
        let cursor = cursors.entry(key.to_owned()).or_default();
        cursor.looking = None;
        cursor.looked_at = Some(Instant::now());
        cursor.look_took = took;
        match found {
            // The head is quick to walk again (the snapshot ended): exact order.
            Some(false) => cursor.slow = took >= self.slow,
            Some(true) | None => cursor.behind = true,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cursor>> {
        // A panic while holding the lock leaves positions and times: still valid.
        self.cursors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a claim of kind `key` that started at `started` (as [`start`](Self::start)
    /// answered), took `took`, and claimed rows up to `last` (the greatest position claimed)
    /// at the database's time `at` (unknown when it claimed nothing).
    pub(super) fn record(
        &self,
        key: &str,
        started: Option<Position>,
        took: Duration,
        last: Option<Position>,
        at: Option<DateTime<Utc>>,
    ) {
        let mut cursors = self.lock();
        let cursor = cursors.entry(key.to_owned()).or_default();
        if started.is_none() {
            cursor.looked_at = Some(Instant::now());
            cursor.look_took = took;
            cursor.slow = took >= self.slow;
            cursor.behind = false;
        }
        if let Some(last) = last {
            let slack = chrono::Duration::from_std(SLACK).unwrap_or(chrono::Duration::zero());
            let latest = at.unwrap_or(last.run_at) - slack;
            // From the start of the last row's `run_at` (nil id): rows enqueued together share it.
            let from = Position {
                rank: last.rank,
                run_at: last.run_at.min(latest),
                id: Uuid::nil(),
            };
            // A resumed claim never moves the position back; a walk from the head may (it
            // found rows before it).
            cursor.from = match (started, cursor.from) {
                (Some(_), Some(now)) => Some(now.max(from)),
                _ => Some(from),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).expect("time")
    }

    fn at(rank: i32, ms: i64) -> Position {
        Position {
            rank,
            run_at: time(ms),
            id: Uuid::now_v7(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn claims_resume_only_after_a_slow_walk_and_walk_again_each_second() {
        let resume = Resume::default();
        assert_eq!(resume.start("any"), None, "no claim yet");
        resume.record(
            "any",
            None,
            Duration::from_millis(1),
            Some(at(0, 10_000)),
            Some(time(10_000)),
        );
        assert_eq!(
            resume.start("any"),
            None,
            "a fast walk keeps walking from the head"
        );

        resume.record("any", None, SLOW, Some(at(0, 20_000)), Some(time(20_000)));
        let from = resume
            .start("any")
            .expect("a slow walk makes claims resume");
        assert_eq!(from.rank, 0);
        assert_eq!(from.run_at.timestamp_millis(), 20_000 - 500, "slack behind");
        assert_eq!(from.id, Uuid::nil());
        assert_eq!(resume.start("queue:mail"), None, "kinds are apart");

        // A resumed claim moves the position forward, never back.
        resume.record(
            "any",
            Some(from),
            Duration::from_millis(1),
            Some(at(0, 30_000)),
            Some(time(30_000)),
        );
        assert_eq!(
            resume.start("any").map(|p| p.run_at.timestamp_millis()),
            Some(29_500)
        );
        resume.record(
            "any",
            Some(from),
            Duration::from_millis(1),
            Some(at(0, 25_000)),
            Some(time(25_000)),
        );
        assert_eq!(
            resume.start("any").map(|p| p.run_at.timestamp_millis()),
            Some(29_500)
        );

        assert_eq!(resume.look_due("any"), None, "no look within a second");
        tokio::time::advance(FULL_EVERY).await;
        assert!(resume.start("any").is_some(), "claims go on resuming");
        let look = resume.look_due("any").expect("a look each second");
        assert_eq!(
            look.run_at.timestamp_millis(),
            29_500,
            "before the position"
        );
        assert_eq!(resume.look_due("any"), None, "one look at a time");
        resume.looked("any", Some(true), Duration::from_millis(30));
        assert_eq!(
            resume.start("any"),
            None,
            "it found a row before the position: a walk from the head"
        );

        // A walk from the head that took 200 ms: the next look 4 s later, not 1 s.
        resume.record(
            "any",
            None,
            Duration::from_millis(200),
            Some(at(0, 40_000)),
            Some(time(40_000)),
        );
        assert!(resume.start("any").is_some(), "resuming again");
        tokio::time::advance(FULL_EVERY * 3).await;
        assert_eq!(resume.look_due("any"), None, "no look after 3 s");
        tokio::time::advance(FULL_EVERY).await;
        assert!(resume.look_due("any").is_some(), "a look after 4 s");
        resume.looked("any", Some(false), Duration::from_millis(100));
        assert!(
            resume.start("any").is_some(),
            "nothing before the position, and the look was slow: resuming"
        );
        tokio::time::advance(FULL_EVERY * 2).await;
        assert!(resume.look_due("any").is_some());
        resume.looked("any", Some(false), Duration::from_millis(1));
        assert_eq!(
            resume.start("any"),
            None,
            "and it was fast: exact order again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_look_that_fails_or_never_answers_brings_a_walk_from_the_head() {
        let resume = Resume::default();
        resume.record("any", None, SLOW, Some(at(0, 20_000)), Some(time(20_000)));
        tokio::time::advance(FULL_EVERY).await;
        assert!(resume.look_due("any").is_some());
        resume.looked("any", None, Duration::from_millis(5));
        assert_eq!(resume.start("any"), None, "a failed look: from the head");

        resume.record("any", None, SLOW, Some(at(0, 30_000)), Some(time(30_000)));
        tokio::time::advance(FULL_EVERY).await;
        assert!(resume.look_due("any").is_some());
        tokio::time::advance(FULL_EVERY).await;
        assert!(
            resume.start("any").is_some(),
            "a look in flight for a second: still resuming"
        );
        tokio::time::advance(FULL_EVERY).await;
        assert_eq!(
            resume.start("any"),
            None,
            "no answer two periods after the last: from the head"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn behind_a_backlog_the_next_claim_starts_where_the_last_one_ended() {
        let resume = Resume::default();
        // Claims keep up: the rows claimed are as old as the claim.
        resume.record("any", None, SLOW, Some(at(0, 20_000)), Some(time(20_010)));
        assert_eq!(
            resume.start("any").map(|p| p.run_at.timestamp_millis()),
            Some(19_510),
            "slack before the claim's time"
        );
        // A backlog: the rows claimed were enqueued 5 s before the claim. Anything enqueued
        // later that is still to commit sorts after them.
        resume.record(
            "any",
            resume.start("any"),
            Duration::from_millis(1),
            Some(at(0, 21_000)),
            Some(time(26_000)),
        );
        let from = resume.start("any").expect("resuming");
        assert_eq!(
            from.run_at.timestamp_millis(),
            21_000,
            "where the claim ended"
        );
        assert_eq!(from.id, Uuid::nil(), "with the rows that share its run_at");
    }
}
