//! Every failure-mode scenario of `durable_tests::chaos`, short mode, on SQLite and
//! PostgreSQL (the PostgreSQL runs need `DURABLE_TEST_DATABASE_URL`; skipped without it,
//! except in CI where they are required). The long mode is the `chaos` binary:
//! `cargo run -p durable-tests --bin chaos`.
//!
//! One test runs them one after the other: they measure latencies and recovery times, so
//! they must not overlap. `CHAOS_ONLY=<name part>` narrows it down when debugging.

use std::time::Instant;

use durable_tests::chaos::{self, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_mode_short() {
    let mut options = Options::short();
    options.only = std::env::var("CHAOS_ONLY").ok().filter(|v| !v.is_empty());
    let started = Instant::now();
    let reports = chaos::run(&options).await;
    println!("\n{}", chaos::table(&reports));
    println!(
        "{} scenario runs in {:.0} s",
        reports.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(!reports.is_empty(), "no scenario matched CHAOS_ONLY");
    assert!(
        chaos::all_passed(&reports),
        "failure-mode scenarios failed:\n{}",
        reports
            .iter()
            .filter(|r| matches!(r.verdict(), chaos::Verdict::Failed(_)))
            .map(chaos::Report::line)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
