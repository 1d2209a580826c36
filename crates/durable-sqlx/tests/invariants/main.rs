//! Seeded randomized invariant test of the runtime over the real stores.
//!
//! Each iteration runs 2–3 runtimes ("processes": each its own Tokio runtime and its own
//! connections) on one database with short leases (300–800 ms), behind a store decorator
//! that injects errors, delays and timeouts into every store call. Tasks succeed, fail,
//! panic (before their first await, after one, in their error's `Display`), cancel their
//! own token, time out or run past their lease, as the seed decides per attempt. Runtimes
//! are shut down with small graces, crashed (their Tokio runtime dropped) and restarted
//! meanwhile. Then faults stop, clean runtimes take over, and the final rows, the log of
//! every execution and the journal of leases are checked (the rules are in `check`).
//!
//! Environment:
//! - `DURABLE_INVARIANT_SEED=<n or 0xhex>`: replay one seed (printed on failure). The seed
//!   fixes the plan — tasks, fates, faults per call, crashes — not the thread interleaving,
//!   so a replay usually, not always, reproduces a failure.
//! - `DURABLE_INVARIANT_ITERATIONS=<n>`: iterations per backend (default 2: a long run is
//!   `DURABLE_INVARIANT_ITERATIONS=200`).
//! - `DURABLE_INVARIANT_OFF=<behaviour,...>`: switch behaviours off (see `plan::BEHAVIOURS`)
//!   to look past a known defect.
//! - `DURABLE_TEST_DATABASE_URL`: run on PostgreSQL too (required when `CI` is set).
//!
//! ```sh
//! DURABLE_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   DURABLE_INVARIANT_ITERATIONS=50 cargo test -p durable-sqlx --all-features --test invariants
//! ```

// Items are `pub` inside their modules for the other modules of this test.
#![allow(unreachable_pub)]

mod check;
mod db;
mod faults;
mod plan;
mod process;
mod scenario;
mod selftest;
mod tasks;
mod timeline;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    scenario::run_all(db::Kind::Sqlite).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    if let Some(url) = db::postgres_url() {
        scenario::run_all(db::Kind::Postgres(url)).await;
    }
}
