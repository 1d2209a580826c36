//! The rules of `check` on hand-made evidence: each fires on the history it forbids and not
//! on its legitimate neighbour (a checker that cannot fail proves nothing).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use durable_core::store::{Fence, TaskRecord};
use durable_core::{TaskId, TaskState, WorkerId};

use crate::check::{check, Ack, Evidence, Submission};
use crate::faults::{Beat, Grant, Journal};
use crate::process::{End, Stopped};
use crate::tasks::{Execution, Fate, Outcome};

const LEASE: Duration = Duration::from_millis(300);

struct Case {
    t0: Instant,
    id: TaskId,
    owners: [WorkerId; 2],
    ev: Evidence,
}

impl Case {
    /// Task 0 stored and completed by attempt 1 of p1, which ran 0..100 ms on a delivered claim.
    fn new() -> Case {
        let t0 = Instant::now();
        let id = TaskId::new();
        let owners = [WorkerId::new(), WorkerId::new()];
        let journal = Journal {
            owners: HashMap::from([(owners[0], 1), (owners[1], 2)]),
            ..Journal::default()
        };
        let mut row = TaskRecord::new(id, "invariant_chaos", "default", "{}", TaskState::Completed);
        (row.attempts, row.max_attempts, row.lease_owner) = (1, 3, Some(owners[0]));
        let mut case = Case {
            t0,
            id,
            owners,
            ev: Evidence {
                origin: t0,
                lease: LEASE,
                cancel_grace: Duration::from_millis(100),
                concurrency: 1,
                narrow: None,
                submissions: vec![Submission {
                    id,
                    index: 0,
                    ack: Ack::Stored,
                }],
                rows: HashMap::from([(id, row)]),
                executions: Vec::new(),
                journal,
                ends: HashMap::new(),
                cancels: Vec::new(),
                notes: Vec::new(),
            },
        };
        case.run(1, 1, 0, Some(100), Outcome::Ok);
        case
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn fence(&self, incarnation: u32, attempt: u32) -> Fence {
        Fence {
            id: self.id,
            owner: self.owners[incarnation as usize - 1],
            attempt,
        }
    }

    /// An execution of the case's task, with the claim that granted (and delivered) it at its
    /// start.
    fn run(
        &mut self,
        incarnation: u32,
        attempt: u32,
        start: u64,
        end: Option<u64>,
        outcome: Outcome,
    ) {
        let fence = self.fence(incarnation, attempt);
        self.run_task(0, fence, incarnation, start, end, outcome);
    }

    /// An execution of the task `index` under `fence` (on `incarnation`), granted and delivered
    /// at its start.
    fn run_task(
        &mut self,
        index: u32,
        fence: Fence,
        incarnation: u32,
        start: u64,
        end: Option<u64>,
        outcome: Outcome,
    ) {
        let grant = Grant {
            fence,
            at: self.at(start),
        };
        self.ev.journal.granted.push(grant);
        self.ev.journal.delivered.push(grant);
        self.ev.executions.push(Execution {
            task: fence.id,
            index,
            queue: "default",
            attempt: fence.attempt,
            max_attempts: 3,
            incarnation,
            fate: Fate::Long,
            start: self.at(start),
            end: end.map(|ms| self.at(ms)),
            outcome,
        });
    }

    /// The rules violated, in order (the task histories that follow them left out).
    fn rules(&self) -> Vec<String> {
        check(&self.ev)
            .iter()
            .filter_map(|line| line.strip_prefix('['))
            .filter_map(|line| line.split(']').next())
            .map(str::to_owned)
            .collect()
    }
}

#[test]
fn a_clean_history_passes() {
    assert_eq!(Case::new().rules(), Vec::<String>::new());
}

#[test]
fn overlap_is_a_violation_only_while_the_first_lease_was_valid() {
    let mut case = Case::new();
    // p1's attempt 1 runs on (0..900 ms) past its lease: p2 may take over once it expired.
    case.ev.executions[0].end = Some(case.at(900));
    case.ev.executions[0].outcome = Outcome::Dropped;
    case.run(2, 2, 400, Some(500), Outcome::Ok);
    case.ev.rows.get_mut(&case.id).expect("row").attempts = 2;
    case.ev.rows.get_mut(&case.id).expect("row").lease_owner = Some(case.owners[1]);
    assert_eq!(case.rules(), Vec::<String>::new());
    // A heartbeat at 200 ms extended the lease to at least 500 ms: then it was not free at 400.
    let grant = Grant {
        fence: case.fence(1, 1),
        at: case.at(200),
    };
    case.ev.journal.granted.push(grant);
    assert_eq!(case.rules(), ["exclusive-lease"]);
}

#[test]
fn an_attempt_runs_once_and_only_on_a_delivered_claim() {
    let mut case = Case::new();
    case.run(1, 1, 200, Some(250), Outcome::Err);
    assert_eq!(case.rules(), ["one-run-per-fence"]);
    let mut case = Case::new();
    case.ev.journal.delivered.clear();
    assert_eq!(case.rules(), ["claimed-before-run"]);
    let mut case = Case::new();
    let fence = case.fence(2, 2);
    case.ev.journal.delivered.push(Grant {
        fence,
        at: case.at(300),
    });
    assert_eq!(case.rules(), ["claims-run"]);
    case.ev.ends.insert(2, End::Crashed(case.at(400)));
    assert_eq!(
        case.rules(),
        Vec::<String>::new(),
        "p2 died before it could run it"
    );
}

#[test]
fn a_claim_may_go_unrun_when_its_task_is_cancelled_right_after() {
    let mut case = Case::new();
    case.ev.rows.get_mut(&case.id).expect("row").state = TaskState::Cancelled;
    let fence = case.fence(2, 2);
    case.ev.journal.delivered.push(Grant {
        fence,
        at: case.at(300),
    });
    case.ev.cancels.push((case.id, case.at(2_000)));
    assert_eq!(case.rules(), ["claims-run"], "p2 had 1.7 s to start it");
    case.ev.cancels[0].1 = case.at(350);
    assert_eq!(
        case.rules(),
        Vec::<String>::new(),
        "cancelled before p2 could start it"
    );
}

#[test]
fn a_claim_may_wait_unrun_only_while_every_slot_runs_another_attempt() {
    let mut case = Case::new();
    let fence = case.fence(2, 2);
    case.ev.journal.delivered.push(Grant {
        fence,
        at: case.at(300),
    });
    case.ev.ends.insert(2, End::Crashed(case.at(2_000)));
    assert_eq!(case.rules(), ["claims-run"], "p2's slot was free for 1.7 s");
    // Another task's attempt holds p2's only slot from before the claim until the crash:
    // the claim was ahead of the free slots and waited, as it should.
    let other = Fence {
        id: TaskId::new(),
        owner: case.owners[1],
        attempt: 1,
    };
    case.run_task(1, other, 2, 250, Some(2_000), Outcome::Dropped);
    assert_eq!(case.rules(), Vec::<String>::new());
    // Given back at 1,000 ms: the waiting claim should have run by the crash.
    case.ev.executions.last_mut().expect("pushed").end = Some(case.at(1_000));
    assert_eq!(case.rules(), ["claims-run"]);
}

#[test]
fn a_claim_may_go_unrun_when_a_heartbeat_says_its_lease_was_lost_right_after() {
    let mut case = Case::new();
    let fence = case.fence(2, 2);
    case.ev.journal.delivered.push(Grant {
        fence,
        at: case.at(300),
    });
    // A heartbeat sent at 350 ms, delayed past the lease, answers that it is lost.
    let (sent, late, soon) = (case.at(350), case.at(2_000), case.at(700));
    let lost = |answered| Beat {
        incarnation: 2,
        at: sent,
        held: vec![fence],
        answer: Some((answered, Vec::new())),
    };
    case.ev.journal.beats.push(lost(late));
    assert_eq!(case.rules(), ["claims-run"], "p2 had 1.7 s to start it");
    case.ev.journal.beats[0] = lost(soon);
    assert_eq!(
        case.rules(),
        Vec::<String>::new(),
        "its lease was lost before p2 could start it"
    );
}

#[test]
fn heartbeats_must_list_running_attempts_and_stop_lost_ones() {
    let mut case = Case::new();
    let fence = case.fence(1, 1);
    let beat = |at, held: Vec<Fence>, still: Option<Vec<Fence>>| Beat {
        incarnation: 1,
        at,
        held,
        answer: still.map(|s| (at, s)),
    };
    case.ev
        .journal
        .beats
        .push(beat(case.at(50), vec![fence], Some(vec![fence])));
    assert_eq!(case.rules(), Vec::<String>::new());
    case.ev
        .journal
        .beats
        .push(beat(case.at(60), Vec::new(), None));
    assert_eq!(case.rules(), ["heartbeat-covers-running"]);
    let mut case = Case::new();
    let fence = case.fence(1, 1);
    case.ev.executions[0].end = Some(case.at(3000));
    case.ev
        .journal
        .beats
        .push(beat(case.at(50), vec![fence], Some(Vec::new())));
    assert_eq!(case.rules(), ["lost-lease-stops"]);
}

#[test]
fn final_rows_must_match_the_runs() {
    let mut case = Case::new();
    case.ev.executions[0].outcome = Outcome::Err;
    assert_eq!(case.rules(), ["completed-by-run"]);
    let mut case = Case::new();
    let row = case.ev.rows.get_mut(&case.id).expect("row");
    (row.state, row.last_error) = (TaskState::Failed, None);
    assert_eq!(case.rules(), ["failed-has-error", "failed-by-run"]);
    let mut case = Case::new();
    case.ev.rows.get_mut(&case.id).expect("row").state = TaskState::Processing;
    assert_eq!(case.rules(), ["settled"]);
    let mut case = Case::new();
    case.ev.rows.clear();
    assert_eq!(case.rules(), ["stored"]);
    let mut case = Case::new();
    case.ev.cancels.push((case.id, case.at(50)));
    assert_eq!(case.rules(), ["cancel-wins"]);
}

#[test]
fn an_attempt_number_repeats_only_after_a_shutdown_requeue() {
    let mut case = Case::new();
    case.run(2, 1, 200, Some(300), Outcome::Err);
    assert_eq!(case.rules(), ["attempt-reused"]);
    let stop = Stopped {
        grace: Duration::ZERO,
        began: case.at(50),
        returned: Some(case.at(150)),
        report: None,
        running_after: 0,
    };
    case.ev.ends.insert(1, End::Stopped(stop));
    assert_eq!(case.rules(), Vec::<String>::new());
}

#[test]
fn a_runtime_never_runs_more_than_its_concurrency() {
    let mut case = Case::new();
    let mut other = case.ev.executions[0].clone();
    (other.task, other.start, other.end) = (TaskId::new(), case.at(50), Some(case.at(150)));
    let fence = Fence {
        id: other.task,
        owner: case.owners[0],
        attempt: 1,
    };
    let grant = Grant {
        fence,
        at: other.start,
    };
    case.ev.journal.granted.push(grant);
    case.ev.journal.delivered.push(grant);
    case.ev.executions.push(other);
    assert_eq!(case.rules(), ["concurrency"]);
    case.ev.concurrency = 2;
    assert_eq!(case.rules(), Vec::<String>::new());
    // The same two in the `narrow` queue, limited to one.
    case.ev.narrow = Some(1);
    for e in &mut case.ev.executions {
        e.queue = crate::plan::NARROW;
    }
    assert_eq!(case.rules(), ["concurrency"]);
}

#[test]
fn only_shutdown_requeues_hand_attempts_back() {
    let mut case = Case::new();
    case.ev.rows.get_mut(&case.id).expect("row").max_attempts = 2;
    for e in &mut case.ev.executions {
        e.max_attempts = 2;
    }
    case.run(1, 2, 200, Some(300), Outcome::Err);
    case.run(2, 3, 400, Some(500), Outcome::Err);
    for e in &mut case.ev.executions {
        e.max_attempts = 2;
    }
    let rules = case.rules();
    assert!(rules.contains(&"attempts".to_owned()), "{rules:?}");
}
