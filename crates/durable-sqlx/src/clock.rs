//! The store's clock: the time its statements take as "now".
//!
//! In production it is the system clock (SQLite: read on the application's side) or the
//! database's (PostgreSQL: `durable_now()`, which is `now()`). A test moves it forward with a
//! [`TestClock`](crate::testing::TestClock): every clone of a store
//! shares one offset, so delays, retries' backoff, leases and anything else the store
//! compares with "now" move together.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

/// The system clock in Unix milliseconds.
pub(crate) fn system_now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// An offset added to the system clock, shared by every clone of one store. Zero unless a
/// test clock moved it; reading it is one relaxed atomic load.
#[derive(Debug, Clone, Default)]
pub(crate) struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The store's "now" in Unix milliseconds.
    pub(crate) fn now_ms(&self) -> i64 {
        system_now_ms().saturating_add(self.offset_ms())
    }

    /// The store's "now".
    pub(crate) fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.now_ms()).unwrap_or_else(Utc::now)
    }

    /// How far the clock was moved forward, in milliseconds.
    pub(crate) fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves the clock forward by `ms`; returns the new offset.
    pub(crate) fn advance_ms(&self, ms: i64) -> i64 {
        self.offset_ms
            .fetch_add(ms, Ordering::Relaxed)
            .saturating_add(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advance_moves_every_clone() {
        let clock = Clock::default();
        let clone = clock.clone();
        assert_eq!(clock.offset_ms(), 0);
        assert_eq!(clock.advance_ms(1500), 1500);
        assert_eq!(clone.offset_ms(), 1500);
        let ahead = clone.now_ms() - system_now_ms();
        assert!((1400..=1500).contains(&ahead), "{ahead}");
    }
}
