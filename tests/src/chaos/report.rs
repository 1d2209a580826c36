//! What a scenario run yields: its [`Report`] (figures and failed checks), the
//! [`Recorder`] a scenario fills it through, its [`Verdict`], and the table of all of them.

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::progress;
use crate::backend::Backend;

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
    pub(super) fn new(scenario: &'static str, backend: Backend) -> Recorder {
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

    pub(super) fn snapshot(&self) -> Report {
        self.with(|r| r.clone())
    }
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
