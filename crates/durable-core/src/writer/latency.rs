//! How long the store's recent writes took: what a shutdown sizes its hand-back by.
//!
//! A shutdown hands its stopped attempts back in one write at the end of its grace. On a
//! database that commits slowly right now (an fsync queued behind a busy disk, a server under
//! load) a fixed reserve is not enough, and an attempt whose hand-back times out waits out its
//! lease and counts an attempt. The writer therefore remembers its slowest write of the last
//! few seconds, and the shutdown reserves time for it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one window lasts: the slowest write is remembered for one to two windows.
const WINDOW: Duration = Duration::from_secs(10);

/// The slowest write of the current window and of the one before.
#[derive(Debug)]
pub(crate) struct WriteLatency {
    started: Instant,
    windows: Mutex<Windows>,
}

#[derive(Debug, Default)]
struct Windows {
    /// The number of the current window, counted from `started`.
    number: u64,
    current: Duration,
    previous: Duration,
}

impl Default for WriteLatency {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            windows: Mutex::new(Windows::default()),
        }
    }
}

impl WriteLatency {
    /// Records a write that took `took`, ending at `now`.
    pub(crate) fn record(&self, took: Duration, now: Instant) {
        let number = self.window(now);
        let mut windows = self.lock();
        windows.roll(number);
        windows.current = windows.current.max(took);
    }

    /// The slowest write of the last one to two windows as of `now`; zero if there was none.
    pub(crate) fn recent(&self, now: Instant) -> Duration {
        let number = self.window(now);
        let mut windows = self.lock();
        windows.roll(number);
        windows.current.max(windows.previous)
    }

    fn window(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.started);
        u64::try_from(elapsed.as_nanos() / WINDOW.as_nanos()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Windows> {
        // A panic while holding the lock leaves two durations: still valid.
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Windows {
    /// Moves on to window `number` (never back: a late record counts in the current one).
    fn roll(&mut self, number: u64) {
        if number <= self.number {
            return;
        }
        self.previous = if number == self.number + 1 {
            self.current
        } else {
            Duration::ZERO
        };
        self.current = Duration::ZERO;
        self.number = number;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_slowest_write_is_remembered_for_one_to_two_windows() {
        let latency = WriteLatency::default();
        let t0 = latency.started;
        assert_eq!(latency.recent(t0), Duration::ZERO);
        latency.record(40 * MS, t0 + MS);
        latency.record(5 * MS, t0 + 2 * MS);
        assert_eq!(latency.recent(t0 + 3 * MS), 40 * MS);
        // Still remembered through the next window.
        latency.record(7 * MS, t0 + WINDOW + MS);
        assert_eq!(latency.recent(t0 + WINDOW + WINDOW / 2), 40 * MS);
        // Then only the later write is.
        assert_eq!(latency.recent(t0 + 2 * WINDOW + MS), 7 * MS);
        // After two quiet windows, nothing.
        assert_eq!(latency.recent(t0 + 4 * WINDOW + MS), Duration::ZERO);
    }

    #[test]
    fn a_record_from_an_earlier_window_counts_in_the_current_one() {
        let latency = WriteLatency::default();
        let t0 = latency.started;
        latency.record(MS, t0 + WINDOW + MS);
        latency.record(30 * MS, t0 + MS);
        assert_eq!(latency.recent(t0 + WINDOW + 2 * MS), 30 * MS);
    }
}
