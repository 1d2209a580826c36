//! [`Schedule`]: when a periodic task's occurrences fall, and [`CatchUp`]: which of the
//! occurrences missed while no instance ran are enqueued.

use std::fmt;
use std::str::FromStr as _;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::error::{Error, Result};

/// When a periodic task's occurrences fall: at a fixed period, or on a cron expression read in
/// a time zone.
///
/// - [`Schedule::every`]: every multiple of the period since the Unix epoch (UTC), so
///   `every(1 h)` falls on the hour and every instance computes the same instants.
/// - [`Schedule::cron`]: a 5-field (`min hour day month weekday`) or 6-field (seconds first)
///   cron expression, evaluated on the wall clock of an IANA time zone: `0 9 * * MON-FRI` in
///   `Europe/Paris` is 09:00 Paris time all year, across daylight-saving changes. A time
///   skipped by a spring-forward change runs at the first instant after the gap; a time
///   repeated by a fall-back change runs once, at its first instance.
///
/// Occurrences are instants with millisecond precision.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use chrono::{TimeZone, Utc};
/// use durable_core::periodic::Schedule;
///
/// let hourly = Schedule::every(Duration::from_secs(3600));
/// let t = Utc.with_ymd_and_hms(2026, 3, 1, 10, 30, 0).unwrap();
/// assert_eq!(hourly.next_after(t), Some(Utc.with_ymd_and_hms(2026, 3, 1, 11, 0, 0).unwrap()));
///
/// let weekdays = Schedule::cron("0 9 * * MON-FRI", chrono_tz::Europe::Paris)?;
/// let friday = Utc.with_ymd_and_hms(2026, 3, 6, 12, 0, 0).unwrap();
/// // Monday 09:00 in Paris (UTC+1 in March before the change) is 08:00 UTC.
/// assert_eq!(weekdays.next_after(friday), Some(Utc.with_ymd_and_hms(2026, 3, 9, 8, 0, 0).unwrap()));
/// # Ok::<(), durable_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Schedule {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    /// A period in milliseconds (at least 1).
    Every(i64),
    Cron {
        cron: Box<croner::Cron>,
        expression: String,
        zone: Tz,
    },
}

impl Schedule {
    /// Every `period`, on the multiples of it since the Unix epoch. The period is counted in
    /// whole milliseconds, at least one.
    pub fn every(period: Duration) -> Self {
        let ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX).max(1);
        Self {
            kind: Kind::Every(ms),
        }
    }

    /// On a cron `expression` (5 fields, or 6 with seconds first; names such as `MON-FRI` and
    /// `JAN` and nicknames such as `@daily` are accepted) read on the wall clock of `zone`.
    ///
    /// Fails with [`Error::InvalidSchedule`] when the expression does not parse.
    pub fn cron(expression: &str, zone: Tz) -> Result<Self> {
        let cron = croner::Cron::from_str(expression).map_err(|e| Error::InvalidSchedule {
            schedule: expression.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            kind: Kind::Cron {
                cron: Box::new(cron),
                expression: expression.trim().to_owned(),
                zone,
            },
        })
    }

    /// The first occurrence strictly after `t`, or `None` when there is none (a cron
    /// expression that never matches again, such as February 30th).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Every(period) => {
                let next = t.timestamp_millis().div_euclid(*period).checked_add(1)?;
                DateTime::from_timestamp_millis(next.checked_mul(*period)?)
            }
            Kind::Cron { cron, zone, .. } => {
                // croner searches from whole seconds: start from the second holding `t`, and
                // keep only what is strictly later.
                let mut from = truncate_to_second(t);
                loop {
                    let next = cron
                        .find_next_occurrence(&from.with_timezone(zone), false)
                        .ok()?
                        .with_timezone(&Utc);
                    if next > t {
                        return Some(next);
                    }
                    from = next;
                }
            }
        }
    }

    /// The latest occurrence at or before `t`, or `None` when there is none.
    pub fn latest_at(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Every(period) => {
                let at = t
                    .timestamp_millis()
                    .div_euclid(*period)
                    .checked_mul(*period)?;
                DateTime::from_timestamp_millis(at)
            }
            Kind::Cron { cron, zone, .. } => cron
                .find_previous_occurrence(&truncate_to_second(t).with_timezone(zone), true)
                .ok()
                .map(|at| at.with_timezone(&Utc)),
        }
    }

    /// The occurrences in `(after, until]`: at most the `keep` latest, in time order, and how
    /// many earlier ones there were (counted up to [`COUNT_LIMIT`], a lower bound past it).
    pub(crate) fn due(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        keep: usize,
    ) -> (Vec<DateTime<Utc>>, u64) {
        let mut kept = Vec::new();
        let mut earlier = 0u64;
        let mut cursor = self.latest_at(until);
        while let Some(at) = cursor.filter(|at| *at > after) {
            if kept.len() < keep {
                kept.push(at);
            } else if let Kind::Every(period) = self.kind {
                // Counted at once: the occurrences in (after, at].
                let span = at.timestamp_millis() - after.timestamp_millis();
                earlier = u64::try_from(span.div_euclid(period)).unwrap_or(0)
                    + u64::from(span.rem_euclid(period) > 0);
                break;
            } else {
                earlier += 1;
                if earlier >= COUNT_LIMIT {
                    break;
                }
            }
            cursor = at
                .checked_sub_signed(TimeDelta::milliseconds(1))
                .and_then(|before| self.latest_at(before));
        }
        kept.reverse();
        (kept, earlier)
    }
}

/// How far [`Schedule::due`] counts the occurrences it drops: an exact count of a long
/// outage of a per-second cron is not worth the time.
pub(crate) const COUNT_LIMIT: u64 = 10_000;

fn truncate_to_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

impl fmt::Display for Schedule {
    /// The schedule's description, stored beside its progress: `every 1s`, `cron 0 9 * * *
    /// in Europe/Paris`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Every(ms) => {
                let period = Duration::from_millis(u64::try_from(*ms).unwrap_or(u64::MAX));
                write!(f, "every {period:?}")
            }
            Kind::Cron {
                expression, zone, ..
            } => write!(f, "cron {expression} in {}", zone.name()),
        }
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({self})")
    }
}

/// Which occurrences a schedule enqueues when the scheduler finds several due at once: after
/// every instance was down, or a database outage.
///
/// Whatever the policy, the occurrences before the enqueued ones are dropped for good (logged
/// at WARN), and a schedule never enqueues an occurrence twice.
///
/// # Examples
///
/// ```
/// use durable_core::periodic::CatchUp;
/// // A report per hour that must exist for each hour, after up to a day of downtime:
/// let policy = CatchUp::AllUpTo(24);
/// assert_ne!(policy, CatchUp::Latest);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CatchUp {
    /// Only on-time occurrences: the latest due occurrence is enqueued if it is at most
    /// [`SKIP_TOLERANCE`] late, and every missed one is dropped. For work whose late run is
    /// useless (a reminder at 09:00).
    Skip,
    /// The latest due occurrence, however late; the ones before it are dropped. For work that
    /// only needs to have run since (a cache refresh, a cleanup).
    Latest,
    /// Every due occurrence, up to the `n` latest (at least one, at most
    /// [`MAX_CATCH_UP`]); older ones are dropped. For work owed once per occurrence (a
    /// per-hour report).
    AllUpTo(u32),
}

/// Most occurrences one schedule enqueues at once ([`CatchUp::AllUpTo`] is clamped to it):
/// their rows are inserted in one transaction.
pub const MAX_CATCH_UP: u32 = 10_000;

/// How late an occurrence may be found and still run under [`CatchUp::Skip`].
pub const SKIP_TOLERANCE: Duration = Duration::from_secs(60);

impl CatchUp {
    /// How many of the latest due occurrences this policy may enqueue.
    pub(crate) fn keep(self) -> usize {
        match self {
            CatchUp::Skip | CatchUp::Latest => 1,
            CatchUp::AllUpTo(n) => usize::try_from(n.clamp(1, MAX_CATCH_UP)).unwrap_or(1),
        }
    }

    /// Of the due occurrences (the latest kept, in time order), the ones to enqueue at `now`.
    pub(crate) fn select(self, due: &[DateTime<Utc>], now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let tolerance = TimeDelta::from_std(SKIP_TOLERANCE).unwrap_or(TimeDelta::MAX);
        match (self, due.last()) {
            (_, None) => Vec::new(),
            (CatchUp::Skip, Some(last)) if now.signed_duration_since(*last) > tolerance => {
                Vec::new()
            }
            (CatchUp::Skip | CatchUp::Latest, Some(last)) => vec![*last],
            (CatchUp::AllUpTo(_), Some(_)) => {
                let keep = self.keep().min(due.len());
                due[due.len() - keep..].to_vec()
            }
        }
    }
}
