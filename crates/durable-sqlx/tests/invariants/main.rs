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
//!   so a replay reproduces a failure often, not always (run it a few times).
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
mod faulty;
mod leases;
mod plan;
mod process;
mod scenario;
mod selftest;
mod settle;
mod tasks;
mod timeline;

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Instant;

use db::Kind;
use plan::Settings;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    run_all(Kind::Sqlite).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    if let Some(url) = durable_testkit::database_url() {
        run_all(Kind::Postgres(url)).await;
    }
}

/// Runs every iteration of the settings on one backend; panics with the failing seeds.
pub async fn run_all(kind: Kind) {
    tasks::quiet_planned_panics();
    let settings = Settings::from_env();
    let started = Instant::now();
    let mut failures = Vec::new();
    for &seed in &settings.seeds {
        let began = Instant::now();
        let (summary, violations) = scenario::iteration(&kind, seed, &settings.off).await;
        let verdict = if violations.is_empty() {
            "ok"
        } else {
            "FAILED"
        };
        // Straight to stderr: libtest captures the output of passing tests, and a long run
        // should show its progress.
        let _ = writeln!(
            std::io::stderr(),
            "invariants[{}] seed={seed:#018x} {verdict} in {:.1}s: {summary}",
            kind.name(),
            began.elapsed().as_secs_f64()
        );
        if !violations.is_empty() {
            failures.push((seed, summary, violations));
        }
    }
    let off = if settings.off.is_empty() {
        String::new()
    } else {
        format!(" (off: {})", settings.off)
    };
    let _ = writeln!(
        std::io::stderr(),
        "invariants[{}]: {} iterations in {:.0}s, {} failed{off}",
        kind.name(),
        settings.seeds.len(),
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    if failures.is_empty() {
        return;
    }
    let mut message = String::new();
    for (seed, summary, violations) in &failures {
        let off = if settings.off.is_empty() {
            String::new()
        } else {
            format!("DURABLE_INVARIANT_OFF={} ", settings.off)
        };
        let _ = write!(
            message,
            "\nseed {seed:#018x} ({summary})\n  replay: DURABLE_INVARIANT_SEED={seed:#x} {off}cargo test -p durable-sqlx --all-features --test invariants {} -- --nocapture\n",
            kind.name()
        );
        for v in violations {
            let _ = writeln!(message, "  {v}");
        }
    }
    panic!(
        "{} of {} iterations broke invariants on {}:{message}",
        failures.len(),
        settings.seeds.len(),
        kind.name()
    );
}
