//! The rules of `check` about executions: who ran what, on which claim, for how long,
//! whether the heartbeats kept track of it, the limits, and what a shutdown left running.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use durable_core::store::Fence;
use durable_core::TaskId;

use crate::check::{Evidence, Findings};
use crate::plan::NARROW;
use crate::process::End;
use crate::tasks::Execution;

/// Slack for comparing the test's clock with the database's.
const TOLERANCE: Duration = Duration::from_millis(50);
/// How long past its cancel grace a stopped attempt may take to be dropped.
const STOP_SLACK: Duration = Duration::from_millis(1000);
/// How long a process may end after a claim and leave it unrun (its runner never polled).
const NEVER_RAN: Duration = Duration::from_millis(500);
/// How soon a task claimed ahead takes a slot given back.
const SLOT_TAKEN: Duration = Duration::from_millis(200);
/// How long after an execution starts its runtime's heartbeats must include it (the list
/// is taken just before the call is recorded).
const LISTED_WITHIN: Duration = Duration::from_millis(50);

/// The lease each fence certainly held: the latest grant's call start plus the lease.
pub fn valid_until(ev: &Evidence) -> HashMap<Fence, Instant> {
    let mut valid: HashMap<Fence, Instant> = HashMap::new();
    for g in &ev.journal.granted {
        let until = g.at + ev.lease;
        valid
            .entry(g.fence)
            .and_modify(|u| *u = (*u).max(until))
            .or_insert(until);
    }
    valid
}

pub fn executions(
    ev: &Evidence,
    runs: &HashMap<TaskId, Vec<&Execution>>,
    fence: &dyn Fn(&Execution) -> Option<Fence>,
    f: &mut Findings,
) {
    let delivered: HashSet<Fence> = ev.journal.delivered.iter().map(|g| g.fence).collect();
    let valid_until = valid_until(ev);
    let mut seen = HashSet::new();
    for e in &ev.executions {
        if e.attempt == 0 || e.attempt > e.max_attempts {
            f.add("attempts", Some(e.task), ev.describe(e));
        }
        let Some(fe) = fence(e) else {
            f.add(
                "claimed-before-run",
                Some(e.task),
                format!("{}: unknown owner", ev.describe(e)),
            );
            continue;
        };
        if !seen.insert(fe) {
            f.add(
                "one-run-per-fence",
                Some(e.task),
                format!("{} ran twice", ev.describe(e)),
            );
        }
        if !delivered.contains(&fe) {
            f.add(
                "claimed-before-run",
                Some(e.task),
                format!("{} without a claim that returned Ok", ev.describe(e)),
            );
        }
    }
    claims_run(ev, &seen, f);
    for list in runs.values() {
        let mut list = list.clone();
        list.sort_by_key(|e| e.start);
        // Every run counts an attempt, but for those a shutdown handed back.
        let counted = list.iter().filter(|e| !requeued(ev, e)).count();
        if let Some(first) = list.first().filter(|e| counted > e.max_attempts as usize) {
            let detail = format!(
                "task {} ran {counted} counted attempts, over its {}",
                first.index, first.max_attempts
            );
            f.add("attempts", Some(first.task), detail);
        }
        for (i, first) in list.iter().enumerate() {
            let first_end = ev.end(first);
            let next = list[i + 1..].iter().find(|e| e.attempt == first.attempt);
            if let Some(next) = next.filter(|n| n.incarnation != first.incarnation) {
                if !requeued(ev, first) {
                    let detail = format!(
                        "{} ran the attempt number of {} again, which no shutdown handed back",
                        ev.describe(next),
                        ev.describe(first)
                    );
                    f.add("attempt-reused", Some(first.task), detail);
                }
            }
            let Some(until) = fence(first).and_then(|fe| valid_until.get(&fe).copied()) else {
                continue;
            };
            for later in &list[i + 1..] {
                let overlaps = first_end.is_none_or(|end| later.start < end);
                if overlaps && later.start + TOLERANCE < until {
                    f.add(
                        "exclusive-lease",
                        Some(first.task),
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

/// Every claim a runtime was told of is run, unless its process ended right after or its
/// task's cancellation came right after (a runtime told to cancel an attempt it has not
/// started yet ends it `cancelled` without running it, as it should), or a heartbeat answer
/// said its lease was lost — each of these after every slot of its process was busy
/// meanwhile, if it came later.
fn claims_run(ev: &Evidence, ran: &HashSet<Fence>, f: &mut Findings) {
    let ours: HashMap<TaskId, u32> = ev.submissions.iter().map(|s| (s.id, s.index)).collect();
    for g in &ev.journal.delivered {
        let Some(index) = ours.get(&g.fence.id) else {
            continue; // a capacity probe's task
        };
        let p = ev.journal.owners.get(&g.fence.owner).copied().unwrap_or(0);
        let process_end = match ev.ends.get(&p) {
            Some(End::Crashed(at)) => Some(*at),
            Some(End::Stopped(stop)) => Some(stop.began),
            None => None,
        };
        let cancelled = ev
            .cancels
            .iter()
            .filter(|(id, _)| *id == g.fence.id)
            .map(|(_, at)| *at)
            .min();
        // A heartbeat answer that told the runtime the lease was lost (a heartbeat delayed
        // past the lease): an attempt still waiting for a slot is dropped, as it should be.
        let lost = ev
            .journal
            .beats
            .iter()
            .filter(|b| b.incarnation == p && b.held.contains(&g.fence))
            .filter_map(|b| b.answer.as_ref())
            .filter(|(_, still)| !still.contains(&g.fence))
            .map(|(at, _)| *at)
            .min();
        let ended = process_end.into_iter().chain(cancelled).chain(lost).min();
        if ended.is_some_and(|end| end < g.at + NEVER_RAN || slots_held(ev, p, g.at, end))
            || ran.contains(&g.fence)
        {
            continue;
        }
        let detail = format!(
            "task {index} attempt {} claimed by p{p} at {} never ran",
            g.fence.attempt,
            ev.ms(g.at)
        );
        f.add("claims-run", Some(g.fence.id), detail);
    }
}

/// Whether every slot of process `p` ran an attempt from just after `from` until `until`
/// (checked after each slot given back, once a waiting task had time to take it): a task
/// claimed ahead then waits for a slot, as it should, until its process ends.
fn slots_held(ev: &Evidence, p: u32, from: Instant, until: Instant) -> bool {
    let mine: Vec<&Execution> = ev
        .executions
        .iter()
        .filter(|e| e.incarnation == p)
        .collect();
    let running_at = |t: Instant| {
        mine.iter()
            .filter(|e| e.start <= t && e.end.is_none_or(|end| end > t))
            .count()
    };
    std::iter::once(from)
        .chain(mine.iter().filter_map(|e| e.end).filter(|end| *end > from))
        .map(|t| t + SLOT_TAKEN)
        .filter(|t| *t < until)
        .all(|t| running_at(t) >= ev.concurrency)
}

/// Whether an execution was stopped by its runtime's shutdown, whose requeue hands the
/// attempt back uncounted: the only way the next run may carry the same attempt number.
fn requeued(ev: &Evidence, e: &Execution) -> bool {
    let Some(End::Stopped(stop)) = ev.ends.get(&e.incarnation) else {
        return false;
    };
    ev.end(e).is_none_or(|end| end + TOLERANCE >= stop.began)
}

pub fn heartbeats(ev: &Evidence, fence: &dyn Fn(&Execution) -> Option<Fence>, f: &mut Findings) {
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
                    Some(e.task),
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
                    Some(e.task),
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

/// The most executions of one process running at once, overall and in the `narrow` queue.
pub fn concurrency(ev: &Evidence, f: &mut Findings) {
    let mut processes: Vec<u32> = ev.executions.iter().map(|e| e.incarnation).collect();
    processes.sort_unstable();
    processes.dedup();
    for p in processes {
        let mine: Vec<&Execution> = ev
            .executions
            .iter()
            .filter(|e| e.incarnation == p)
            .collect();
        let narrow: Vec<&Execution> = mine.iter().copied().filter(|e| e.queue == NARROW).collect();
        for (runs, limit, what) in [
            (&mine, Some(ev.concurrency), "in all"),
            (&narrow, ev.narrow, "in `narrow`"),
        ] {
            let Some(limit) = limit else { continue };
            let (peak, at) = peak(ev, runs);
            if peak > limit {
                let detail = format!(
                    "p{p} ran {peak} attempts at once {what} at {} (limit {limit})",
                    ev.ms(at)
                );
                f.add("concurrency", None, detail);
            }
        }
    }
}

/// The largest number of `runs` running at one instant, and the first such instant.
fn peak(ev: &Evidence, runs: &[&Execution]) -> (usize, Instant) {
    // Ends sort before starts at the same instant: one attempt's slot goes to the next.
    let mut edges: Vec<(Instant, bool)> = Vec::new();
    for e in runs {
        edges.push((e.start, true));
        if let Some(end) = ev.end(e) {
            edges.push((end, false));
        }
    }
    edges.sort();
    let (mut now, mut peak, mut at) = (0usize, 0, ev.origin);
    for (instant, starts) in edges {
        if starts {
            now += 1;
            if now > peak {
                (peak, at) = (now, instant);
            }
        } else {
            now = now.saturating_sub(1);
        }
    }
    (peak, at)
}

/// Tasks of which process `p` ran two executions at the same time.
pub fn overlapping(ev: &Evidence, p: u32) -> Vec<TaskId> {
    let mut runs: Vec<_> = ev
        .executions
        .iter()
        .filter(|e| e.incarnation == p)
        .collect();
    runs.sort_by_key(|e| (e.task, e.start));
    let mut tasks: Vec<TaskId> = runs
        .windows(2)
        .filter(|w| w[0].task == w[1].task && ev.end(w[0]).is_none_or(|end| w[1].start < end))
        .map(|w| w[0].task)
        .collect();
    tasks.dedup();
    tasks
}

pub fn shutdowns(ev: &Evidence, f: &mut Findings) {
    let ends: BTreeSet<u32> = ev.ends.keys().copied().collect();
    for incarnation in ends {
        let Some(End::Stopped(stop)) = ev.ends.get(&incarnation) else {
            continue;
        };
        let (grace, report) = (stop.grace, stop.report);
        let Some(returned) = stop.returned else {
            let detail = format!(
                "p{incarnation}: shutdown({grace:?}) began at {} and did not return",
                ev.ms(stop.began)
            );
            f.add("shutdown-stops", None, detail);
            continue;
        };
        if stop.running_after != 0 {
            let detail = format!(
                "p{incarnation}: running() = {} after shutdown({grace:?}) returned ({report:?})",
                stop.running_after
            );
            f.add("shutdown-stops", None, detail);
            // The likely culprits: attempts the stopping runtime started during its shutdown.
            let late = ev
                .executions
                .iter()
                .filter(|e| e.incarnation == incarnation && e.start >= stop.began);
            for e in late {
                let detail = format!(
                    "p{incarnation}: {} started during its shutdown",
                    ev.describe(e)
                );
                f.add("context", Some(e.task), detail);
            }
        }
        let mine = ev
            .executions
            .iter()
            .filter(|e| e.incarnation == incarnation);
        for e in mine.filter(|e| ev.end(e).is_none_or(|end| end > returned)) {
            let detail = format!(
                "{} still running when shutdown({grace:?}) returned at {}",
                ev.describe(e),
                ev.ms(returned)
            );
            f.add("shutdown-stops", Some(e.task), detail);
        }
    }
}
