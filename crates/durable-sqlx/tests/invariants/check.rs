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
//! - `settled`: every stored task ended `completed`, `failed` or `cancelled` (nothing left
//!   `pending` or `processing` once faults stopped and clean runtimes ran for a while).
//! - `failed-has-error`: every `failed` row has a `last_error`.
//! - `attempts`: no row and no execution exceeds `max_attempts`; attempts start at 1.
//! - `completed-by-run`: a `completed` row was completed by an execution of that very attempt
//!   and owner that returned `Ok`.
//! - `failed-by-run`: a `failed` row whose error is not a lease expiry was failed by an
//!   execution of that attempt and owner that did not return `Ok`.
//! - `one-run-per-fence`: no attempt (task, owner, attempt) ran twice.
//! - `claimed-before-run`: every execution's fence was handed to its runtime by a claim or
//!   a claimed insert that returned `Ok` (nothing runs on a claim it was told failed).
//! - `exclusive-lease`: two executions of one task overlap only if the earlier one's lease
//!   could have expired before the later one started.
//! - `lost-lease-stops`: once a heartbeat answer tells a runtime an attempt's lease is lost,
//!   that execution stops within the cancel grace (plus slack).
//! - `heartbeat-covers-running`: every heartbeat of a runtime includes every attempt it is
//!   running (an attempt it forgot keeps running without a lease).
//! - `shutdown-stops`: when `shutdown` returns, the runtime runs nothing (no execution of
//!   it still running, `running()` is 0), and it returns within its bound.
//! - `cancel-wins`: a task whose cancel returned `true` ends `cancelled`, and no execution
//!   of it starts afterwards.
//!
//! Notes recorded while the iteration ran (`running()` not back to 0, lost capacity,
//! unsettled rows at the deadline) are added under their own rule names.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use durable_core::{Fence, TaskId, TaskRecord, TaskState, WorkerId};

use crate::faults::Journal;
use crate::process::End;
use crate::tasks::{Execution, Outcome};

/// Slack for comparing the test's clock with the database's.
const TOLERANCE: Duration = Duration::from_millis(50);
/// How long past its cancel grace a stopped attempt may take to be dropped.
const STOP_SLACK: Duration = Duration::from_millis(1000);
/// How long after an execution starts its runtime's heartbeats must include it (the list
/// is taken just before the call is recorded).
const LISTED_WITHIN: Duration = Duration::from_millis(50);
/// Violations shown per rule.
const SHOWN: usize = 6;

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
    pub submissions: Vec<Submission>,
    pub rows: HashMap<TaskId, TaskRecord>,
    pub executions: Vec<Execution>,
    pub journal: Journal,
    pub ends: HashMap<u32, End>,
    /// Cancels that returned `true`, and when.
    pub cancels: Vec<(TaskId, Instant)>,
    /// `(rule, detail)` noted while running.
    pub notes: Vec<(&'static str, String)>,
}

#[derive(Default)]
struct Findings {
    lines: Vec<String>,
    per_rule: HashMap<&'static str, usize>,
}

impl Findings {
    fn add(&mut self, rule: &'static str, detail: String) {
        let n = self.per_rule.entry(rule).or_insert(0);
        *n += 1;
        if *n <= SHOWN {
            self.lines.push(format!("[{rule}] {detail}"));
        }
    }

    fn finish(mut self) -> Vec<String> {
        let mut more: Vec<_> = self.per_rule.iter().filter(|(_, &n)| n > SHOWN).collect();
        more.sort();
        for (rule, n) in more {
            self.lines.push(format!("[{rule}] ... {} more", n - SHOWN));
        }
        self.lines
    }
}

impl Evidence {
    fn ms(&self, at: Instant) -> String {
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
    fn end(&self, e: &Execution) -> Option<Instant> {
        match self.ends.get(&e.incarnation) {
            Some(End::Crashed(at)) => Some(e.end.map_or(*at, |end| end.min(*at))),
            _ => e.end,
        }
    }

    fn describe(&self, e: &Execution) -> String {
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

    /// Every execution of a task, in order: what the reader of a violation needs first.
    fn history(&self, id: TaskId) -> String {
        let mut runs: Vec<_> = self.executions.iter().filter(|e| e.task == id).collect();
        runs.sort_by_key(|e| e.start);
        let runs: Vec<_> = runs
            .iter()
            .map(|e| {
                let end = self
                    .end(e)
                    .map_or_else(|| "never".to_owned(), |t| self.ms(t));
                format!(
                    "a{} p{} {:?} {:?} {}..{end}",
                    e.attempt,
                    e.incarnation,
                    e.fate,
                    e.outcome,
                    self.ms(e.start)
                )
            })
            .collect();
        format!("[{}]", runs.join("; "))
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

/// Every violated invariant, one line each (a few per rule).
pub fn check(ev: &Evidence) -> Vec<String> {
    let mut f = Findings::default();
    for (rule, detail) in &ev.notes {
        f.add(rule, detail.clone());
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
    executions(ev, &runs, &fence, &mut f);
    heartbeats(ev, &fence, &mut f);
    for (&incarnation, end) in &ev.ends {
        let End::Stopped(stop) = end else { continue };
        let Some(returned) = stop.returned else {
            f.add(
                "shutdown-stops",
                format!(
                    "p{incarnation}: shutdown({:?}) began at {} and did not return",
                    stop.grace,
                    ev.ms(stop.began)
                ),
            );
            continue;
        };
        if stop.running_after != 0 {
            f.add(
                "shutdown-stops",
                format!(
                    "p{incarnation}: running() = {} after shutdown({:?}) returned ({:?})",
                    stop.running_after, stop.grace, stop.report
                ),
            );
        }
        for e in ev
            .executions
            .iter()
            .filter(|e| e.incarnation == incarnation)
        {
            if ev.end(e).is_none_or(|end| end > returned) {
                f.add(
                    "shutdown-stops",
                    format!(
                        "{} still running when shutdown({:?}) returned at {}",
                        ev.describe(e),
                        stop.grace,
                        ev.ms(returned)
                    ),
                );
            }
        }
    }
    for (id, at) in &ev.cancels {
        let state = ev.rows.get(id).map(|r| r.state);
        if state != Some(TaskState::Cancelled) {
            f.add(
                "cancel-wins",
                format!("task {id} cancelled at {} ends {state:?}", ev.ms(*at)),
            );
        }
        for e in runs.get(id).into_iter().flatten().filter(|e| e.start > *at) {
            f.add(
                "cancel-wins",
                format!(
                    "{} started after its cancel at {}",
                    ev.describe(e),
                    ev.ms(*at)
                ),
            );
        }
    }
    f.finish()
}

fn rows(ev: &Evidence, runs: &HashMap<TaskId, Vec<&Execution>>, f: &mut Findings) {
    for s in &ev.submissions {
        let Some(r) = ev.rows.get(&s.id) else {
            if s.ack == Ack::Stored {
                f.add(
                    "stored",
                    format!(
                        "task {} ({}) acknowledged but not in the database",
                        s.index, s.id
                    ),
                );
            }
            continue;
        };
        if !r.state.is_terminal() {
            f.add(
                "settled",
                format!(
                    "task {} ended {}; runs {}",
                    s.index,
                    ev.row(r),
                    ev.history(s.id)
                ),
            );
        }
        if r.state == TaskState::Failed && r.last_error.as_deref().is_none_or(str::is_empty) {
            f.add(
                "failed-has-error",
                format!("task {} is {}", s.index, ev.row(r)),
            );
        }
        if r.attempts > r.max_attempts {
            f.add("attempts", format!("task {} row is {}", s.index, ev.row(r)));
        }
        let inc = ev.incarnation(r.lease_owner);
        let by = |ok: bool| {
            runs.get(&s.id).into_iter().flatten().any(|e| {
                Some(e.incarnation) == inc
                    && e.attempt == r.attempts
                    && (e.outcome == Outcome::Ok) == ok
                    && e.outcome != Outcome::Running
            })
        };
        match r.state {
            TaskState::Completed if !by(true) => {
                f.add("completed-by-run", format!("task {} is {} but no execution of that attempt and owner returned Ok; runs {}", s.index, ev.row(r), ev.history(s.id)));
            }
            TaskState::Failed
                if !r
                    .last_error
                    .as_deref()
                    .is_some_and(|m| m.contains("lease expired"))
                    && !by(false) =>
            {
                f.add(
                    "failed-by-run",
                    format!(
                        "task {} is {} but no execution of that attempt and owner failed; runs {}",
                        s.index,
                        ev.row(r),
                        ev.history(s.id)
                    ),
                );
            }
            _ => {}
        }
    }
}

fn executions(
    ev: &Evidence,
    runs: &HashMap<TaskId, Vec<&Execution>>,
    fence: &dyn Fn(&Execution) -> Option<Fence>,
    f: &mut Findings,
) {
    let delivered: HashSet<Fence> = ev.journal.delivered.iter().map(|g| g.fence).collect();
    let mut valid_until: HashMap<Fence, Instant> = HashMap::new();
    for g in &ev.journal.granted {
        let until = g.at + ev.lease;
        valid_until
            .entry(g.fence)
            .and_modify(|u| *u = (*u).max(until))
            .or_insert(until);
    }
    let mut seen = HashSet::new();
    for e in &ev.executions {
        if e.attempt == 0 || e.attempt > e.max_attempts {
            f.add("attempts", ev.describe(e));
        }
        let Some(fe) = fence(e) else {
            f.add(
                "claimed-before-run",
                format!("{}: unknown owner", ev.describe(e)),
            );
            continue;
        };
        if !seen.insert(fe) {
            f.add("one-run-per-fence", format!("{} ran twice", ev.describe(e)));
        }
        if !delivered.contains(&fe) {
            f.add(
                "claimed-before-run",
                format!("{} without a claim that returned Ok", ev.describe(e)),
            );
        }
    }
    for list in runs.values() {
        let mut list = list.clone();
        list.sort_by_key(|e| e.start);
        for (i, first) in list.iter().enumerate() {
            let Some(until) = fence(first).and_then(|fe| valid_until.get(&fe).copied()) else {
                continue;
            };
            let first_end = ev.end(first);
            for later in &list[i + 1..] {
                let overlaps = first_end.is_none_or(|end| later.start < end);
                if overlaps && later.start + TOLERANCE < until {
                    f.add(
                        "exclusive-lease",
                        format!(
                            "{} started while {} still held its lease (valid until at least {})",
                            ev.describe(later),
                            ev.describe(first),
                            ev.ms(until)
                        ),
                    );
                }
            }
        }
    }
}

fn heartbeats(ev: &Evidence, fence: &dyn Fn(&Execution) -> Option<Fence>, f: &mut Findings) {
    let by_fence: HashMap<Fence, &Execution> = ev
        .executions
        .iter()
        .filter_map(|e| fence(e).map(|fe| (fe, e)))
        .collect();
    for beat in &ev.journal.beats {
        let held: HashSet<Fence> = beat.held.iter().copied().collect();
        for e in ev
            .executions
            .iter()
            .filter(|e| e.incarnation == beat.incarnation)
        {
            let running =
                e.start + LISTED_WITHIN < beat.at && ev.end(e).is_none_or(|end| end > beat.at);
            if running && fence(e).is_some_and(|fe| !held.contains(&fe)) {
                f.add(
                    "heartbeat-covers-running",
                    format!(
                        "heartbeat of p{} at {} left out {}",
                        beat.incarnation,
                        ev.ms(beat.at),
                        ev.describe(e)
                    ),
                );
            }
        }
        let Some((told, still)) = &beat.answer else {
            continue;
        };
        let still: HashSet<Fence> = still.iter().copied().collect();
        for lost in held.difference(&still) {
            let Some(e) = by_fence.get(lost) else {
                continue;
            };
            let deadline = *told + ev.cancel_grace + STOP_SLACK;
            if e.start < *told && ev.end(e).is_none_or(|end| end > deadline) {
                f.add(
                    "lost-lease-stops",
                    format!(
                        "{} kept running after p{} was told at {} its lease was lost",
                        ev.describe(e),
                        beat.incarnation,
                        ev.ms(*told)
                    ),
                );
            }
        }
    }
}
