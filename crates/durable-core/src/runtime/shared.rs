//! The state a runtime's loops, its runners and the client's dispatch hook share.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ahead::Holding;
use super::alert::Alerts;
use super::settings::Settings;
use super::slots::Slots;
use super::stats::Stats;
use super::throughput::Throughput;
use crate::client::{Client, Wake};
use crate::ids::WorkerId;
use crate::registry::Registry;
use crate::store::{Fence, Store};

/// State shared by the runtime's loops, its runners and the client's dispatch hook.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) registry: Registry,
    /// The registry's names, the task types this runtime claims (built once).
    pub(crate) names: Arc<[String]>,
    pub(crate) config: Settings,
    pub(crate) owner: WorkerId,
    pub(crate) client: Client,
    pub(crate) stats: Stats,
    /// The alerting hook's queue, when one is set.
    pub(crate) alerts: Option<Alerts>,
    /// Ended attempts per minute, not yet added to the store.
    pub(crate) throughput: Throughput,
    /// Runs the task runners; shutdown waits on it.
    pub(super) tracker: TaskTracker,
    /// Counts inserts in flight that reserved local capacity.
    pub(super) reservations: TaskTracker,
    /// Stop claiming and accepting local dispatch.
    pub(super) stopping: CancellationToken,
    /// Parent of every attempt's cooperative token.
    pub(super) soft: CancellationToken,
    /// Parent of every attempt's forced token.
    pub(super) hard: CancellationToken,
    pub(super) slots: Mutex<Slots>,
    pub(super) lost: Mutex<HashSet<Fence>>,
    /// Wakes the claim loop: local enqueue, a freed slot while backlogged, a timer; counts
    /// the commits that left due tasks for a claim.
    pub(super) wake: Arc<Wake>,
    /// The last claim filled every free slot: more is probably due.
    pub(super) backlog: AtomicBool,
    /// Earliest time this runtime knows something becomes due (a retry it scheduled).
    pub(super) next_due: Mutex<Option<Instant>>,
    /// The wake's commit count when the latest claim began: that claim saw those rows.
    pub(super) covered: AtomicU64,
    /// Shutdown has collected the attempts to hand back (set under the slots' lock): a task
    /// claimed or inserted for this runtime after that is handed back unstarted.
    pub(super) handed_back: AtomicBool,
    /// With [`claim_ahead`](super::RuntimeBuilder::claim_ahead): a permit per slot, taken by
    /// an attempt before its task runs, so the tasks claimed ahead wait for a running one to
    /// end. `None` without it: every claimed task has a slot.
    pub(super) running: Option<Arc<tokio::sync::Semaphore>>,
    /// The claim round trip and the tasks' run time, for
    /// [`ClaimAhead::Auto`](super::ClaimAhead::Auto).
    pub(super) estimate: super::ahead::Estimate,
    /// Itself, for spawning runners from `&self` callbacks.
    pub(super) this: Weak<Shared>,
    /// The application's runtime, where attempts run: the callbacks that start them may be
    /// called on the client's writer thread.
    pub(super) handle: tokio::runtime::Handle,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("owner", &self.owner)
            .field("store", &self.store)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn slots(&self) -> MutexGuard<'_, Slots> {
        // A panic while holding this lock cannot leave the counters half-updated in a way
        // worth refusing service over; recover the guard.
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The slots claims fill: the running ones and those for tasks claimed ahead. `slots`:
    /// this runtime's, locked by the caller.
    pub(super) fn claim_room(&self, slots: &Slots) -> usize {
        let concurrency = self.config.concurrency;
        let mode = self.config.claim_ahead;
        if mode != super::ClaimAhead::Auto {
            return concurrency + self.estimate.ahead(mode, concurrency, Holding::default());
        }
        let holding = Holding {
            // Every slot held by a running attempt: no permit left to start one.
            all: self
                .running
                .as_ref()
                .is_some_and(|gate| gate.available_permits() == 0),
            long: self
                .estimate
                .long_since()
                .map_or(0, |since| slots.running_since_before(since)),
        };
        concurrency + self.estimate.ahead(mode, concurrency, holding)
    }

    /// [`claim_room`](Self::claim_room) and how much of it is free, at one look at the slots.
    pub(super) fn room(&self) -> (usize, usize) {
        let slots = self.slots();
        let room = self.claim_room(&slots);
        (room, slots.free(room))
    }

    pub(super) fn lost(&self) -> MutexGuard<'_, HashSet<Fence>> {
        self.lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn lease_lost(&self, fence: &Fence) -> bool {
        self.lost().contains(fence)
    }

    /// An attempt stopped executing: its slot goes to the next task while the outcome is
    /// written, so claims and outcome writes overlap instead of alternating.
    pub(crate) fn release(&self, fence: &Fence) {
        self.slots().release(fence);
        if self.backlog.load(Ordering::Relaxed) {
            self.wake.slot_freed();
        }
    }

    /// An attempt ended: free its slot and let the claim loop look for more.
    pub(crate) fn finish(&self, fence: &Fence) {
        let running = {
            let mut slots = self.slots();
            slots.finish(fence);
            slots.running_count()
        };
        super::observe::busy(running);
        self.lost().remove(fence);
        if self.backlog.load(Ordering::Relaxed) {
            self.wake.slot_freed();
        }
    }

    /// Remember that something becomes due after `delay`, so the claim loop wakes for it
    /// without polling.
    pub(crate) fn wake_at(&self, delay: Duration) {
        let at = Instant::now() + delay;
        let mut next = self
            .next_due
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if next.is_none_or(|n| at < n) {
            *next = Some(at);
            drop(next);
            self.wake.notify();
        }
    }

    pub(super) fn me(&self) -> Option<Arc<Shared>> {
        self.this.upgrade()
    }
}
