//! An iteration's shape (processes, lease, capacity, tasks) and its timeline of events
//! (enqueues, cancels, crashes, shutdowns, restarts), all drawn from the seed.

use std::time::Duration;

use crate::plan::{hash, queue_of, Off, Rng};

/// The fixed parameters of one iteration.
#[derive(Debug, Clone)]
pub struct Shape {
    pub processes: usize,
    pub lease: Duration,
    pub concurrency: usize,
    /// The runtimes' limit on the `narrow` queue, if any.
    pub narrow: Option<usize>,
    pub cancel_grace: Duration,
    pub poll: Duration,
    pub tasks: u32,
    /// How long faults, crashes and shutdowns go on.
    pub window: Duration,
}

impl Shape {
    pub fn new(seed: u64) -> Self {
        let mut rng = Rng::new(hash(&[seed, 1]));
        let concurrency = rng.between(2, 6) as usize;
        Self {
            processes: rng.between(2, 3) as usize,
            lease: rng.ms(300, 800),
            concurrency,
            narrow: rng
                .chance(600)
                .then(|| rng.between(1, concurrency as u64) as usize),
            cancel_grace: rng.ms(30, 250),
            poll: rng.ms(30, 150),
            tasks: rng.between(20, 40) as u32,
            window: Duration::from_millis(2000),
        }
    }
}

/// One task to enqueue.
#[derive(Debug, Clone)]
pub struct Spec {
    pub index: u32,
    pub queue: &'static str,
    pub max_attempts: u32,
    /// Scheduled for later (not dispatched locally).
    pub delay: Option<Duration>,
}

#[derive(Debug, Clone)]
pub enum Event {
    /// Through the client of the process in `via`'s slot, or the producer (a process without
    /// a runtime) when `None` or that slot has no live process.
    Enqueue {
        via: Option<usize>,
        tasks: Vec<Spec>,
    },
    Cancel {
        index: u32,
    },
    Crash {
        slot: usize,
    },
    Shutdown {
        slot: usize,
        grace: Duration,
    },
    Restart {
        slot: usize,
    },
}

/// The events of an iteration, by time since its start.
pub fn timeline(seed: u64, shape: &Shape, off: &Off) -> Vec<(Duration, Event)> {
    let mut rng = Rng::new(hash(&[seed, 2]));
    let window = shape.window.as_millis() as u64;
    let mut events = Vec::new();
    let mut index = 0;
    while index < shape.tasks {
        let at = rng.below(window * 7 / 10);
        let n = (rng.between(1, 3) as u32).min(shape.tasks - index);
        let via = (!rng.chance(250)).then(|| rng.below(shape.processes as u64) as usize);
        let mut tasks = Vec::new();
        for _ in 0..n {
            tasks.push(Spec {
                index,
                queue: queue_of(seed, index),
                max_attempts: rng.between(1, 4) as u32,
                delay: rng.chance(150).then(|| rng.ms(10, 300)),
            });
            index += 1;
        }
        if off.on("cancel") && rng.chance(120) {
            let cancel = Event::Cancel {
                index: tasks[0].index,
            };
            events.push((at + rng.between(0, 80), cancel));
        }
        events.push((at, Event::Enqueue { via, tasks }));
    }
    let mut at = 150;
    while at < window {
        let slot = rng.below(shape.processes as u64) as usize;
        let roll = rng.below(100);
        if roll < 35 && off.on("crash") {
            events.push((at, Event::Crash { slot }));
            events.push((at + rng.between(50, 400), Event::Restart { slot }));
        } else if roll < 75 && off.on("shutdown") {
            let grace = Duration::from_millis([0, 20, 100, 400][rng.below(4) as usize]);
            events.push((at, Event::Shutdown { slot, grace }));
            events.push((at + rng.between(100, 600), Event::Restart { slot }));
        }
        at += rng.between(250, 700);
    }
    // Stable: an enqueue stays before a cancel of the same instant.
    let mut events: Vec<_> = events
        .into_iter()
        .map(|(ms, e)| (Duration::from_millis(ms), e))
        .collect();
    events.sort_by_key(|(at, e)| (*at, matches!(e, Event::Cancel { .. })));
    events
}
