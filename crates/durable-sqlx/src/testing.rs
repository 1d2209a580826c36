//! Moving a store's time forward in tests.
//!
//! A [`TestClock`] is taken from a store ([`SqliteStore::test_clock`](crate::sqlite::SqliteStore::test_clock),
//! `PostgresStore::test_clock`) and moves the time that store's statements take as "now":
//! after `advance(d)`, a task delayed by up to `d` is due, a retry waiting out its backoff
//! is due, a lease that had less than `d` left has expired (the next rescue hands the task
//! back), and a task enqueued with a delay counts it from the moved time. Time never moves
//! back.
//!
//! - **SQLite** reads the time on the application's side: the offset lives in the store and
//!   is shared by its clones (every runtime and client built on them).
//! - **PostgreSQL** takes it from `durable_now()`; the clock redefines that function in the
//!   store's schema (the first of its `search_path`) as `now()` plus the offset. Every store
//!   on that schema moves, so give each test a schema of its own.
//!
//! # Examples
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use durable_core::store::WorkerStore;
//! use durable_sqlx::sqlite::SqliteStore;
//!
//! let store = SqliteStore::connect("sqlite::memory:").await?;
//! store.migrate().await?;
//! let clock = store.test_clock();
//! let before = store.now();
//! clock.advance(Duration::from_secs(3600)).await?; // an hour later, for this store
//! assert!(store.now() - before >= chrono::Duration::hours(1));
//! assert_eq!(clock.offset(), Duration::from_secs(3600));
//! # Ok(()) }
//! # #[cfg(not(feature = "sqlite"))] fn main() {}
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::error::Result;

/// Moves one store's time forward, for tests. Cheap to clone.
///
/// See the [module documentation](self) for what moves and how.
#[derive(Debug, Clone)]
pub struct TestClock {
    clock: Clock,
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    #[cfg(feature = "sqlite")]
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
}

/// PostgreSQL advances redefine the function one at a time, so it ends at the latest offset
/// even when clocks of one store advance at once.
#[cfg(feature = "postgres")]
static REDEFINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl TestClock {
    /// Moves the store's time forward by `by` (at most about 100 years at once).
    ///
    /// # Errors
    ///
    /// PostgreSQL: redefining `durable_now()` failed (a lost connection, or a schema not
    /// migrated to version 8); the clock is then left where it was.
    // Async for PostgreSQL, which redefines a function; a SQLite-only build awaits nothing.
    #[cfg_attr(not(feature = "postgres"), allow(clippy::unused_async))]
    pub async fn advance(&self, by: Duration) -> Result<()> {
        let ms = crate::util::delay_ms(by);
        match &self.backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite => {
                self.clock.advance_ms(ms);
                Ok(())
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(pool) => {
                let _one_at_a_time = REDEFINE.lock().await;
                let total = self.clock.offset_ms().saturating_add(ms);
                crate::postgres::set_durable_now(pool, total).await?;
                self.clock.advance_ms(ms);
                Ok(())
            }
        }
    }

    /// The store's "now": the system clock plus the offset.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// How far the clock was moved forward in all.
    pub fn offset(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.clock.offset_ms()).unwrap_or(0))
    }
}

#[cfg(feature = "sqlite")]
impl crate::sqlite::SqliteStore {
    /// A clock that moves this store's time (and its clones') forward, for tests.
    pub fn test_clock(&self) -> TestClock {
        TestClock {
            clock: self.inner.clock.clone(),
            backend: Backend::Sqlite,
        }
    }
}

#[cfg(feature = "postgres")]
impl crate::postgres::PostgresStore {
    /// A clock that moves the time of this store's schema forward, for tests. Every store on
    /// that schema sees the statements' time move; the application-side time (a client's
    /// delays) moves in this store and its clones.
    pub fn test_clock(&self) -> TestClock {
        TestClock {
            clock: self.clock.clone(),
            backend: Backend::Postgres(self.pool().clone()),
        }
    }
}
