//! The invariants, checked once an iteration has settled, over the final rows, the log of
//! executions and the store journal.
//!
//! What "held a valid lease" means here: the database grants a lease at its "now" during a
//! claim or heartbeat call, so a grant whose call began at `t` is valid at least until
//! `t + lease`; fencing lets no one else take the row before that lease expired. An
//! execution whose lease ran out (its heartbeats failed or came late) may legitimately still
//! be running when another worker starts the task again — at-least-once — so overlap is only
//! a violation while the first execution's lease was certainly still valid.
//!
//! Rules:
//! - `stored`: every enqueue that was acknowledged is in the database.
//! - `settled`: every stored task ended `completed`, `failed` or `cancelled`, or is
//!   `pending` with a reason: a `last_error` and a `run_at` still to come (a retry not yet
//!   due). Nothing is left `processing`, nor due and unclaimed, once faults stopped and clean
//!   runtimes ran for a while.
//! - `failed-has-error`: every `failed` row has a `last_error`.
//! - `attempts`: no row and no execution exceeds `max_attempts`; attempts start at 1; a
//!   task runs at most `max_attempts` times besides the runs a shutdown handed back.
//! - `completed-by-run`: a `completed` row was completed by an execution of that very attempt
//!   and owner that returned `Ok`.
//! - `failed-by-run`: a `failed` row whose error is not a lease expiry was failed by an
//!   execution of that attempt and owner that did not return `Ok`.
//! - `one-run-per-fence`: no attempt (task, owner, attempt) ran twice.
//! - `attempt-reused`: an attempt number runs again (on another owner) only after a
//!   shutdown's requeue handed it back uncounted.
//! - `claimed-before-run`: every execution's fence was handed to its runtime by a claim or
//!   a claimed insert that returned `Ok` (nothing runs on a claim it was told failed).
//! - `claims-run`: every claim a runtime was told of (claim or claimed insert that returned
//!   `Ok`) is run, unless its process crashed or began shutting down, its task was
//!   cancelled, or a heartbeat answer told the runtime its lease was lost (a heartbeat
//!   delayed past the lease), right after, or meanwhile every one of its process's slots ran
//!   another attempt (a task claimed ahead waits for a slot).
//! - `exclusive-lease`: two executions of one task overlap only if the earlier one's lease
//!   could have expired before the later one started.
//! - `lost-lease-stops`: once a heartbeat answer tells a runtime an attempt's lease is lost,
//!   that execution stops within the cancel grace (plus slack).
//! - `heartbeat-covers-running`: every heartbeat of a runtime includes every attempt it is
//!   running (an attempt it forgot keeps running without a lease).
//! - `concurrency`: no runtime ever runs more attempts at once than its concurrency, nor
//!   more of the `narrow` queue than its limit on it.
//! - `shutdown-stops`: when `shutdown` returns, the runtime runs nothing (no execution of
//!   it still running, `running()` is 0), and it returns within its bound.
//! - `cancel-wins`: a task whose cancel returned `true` ends `cancelled`, and no execution
//!   of it starts afterwards.
//!
//! Notes recorded while the iteration ran (`running()` not back to 0, lost capacity,
//! unsettled rows at the deadline) are added under their own rule names.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use durable_core::store::{Fence, TaskRecord};
use durable_core::{TaskId, TaskState, WorkerId};

use crate::faults::Journal;
use crate::leases;
use crate::process::End;
use crate::tasks::{Execution, Outcome};

/// Violations shown per rule.
const SHOWN: usize = 6;
/// Task histories shown after the violations.
const HISTORIES: usize = 8;

/// Whether an enqueue was acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// No answer (the process died, or the wait ended).
    Unknown,
    Stored,
    Refused,
}

#[derive(Debug, Clone)]
pub struct Submission {
    pub id: TaskId,
    pub index: u32,
    pub ack: Ack,
}

/// Everything an iteration observed.
#[derive(Debug)]
pub struct Evidence {
    pub origin: Instant,
    pub lease: Duration,
    pub cancel_grace: Duration,
    /// Each runtime's limit on attempts at once, and on the `narrow` queue.
    pub concurrency: usize,
    pub narrow: Option<usize>,
    pub submissions: Vec<Submission>,
    pub rows: HashMap<TaskId, TaskRecord>,
    pub executions: Vec<Execution>,
    pub journal: Journal,
    pub ends: HashMap<u32, End>,
    /// Cancels that returned `true`, and when.
    pub cancels: Vec<(TaskId, Instant)>,
    /// Observations made while running.
    pub notes: Vec<Note>,
}

/// A violation seen while the iteration ran rather than in its evidence.
#[derive(Debug, Clone)]
pub struct Note {
    pub rule: &'static str,
    /// The process it is about.
    pub process: Option<u32>,
    pub detail: String,
}

/// Violations, a few per rule, and the tasks they are about.
#[derive(Default)]
pub struct Findings {
    lines: Vec<String>,
    per_rule: HashMap<&'static str, usize>,
    tasks: Vec<TaskId>,
}

impl Findings {
    pub fn add(&mut self, rule: &'static str, task: Option<TaskId>, detail: String) {
        let n = self.per_rule.entry(rule).or_insert(0);
        *n += 1;
        if *n <= SHOWN {
            let mut line = detail;
            line.insert_str(0, &format!("[{rule}] "));
            self.lines.push(line);
            self.tasks.extend(task.filter(|t| !self.tasks.contains(t)));
        }
    }

    /// The violations, then the history of the tasks involved (rows, runs, leases).
    fn finish(mut self, ev: &Evidence) -> Vec<String> {
        let mut more: Vec<_> = self.per_rule.iter().filter(|(_, &n)| n > SHOWN).collect();
        more.sort();
        for (rule, n) in more {
            self.lines.push(format!("[{rule}] ... {} more", n - SHOWN));
        }
        if !self.lines.is_empty() {
            let valid = leases::valid_until(ev);
            for id in self.tasks.iter().take(HISTORIES) {
                self.lines.push(ev.history(*id, &valid));
            }
        }
        self.lines
    }
}

impl Evidence {
    pub fn ms(&self, at: Instant) -> String {
        format!(
            "{}ms",
            at.saturating_duration_since(self.origin).as_millis()
        )
    }

    fn incarnation(&self, owner: Option<WorkerId>) -> Option<u32> {
        owner.and_then(|o| self.journal.owners.get(&o).copied())
    }

    /// When an execution stopped: a crashed process stops everything at the crash, even if
    /// its futures were dropped a moment later.
    pub fn end(&self, e: &Execution) -> Option<Instant> {
        match self.ends.get(&e.incarnation) {
            Some(End::Crashed(at)) => Some(e.end.map_or(*at, |end| end.min(*at))),
            _ => e.end,
        }
    }

    pub fn describe(&self, e: &Execution) -> String {
        format!(
            "task {} attempt {}/{} on p{} ({:?}, {:?}) {}..{}",
            e.index,
            e.attempt,
            e.max_attempts,
            e.incarnation,
            e.fate,
            e.outcome,
            self.ms(e.start),
            self.end(e)
                .map_or_else(|| "never".to_owned(), |t| self.ms(t)),
        )
    }

    /// A task's final row and every execution of it in order, with the lease each one
    /// certainly held: what the reader of a violation needs first.
    fn history(&self, id: TaskId, valid: &HashMap<Fence, Instant>) -> String {
        let owners: HashMap<u32, WorkerId> =
            self.journal.owners.iter().map(|(o, i)| (*i, *o)).collect();
        let mut runs: Vec<_> = self.executions.iter().filter(|e| e.task == id).collect();
        runs.sort_by_key(|e| e.start);
        let runs: Vec<_> = runs
            .iter()
            .map(|e| {
                let end = self
                    .end(e)
                    .map_or_else(|| "never".to_owned(), |t| self.ms(t));
                let lease = owners
                    .get(&e.incarnation)
                    .and_then(|&owner| {
                        valid.get(&Fence {
                            id,
                            owner,
                            attempt: e.attempt,
                        })
                    })
                    .map_or_else(|| "none".to_owned(), |t| self.ms(*t));
                format!(
                    "a{} p{} {:?} {:?} {}..{end} lease>={lease}",
                    e.attempt,
                    e.incarnation,
                    e.fate,
                    e.outcome,
                    self.ms(e.start)
                )
            })
            .collect();
        let index = self
            .submissions
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.index);
        let row = self
            .rows
            .get(&id)
            .map_or_else(|| "no row".to_owned(), |r| self.row(r));
        format!(
            "history of task {index:?}: {row}; runs: {}",
            runs.join("; ")
        )
    }

    fn row(&self, r: &TaskRecord) -> String {
        format!(
            "{} attempts {}/{} owner {:?} error {:?}",
            r.state,
            r.attempts,
            r.max_attempts,
            self.incarnation(r.lease_owner).map(|i| format!("p{i}")),
            r.last_error
        )
    }
}

/// Every violated invariant, one line each (a few per rule), then the histories of the
/// tasks involved.
pub fn check(ev: &Evidence) -> Vec<String> {
    let mut f = Findings::default();
    for note in &ev.notes {
        f.add(note.rule, None, note.detail.clone());
        // A runtime that lost track of capacity: show the tasks it ran twice at once (a
        // re-claim of its own task while the earlier attempt still ran).
        for task in note
            .process
            .map(|p| leases::overlapping(ev, p))
            .unwrap_or_default()
        {
            f.add(
                "context",
                Some(task),
                format!(
                    "p{}: two attempts of one task at once",
                    note.process.unwrap_or(0)
                ),
            );
        }
    }
    let owner_of: HashMap<u32, WorkerId> =
        ev.journal.owners.iter().map(|(o, i)| (*i, *o)).collect();
    let fence = |e: &Execution| {
        owner_of.get(&e.incarnation).map(|&owner| Fence {
            id: e.task,
            owner,
            attempt: e.attempt,
        })
    };
    let mut runs: HashMap<TaskId, Vec<&Execution>> = HashMap::new();
    for e in &ev.executions {
        runs.entry(e.task).or_default().push(e);
    }
    rows(ev, &runs, &mut f);
    leases::executions(ev, &runs, &fence, &mut f);
    leases::heartbeats(ev, &fence, &mut f);
    leases::concurrency(ev, &mut f);
    leases::shutdowns(ev, &mut f);
    for (id, at) in &ev.cancels {
        let state = ev.rows.get(id).map(|r| r.state);
        if state != Some(TaskState::Cancelled) {
            let detail = format!("task cancelled at {} ends {state:?}", ev.ms(*at));
            f.add("cancel-wins", Some(*id), detail);
        }
        for e in runs.get(id).into_iter().flatten().filter(|e| e.start > *at) {
            let detail = format!(
                "{} started after its cancel at {}",
                ev.describe(e),
                ev.ms(*at)
            );
            f.add("cancel-wins", Some(*id), detail);
        }
    }
    f.finish(ev)
}

/// Whether a row is where it may stay: terminal, or pending with a reason (see `settled`).
fn settled(row: &TaskRecord) -> bool {
    row.state.is_terminal()
        || (row.state == TaskState::Pending
            && row.run_at > chrono::Utc::now()
            && row.last_error.as_deref().is_some_and(|e| !e.is_empty()))
}

fn rows(ev: &Evidence, runs: &HashMap<TaskId, Vec<&Execution>>, f: &mut Findings) {
    for s in &ev.submissions {
        let task = Some(s.id);
        let Some(r) = ev.rows.get(&s.id) else {
            if s.ack == Ack::Stored {
                let detail = format!("task {} acknowledged but not in the database", s.index);
                f.add("stored", task, detail);
            }
            continue;
        };
        let row = || format!("task {} is {}", s.index, ev.row(r));
        if !settled(r) {
            f.add("settled", task, row());
        }
        if r.state == TaskState::Failed && r.last_error.as_deref().is_none_or(str::is_empty) {
            f.add("failed-has-error", task, row());
        }
        if r.attempts > r.max_attempts {
            f.add("attempts", task, row());
        }
        let inc = ev.incarnation(r.lease_owner);
        let by = |ok: bool| {
            runs.get(&s.id).into_iter().flatten().any(|e| {
                Some(e.incarnation) == inc
                    && e.attempt == r.attempts
                    && e.outcome != Outcome::Running
                    && (e.outcome == Outcome::Ok) == ok
            })
        };
        let expired = r
            .last_error
            .as_deref()
            .is_some_and(|m| m.contains("lease expired"));
        match r.state {
            TaskState::Completed if !by(true) => {
                let detail = format!(
                    "{}: no execution of that attempt and owner returned Ok",
                    row()
                );
                f.add("completed-by-run", task, detail);
            }
            TaskState::Failed if !expired && !by(false) => {
                let detail = format!("{}: no execution of that attempt and owner failed", row());
                f.add("failed-by-run", task, detail);
            }
            _ => {}
        }
    }
}
