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
mod scenarios;

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::Backend;

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

/// Whether a scenario passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every check held and nothing was lost.
    Passed,
    /// Something failed (the reasons).
    Failed(Vec<String>),
    /// Not run (the reason): PostgreSQL not configured, or a PostgreSQL-only scenario.
    Skipped(String),
}

/// The figures and findings of one scenario on one backend.
#[derive(Debug, Clone)]
pub struct Report {
    /// Scenario name.
    pub scenario: &'static str,
    /// Backend.
    pub backend: Backend,
    /// Requests acknowledged (2xx with a task id).
    pub acknowledged: usize,
    /// Tasks `completed` at the end.
    pub completed: usize,
    /// Acknowledged (or stored) work that never completed, or a stored user without email.
    pub lost: usize,
    /// `sent_emails` rows beyond one per email.
    pub duplicate_rows: usize,
    /// Tasks that ran more than once (`attempts > 1`).
    pub reran: usize,
    /// Emails whose simulated send happened more than once (server logs).
    pub duplicate_sends: usize,
    /// The scenario's recovery time (what it measures is in the notes and the docs).
    pub recovery: Option<Duration>,
    /// Scenario-specific figures.
    pub notes: Vec<String>,
    /// Failed checks.
    pub failures: Vec<String>,
    /// Why it was not run.
    pub skipped: Option<String>,
    /// Wall time.
    pub elapsed: Duration,
}

impl Report {
    fn new(scenario: &'static str, backend: Backend) -> Report {
        Report {
            scenario,
            backend,
            acknowledged: 0,
            completed: 0,
            lost: 0,
            duplicate_rows: 0,
            reran: 0,
            duplicate_sends: 0,
            recovery: None,
            notes: Vec::new(),
            failures: Vec::new(),
            skipped: None,
            elapsed: Duration::ZERO,
        }
    }

    /// Passed, failed (lost > 0 counts as a failure) or skipped.
    pub fn verdict(&self) -> Verdict {
        if let Some(reason) = &self.skipped {
            if self.failures.is_empty() {
                return Verdict::Skipped(reason.clone());
            }
        }
        let mut failures = self.failures.clone();
        if self.lost > 0 {
            failures.push(format!("{} acknowledged tasks lost", self.lost));
        }
        if failures.is_empty() {
            Verdict::Passed
        } else {
            Verdict::Failed(failures)
        }
    }

    /// The one-line result.
    pub fn line(&self) -> String {
        let verdict = match self.verdict() {
            Verdict::Passed => "PASS".to_owned(),
            Verdict::Failed(reasons) => format!("FAIL ({})", reasons.join("; ")),
            Verdict::Skipped(reason) => format!("SKIP ({reason})"),
        };
        format!(
            "chaos {:<20} {:<8} {verdict}: acknowledged {}, completed {}, lost {}, duplicate rows {}, \
             ran >1: {} tasks / {} duplicate sends, recovery {}, took {:.1}s{}{}",
            self.scenario,
            self.backend,
            self.acknowledged,
            self.completed,
            self.lost,
            self.duplicate_rows,
            self.reran,
            self.duplicate_sends,
            self.recovery.map_or_else(|| "-".to_owned(), seconds),
            self.elapsed.as_secs_f64(),
            if self.notes.is_empty() { "" } else { "; " },
            self.notes.join("; ")
        )
    }
}

fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// A scenario's handle on its report: cheap to clone, usable after a panic.
#[derive(Debug, Clone)]
pub struct Recorder(Arc<Mutex<Report>>);

impl Recorder {
    fn new(scenario: &'static str, backend: Backend) -> Recorder {
        Recorder(Arc::new(Mutex::new(Report::new(scenario, backend))))
    }

    /// Changes the report.
    pub fn with<T>(&self, f: impl FnOnce(&mut Report) -> T) -> T {
        f(&mut self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Adds a note (a figure worth printing).
    pub fn note(&self, note: impl Into<String>) {
        let note = note.into();
        self.with(|r| r.notes.push(note));
    }

    /// Records a failed check unless `ok`; returns `ok`.
    pub fn check(&self, ok: bool, what: impl FnOnce() -> String) -> bool {
        if !ok {
            let what = what();
            progress(&format!("check failed: {what}"));
            self.with(|r| r.failures.push(what));
        }
        ok
    }

    /// Marks the scenario as not run.
    pub fn skip(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.with(|r| r.skipped = Some(reason));
    }

    fn snapshot(&self) -> Report {
        self.with(|r| r.clone())
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

/// Whether every report passed or was skipped.
pub fn all_passed(reports: &[Report]) -> bool {
    reports
        .iter()
        .all(|r| !matches!(r.verdict(), Verdict::Failed(_)))
}

/// The reports as a markdown table.
pub fn table(reports: &[Report]) -> String {
    let mut out = String::new();
    out.push_str(
        "| scenario | backend | result | acknowledged | completed | lost | duplicate side effects | ran more than once | time to recover | figures |\n",
    );
    out.push_str("|---|---|---|---:|---:|---:|---:|---:|---:|---|\n");
    for r in reports {
        let result = match r.verdict() {
            Verdict::Passed => "pass".to_owned(),
            Verdict::Failed(reasons) => format!("**FAIL**: {}", reasons.join("; ")),
            Verdict::Skipped(reason) => format!("skipped: {reason}"),
        };
        let skipped = matches!(r.verdict(), Verdict::Skipped(_));
        let cell = |n: usize| {
            if skipped {
                "-".to_owned()
            } else {
                n.to_string()
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.backend,
            result.replace('|', "\\|"),
            cell(r.acknowledged),
            cell(r.completed),
            cell(r.lost),
            cell(r.duplicate_rows),
            if skipped {
                "-".to_owned()
            } else {
                format!("{} ({} dup. sends)", r.reran, r.duplicate_sends)
            },
            r.recovery.map_or_else(|| "-".to_owned(), seconds),
            r.notes.join("; ").replace('|', "\\|"),
        );
    }
    out
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Passed => f.write_str("pass"),
            Verdict::Failed(reasons) => write!(f, "FAIL: {}", reasons.join("; ")),
            Verdict::Skipped(reason) => write!(f, "skipped: {reason}"),
        }
    }
}
