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
//! - every [`LOOK_EVERY`] — or [`LOOK_SHARE`] times as long as the last look took, if longer,
//!   so that looks take at most a twentieth of the time however slow they get — the store
//!   looks before the position, off the claims' path: one read on a connection of its own
//!   (see [`look`](super::look)) for a due row there. When it finds one, or cannot tell (the
//!   read failed), the next claim walks from the head and takes what a resumed claim passed
//!   over. No claim waits for a look: under a held snapshot a walk from the head takes tens
//!   of milliseconds, and every task due while it ran waited that long. Most looks are near
//!   ones, which read only where passed-over rows come from (a higher priority, a late
//!   commit); a full one, which reads everything before the position, runs every
//!   [`FULL_LOOK_EVERY`] (or [`LOOK_SHARE`] times as long as the last full one took);
//! - claims resume only after a walk from the head, or a full look, took [`SLOW`] (by
//!   default) or more, which is when the head is full of entries that cannot be marked.
//!   Otherwise every claim walks from the head (entries get marked as they are passed), and
//!   the order is exact.
//!
//! Under a held snapshot a task that sorts before the position waits until the next look
//! that reaches it finds it — a second for a higher priority or a commit up to
//! [`LATE`](super::look::LATE) late, [`FULL_LOOK_EVERY`] for an older `run_at`, more when
//! looks are slow — and the claim after that; nothing is ever left behind. A look that has
//! not answered after two periods counts as failed.

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
pub(super) const LOOK_EVERY: Duration = Duration::from_secs(1);

/// How often, of those looks, one reads everything before the position.
pub(super) const FULL_LOOK_EVERY: Duration = Duration::from_secs(30);

/// While claims resume, the next look runs only after this many times the time the last one
/// (or the last walk from the head) took, when that is longer than [`LOOK_EVERY`]; the next
/// full look, after this many times the last full one (or walk from the head), when that is
/// longer than [`FULL_LOOK_EVERY`].
pub(super) const LOOK_SHARE: u32 = 20;

/// How long a walk from the head must take for the following claims to resume, by default
/// ([`PostgresStoreBuilder::claim_resume_after`](super::PostgresStoreBuilder::claim_resume_after)).
pub(super) const SLOW: Duration = Duration::from_millis(8);

/// How much before the position a look reads (see [`look`](super::look)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reach {
    /// Higher priorities, and [`LATE`](super::look::LATE) before the position at its own.
    Near,
    /// Everything before the position, from the head of the index.
    Full,
}

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
    /// took (a full look's time is kept apart).
    looked_at: Option<Instant>,
    look_took: Duration,
    /// When the last walk from the head or full look ended, and how long it took.
    full_at: Option<Instant>,
    full_took: Duration,
    /// Whether that was slow: claims resume until a walk or a full look is fast again.
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
        LOOK_EVERY.max(self.look_took.saturating_mul(LOOK_SHARE))
    }

    /// How much the next look reads.
    fn reach(&self) -> Reach {
        let every = FULL_LOOK_EVERY.max(self.full_took.saturating_mul(LOOK_SHARE));
        if self.full_at.is_none_or(|at| at.elapsed() >= every) {
            Reach::Full
        } else {
            Reach::Near
        }
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

    /// The position to look before and how much to read, when a look of kind `key` is due
    /// (claims resume, none is in flight, the last ended a period ago); the look is then in
    /// flight until [`looked`](Self::looked).
    pub(super) fn look_due(&self, key: &str) -> Option<(Position, Reach)> {
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
        Some((from, cursor.reach()))
    }

    /// Records the look of kind `key` that read `reach` and took `took`: whether it found a
    /// due row before the position (`None`: it failed).
    pub(super) fn looked(&self, key: &str, reach: Reach, found: Option<bool>, took: Duration) {
        let mut cursors = self.lock();
        let cursor = cursors.entry(key.to_owned()).or_default();
        let now = Instant::now();
        cursor.looking = None;
        cursor.looked_at = Some(now);
        match reach {
            Reach::Near => cursor.look_took = took,
            Reach::Full => (cursor.full_at, cursor.full_took) = (Some(now), took),
        }
        match found {
            // The head is quick to walk again (the snapshot ended): exact order. A near look
            // tells nothing about the head.
            Some(false) if reach == Reach::Full => cursor.slow = took >= self.slow,
            Some(false) => {}
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
            let now = Instant::now();
            cursor.looked_at = Some(now);
            cursor.look_took = took;
            (cursor.full_at, cursor.full_took) = (Some(now), took);
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
mod tests;
