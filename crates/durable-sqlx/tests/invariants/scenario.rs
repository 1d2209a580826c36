//! One iteration: start the processes, play the timeline with faults on, then stop the
//! faults, restart every process clean, let everything settle (with a deadline), check that
//! each runtime is idle with its whole capacity, stop them all and check the invariants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use durable_core::store::{Store, TaskRecord};
use durable_core::{Client, EnqueueOptions, TaskId};
use tokio::task::JoinSet;

use crate::check::{check, Ack, Evidence, Note, Submission};
use crate::db::{Database, Kind};
use crate::faults::{Faults, FaultyStore};
use crate::plan::Off;
use crate::process::{End, Process, Setup};
use crate::settle::{capacity, idle, settle, SETTLE};
use crate::tasks::{Chaos, ExecLog, Plan};
use crate::timeline::{timeline, Event, Shape};

enum Slot {
    Alive(Process),
    Stopping,
    Dead,
}

type Shared<T> = Arc<Mutex<T>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct World {
    setup: Setup,
    shape: Shape,
    producer: Client,
    slots: Vec<Slot>,
    next: u32,
    ends: HashMap<u32, End>,
    stopping: JoinSet<(usize, u32, End)>,
    background: JoinSet<()>,
    submissions: Shared<Vec<Submission>>,
    ids: HashMap<u32, TaskId>,
    cancels: Shared<Vec<(TaskId, Instant)>>,
    crashes: u32,
    shutdowns: u32,
}

impl World {
    async fn start(&mut self, slot: usize) {
        let process = Process::start(&self.setup, self.next).await;
        self.next += 1;
        self.slots[slot] = Slot::Alive(process);
    }

    fn take(&mut self, slot: usize, next: Slot) -> Option<Process> {
        match std::mem::replace(&mut self.slots[slot], next) {
            Slot::Alive(p) => Some(p),
            other => {
                self.slots[slot] = other;
                None
            }
        }
    }

    fn shutdown_bound(&self, grace: Duration) -> Duration {
        grace + self.shape.cancel_grace + self.shape.lease * 2 + Duration::from_secs(4)
    }

    fn stopped(&mut self, (slot, incarnation, end): (usize, u32, End)) {
        self.ends.insert(incarnation, end);
        self.slots[slot] = Slot::Dead;
    }

    /// Plays the timeline with faults on, then stops the faults and brings every process
    /// back, clean.
    async fn play(&mut self, events: Vec<(Duration, Event)>) {
        let t0 = tokio::time::Instant::now();
        for (at, event) in events {
            loop {
                tokio::select! {
                    Some(done) = self.stopping.join_next() => self.stopped(done.expect("shutdown task")),
                    () = tokio::time::sleep_until(t0 + at) => break,
                }
            }
            self.apply(event).await;
        }
        self.setup.faults.stop();
        while let Some(done) = self.stopping.join_next().await {
            self.stopped(done.expect("shutdown task"));
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while self.background.join_next().await.is_some() {}
        })
        .await;
        self.background.abort_all();
        for slot in 0..self.slots.len() {
            if matches!(self.slots[slot], Slot::Dead) {
                self.start(slot).await;
            }
        }
    }

    /// Lets every task settle, checks that each runtime is idle with its whole capacity,
    /// and stops them all; returns what went wrong meanwhile.
    async fn wind_down(&mut self, checker: &Arc<dyn Store>, ids: &[TaskId]) -> Vec<Note> {
        let mut notes = Vec::new();
        let open = settle(checker, ids).await;
        if !open.is_empty() {
            let detail = format!(
                "{} tasks still unfinished {SETTLE:?} after the faults stopped",
                open.len()
            );
            notes.push(Note {
                rule: "settled",
                process: None,
                detail,
            });
        }
        let alive: Vec<&Process> = self
            .slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Alive(p) => Some(p),
                _ => None,
            })
            .collect();
        let busy = idle(&alive).await;
        for p in &busy {
            let running = p.runtime.running();
            let detail = format!(
                "p{}: running() = {running} after every task settled",
                p.incarnation
            );
            notes.push(Note {
                rule: "idle",
                process: Some(p.incarnation),
                detail,
            });
        }
        if busy.is_empty() {
            // One runtime at a time, the others idle: a probe task left pending for another
            // runtime would take a slot there during its own probe.
            for p in &alive {
                if let Some(detail) = capacity(p, self.shape.concurrency).await {
                    notes.push(Note {
                        rule: "capacity",
                        process: Some(p.incarnation),
                        detail,
                    });
                }
                idle(&alive).await;
            }
        }
        for slot in 0..self.slots.len() {
            if let Some(p) = self.take(slot, Slot::Dead) {
                let incarnation = p.incarnation;
                let grace = Duration::from_secs(3);
                let end = p.shutdown(grace, self.shutdown_bound(grace)).await;
                self.ends.insert(incarnation, end);
            }
        }
        notes
    }

    async fn apply(&mut self, event: Event) {
        match event {
            Event::Enqueue { via, tasks } => {
                let client = match via.map(|s| &self.slots[s]) {
                    Some(Slot::Alive(p)) => p.client(),
                    _ => self.producer.clone(),
                };
                let mut batch = client.batch();
                let mut at = Vec::new();
                let mut submissions = lock(&self.submissions);
                for spec in tasks {
                    let mut options = EnqueueOptions::new()
                        .max_attempts(spec.max_attempts)
                        .queue(spec.queue);
                    if let Some(delay) = spec.delay {
                        options = options.delay(delay);
                    }
                    let id = batch
                        .push_with(&Chaos { index: spec.index }, options)
                        .expect("prepare");
                    self.ids.insert(spec.index, id);
                    at.push(submissions.len());
                    submissions.push(Submission {
                        id,
                        index: spec.index,
                        ack: Ack::Unknown,
                    });
                }
                drop(submissions);
                let submissions = Arc::clone(&self.submissions);
                self.background.spawn(async move {
                    let ack = match batch.commit().await {
                        Ok(_) => Ack::Stored,
                        Err(_) => Ack::Refused,
                    };
                    for i in at {
                        lock(&submissions)[i].ack = ack;
                    }
                });
            }
            Event::Cancel { index } => {
                let Some(&id) = self.ids.get(&index) else {
                    return;
                };
                let (producer, cancels) = (self.producer.clone(), Arc::clone(&self.cancels));
                self.background.spawn(async move {
                    if matches!(
                        producer.cancel(id).await,
                        Ok(durable_core::store::CancelOutcome::Cancelled)
                    ) {
                        lock(&cancels).push((id, Instant::now()));
                    }
                });
            }
            Event::Crash { slot } => {
                if let Some(process) = self.take(slot, Slot::Dead) {
                    self.crashes += 1;
                    self.ends.insert(process.incarnation, process.crash());
                }
            }
            Event::Shutdown { slot, grace } => {
                let bound = self.shutdown_bound(grace);
                if let Some(process) = self.take(slot, Slot::Stopping) {
                    self.shutdowns += 1;
                    self.stopping.spawn(async move {
                        let incarnation = process.incarnation;
                        (slot, incarnation, process.shutdown(grace, bound).await)
                    });
                }
            }
            Event::Restart { slot } => {
                if matches!(self.slots[slot], Slot::Dead) {
                    self.start(slot).await;
                }
            }
        }
    }
}

/// Runs one iteration; returns a summary and the violations found.
pub async fn iteration(kind: &Kind, seed: u64, off: &Off) -> (String, Vec<String>) {
    let origin = Instant::now();
    let shape = Shape::new(seed);
    let db = Database::create(kind).await;
    let faults = Arc::new(Faults::new(seed, shape.lease, off.clone()));
    let setup = Setup {
        connector: db.connector.clone(),
        faults: Arc::clone(&faults),
        plan: Arc::new(Plan {
            seed,
            lease: shape.lease,
            off: off.clone(),
        }),
        log: Arc::new(ExecLog::default()),
        lease: shape.lease,
        concurrency: shape.concurrency,
        narrow: shape.narrow,
        cancel_grace: shape.cancel_grace,
        poll: shape.poll,
    };
    let checker = db.connector.clone().connect().await;
    let producer_store = db.connector.clone().connect().await;
    let mut world = World {
        producer: Client::new(FaultyStore::new(producer_store, Arc::clone(&faults), 0)),
        slots: (0..shape.processes).map(|_| Slot::Dead).collect(),
        next: 1,
        ends: HashMap::new(),
        stopping: JoinSet::new(),
        background: JoinSet::new(),
        submissions: Shared::default(),
        ids: HashMap::new(),
        cancels: Shared::default(),
        crashes: 0,
        shutdowns: 0,
        setup,
        shape: shape.clone(),
    };
    for slot in 0..shape.processes {
        world.start(slot).await;
    }
    world.play(timeline(seed, &shape, off)).await;
    let ids: Vec<TaskId> = lock(&world.submissions).iter().map(|s| s.id).collect();
    let notes = world.wind_down(&checker, &ids).await;
    // Crashed processes' futures are dropped by their worker threads: give them a moment.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut rows: HashMap<TaskId, TaskRecord> = HashMap::new();
    for id in &ids {
        if let Some(row) = checker.get(*id).await.expect("read a row") {
            rows.insert(*id, row);
        }
    }
    let evidence = Evidence {
        origin,
        lease: shape.lease,
        cancel_grace: shape.cancel_grace,
        concurrency: shape.concurrency,
        narrow: shape.narrow,
        submissions: lock(&world.submissions).clone(),
        rows,
        executions: world.setup.log.snapshot(),
        journal: faults.journal().clone(),
        ends: world.ends.clone(),
        cancels: lock(&world.cancels).clone(),
        notes,
    };
    let summary = summary(&shape, &world, &evidence);
    (summary, check(&evidence))
}

fn summary(shape: &Shape, world: &World, ev: &Evidence) -> String {
    let acks = |ack| ev.submissions.iter().filter(|s| s.ack == ack).count();
    let mut states: HashMap<String, usize> = HashMap::new();
    for row in ev.rows.values() {
        *states.entry(row.state.to_string()).or_default() += 1;
    }
    let mut states: Vec<_> = states.into_iter().collect();
    states.sort();
    let states: Vec<_> = states.iter().map(|(s, n)| format!("{s} {n}")).collect();
    let faults: u64 = ev.journal.injected.values().sum();
    let lost: usize = ev
        .journal
        .beats
        .iter()
        .filter_map(|b| {
            b.answer
                .as_ref()
                .map(|(_, still)| b.held.len() - still.len())
        })
        .sum();
    format!(
        "{} processes, lease {:?}, concurrency {}, {} tasks (stored {}, refused {}, unknown {}), {} executions, {} faults in {} calls, {} leases lost, {} crashes, {} shutdowns; {}",
        shape.processes,
        shape.lease,
        shape.concurrency,
        ev.submissions.len(),
        acks(Ack::Stored),
        acks(Ack::Refused),
        acks(Ack::Unknown),
        ev.executions.len(),
        faults,
        ev.journal.calls,
        lost,
        world.crashes,
        world.shutdowns,
        states.join(", ")
    )
}
