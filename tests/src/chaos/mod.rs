//! The failure-mode runner (issue 5): ten scenarios that each inject one failure into the
//! real `example-signup` — clients hanging up, SIGKILL, failing/panicking/hanging tasks,
//! deploys, overload, database outages, a stalled worker, killed database backends, two
//! instances, poison rows — and check what the library promises, on SQLite and PostgreSQL.
//!
//! Shared by the `chaos` binary (`cargo run -p durable-tests --bin chaos -- --help`) and the
//! test `tests/chaos.rs` (every scenario in short mode on both backends).
//!
//! Each scenario records figures and failed checks in a [`Report`]; a scenario passes when
//! no check failed and `lost` (acknowledged but never completed) is 0.

pub mod db;
pub mod load;
pub mod logs;
mod report;
mod scenarios;

use std::time::{Duration, Instant};

use crate::backend::Backend;

pub use report::{all_passed, table, Recorder, Report, Verdict};

/// The scenarios, in order: `(name, what it does)`.
pub const SCENARIOS: &[(&str, &str)] = &[
    (
        "request-ends-early",
        "clients hang up 0-30 ms into a request (or mid-request): every stored user gets its email",
    ),
    (
        "crash-mid-task",
        "SIGKILL the server 3 times under load and restart it: every acknowledged signup gets exactly one email",
    ),
    (
        "silent-failures",
        "EMAIL_FAIL_RATE=0.3 plus panicking and hanging tasks: every failed attempt is in the row and the log; exhausted tasks end `failed`",
    ),
    (
        "deploy",
        "SIGTERM under load (rolling restart): exit 0 within the grace, requeued work picked up at once",
    ),
    (
        "overload",
        "offer several times the task capacity: bounded p99 and memory, everything completes; MAX_BACKLOG sheds with 503 + Retry-After",
    ),
    (
        "database-outage",
        "make the database unavailable for seconds under load: no 2xx for unstored work, recovery without a restart",
    ),
    (
        "zombie-worker",
        "SIGSTOP a worker past its lease, let another take over, SIGCONT: the late completion is fenced off",
    ),
    (
        "backend-termination",
        "terminate the app's database backends twice a second under load: the process stays up, throughput recovers (PostgreSQL)",
    ),
    (
        "two-instances",
        "a burst spread over two instances on one database: every task runs exactly once (PostgreSQL)",
    ),
    (
        "poison-input",
        "unknown task type left pending for an instance that knows it; undecodable and oversized payloads: clear errors, `failed` rows; the runtime keeps working",
    ),
];

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Backends, in order.
    pub backends: Vec<Backend>,
    /// Requests per scenario (scenario-specific scaling; default 2000, short 400).
    pub requests: Option<usize>,
    /// Load duration of the time-based scenarios (default 20 s, short 5 s).
    pub duration: Option<Duration>,
    /// Only the scenarios whose name contains this.
    pub only: Option<String>,
    /// Short mode: small numbers, same checks.
    pub short: bool,
}

impl Options {
    /// Every scenario, short mode, both backends: what CI runs.
    pub fn short() -> Options {
        Options {
            backends: vec![Backend::Sqlite, Backend::Postgres],
            requests: None,
            duration: None,
            only: None,
            short: true,
        }
    }

    /// The figures to run for each scenario.
    pub fn params(&self) -> Params {
        let (requests, duration) = if self.short {
            (400, Duration::from_secs(5))
        } else {
            (2000, Duration::from_secs(20))
        };
        Params {
            short: self.short,
            requests: self.requests.unwrap_or(requests).max(10),
            duration: self
                .duration
                .unwrap_or(duration)
                .max(Duration::from_secs(2)),
        }
    }

    /// The selected scenario names.
    pub fn selected(&self) -> Vec<&'static str> {
        SCENARIOS
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| self.only.as_deref().is_none_or(|only| name.contains(only)))
            .collect()
    }
}

/// Sizes a scenario runs with.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Short mode.
    pub short: bool,
    /// Requests (each scenario scales it to its needs).
    pub requests: usize,
    /// Load duration.
    pub duration: Duration,
}

impl Params {
    /// `short` in short mode, else `long`.
    pub fn pick<T>(&self, short: T, long: T) -> T {
        if self.short {
            short
        } else {
            long
        }
    }
}

/// Prints a progress line to stderr when `CHAOS_VERBOSE` is set.
pub fn progress(message: &str) {
    if std::env::var_os("CHAOS_VERBOSE").is_some_and(|v| !v.is_empty()) {
        eprintln!("  chaos: {message}");
    }
}

/// What a scenario gets.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) backend: Backend,
    pub(crate) params: Params,
    pub(crate) rec: Recorder,
}

/// Runs the selected scenarios one after the other (they measure timings: no overlap),
/// printing one result line each; returns their reports.
pub async fn run(options: &Options) -> Vec<Report> {
    let params = options.params();
    let mut reports = Vec::new();
    for scenario in options.selected() {
        for &backend in &options.backends {
            let rec = Recorder::new(scenario, backend);
            let ctx = Ctx {
                backend,
                params,
                rec: rec.clone(),
            };
            let started = Instant::now();
            let limit = params.pick(Duration::from_secs(150), Duration::from_secs(600));
            let mut handle = tokio::spawn(scenarios::run(scenario, ctx));
            match tokio::time::timeout(limit, &mut handle).await {
                Ok(Ok(())) => {}
                Ok(Err(joined)) => {
                    let message = if joined.is_panic() {
                        let panic = joined.into_panic();
                        panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "non-string panic".to_owned())
                    } else {
                        joined.to_string()
                    };
                    let first = message.lines().next().unwrap_or_default().to_owned();
                    rec.with(|r| r.failures.push(format!("panicked: {first}")));
                }
                Err(_) => {
                    handle.abort();
                    let _ = handle.await;
                    rec.with(|r| r.failures.push(format!("did not finish within {limit:?}")));
                }
            }
            let mut report = rec.snapshot();
            report.elapsed = started.elapsed();
            println!("{}", report.line());
            reports.push(report);
        }
    }
    reports
}
