//! Capacity and in-flight bookkeeping: which attempts this runtime holds, per queue.

use std::collections::HashMap;

use tokio_util::sync::CancellationToken;

use crate::store::{ClaimRequest, Fence, Outcome};

/// The outcome an attempt that finished executing is writing: what a shutdown's hand-back
/// writes for it if that write has not landed by then (see `shutdown::collect`).
#[derive(Debug, Clone)]
pub(crate) enum Recording {
    /// A completion.
    Complete,
    /// Any other outcome of the attempt's own (a retry, a failure, a cancellation, a snooze).
    Settle(Outcome),
}

/// Cancellation handles of one running attempt.
#[derive(Debug, Clone)]
pub(crate) struct Running {
    pub(crate) fence: Fence,
    pub(crate) queue: String,
    /// Cooperative: the task sees it through `TaskContext::cancelled`.
    pub(crate) soft: CancellationToken,
    /// Forced: the runner drops the task's future.
    pub(crate) hard: CancellationToken,
    /// Set (before `soft` fires) when the task's cancellation was requested.
    pub(crate) requested: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The attempt finished executing and gave its slot back; its outcome is being written.
    pub(crate) settling: bool,
    /// What that outcome is, once the attempt knows it.
    pub(crate) recording: Option<Recording>,
    /// What the attempt's own writes said (a completion in the application's transaction, a
    /// refused fenced write), shared with its context.
    pub(crate) flags: std::sync::Arc<crate::steps::AttemptFlags>,
    /// When the attempt took a slot to run, on the runtime's estimate clock
    /// (`ahead::Estimate::started`); 0 before. Set before the attempt looks whether it was
    /// stopped: from then on its task's code may have run. Shutdown hands an attempt that
    /// never started back as it was (see `shutdown::hand_back`); `ClaimAhead::Auto` counts
    /// the slots held long (see [`Slots::running_since_before`]).
    pub(crate) since_us: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Running {
    /// Whether the attempt took a slot to run (its task's code may have run). Sequentially
    /// consistent with the store in `ahead::Estimate::started`: shutdown fires the stop
    /// before it reads this, the attempt stores before it reads the stop.
    pub(crate) fn started(&self) -> bool {
        self.since_us.load(std::sync::atomic::Ordering::SeqCst) != 0
    }
}

/// Occupied capacity: running attempts plus reservations for inserts in flight.
///
/// Attempts are kept per fence, not per task: when an attempt loses its lease and this same
/// runtime claims the task's next attempt while the first still runs, both hold a slot until
/// each ends, and each gives back its own.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    used: usize,
    /// Of `used`: held by a claim in flight, so local dispatch cannot overfill the slots
    /// while the claim's statement runs.
    claiming: usize,
    per_queue: HashMap<String, usize>,
    running: HashMap<Fence, Running>,
    /// Attempts whose outcome a shutdown's hand-back wrote: their own write of it, if it
    /// comes later, finds the row changed and must not take that for a lost lease.
    written_at_hand_back: std::collections::HashSet<Fence>,
}

impl Slots {
    pub(crate) fn free(&self, concurrency: usize) -> usize {
        concurrency.saturating_sub(self.used)
    }

    fn queue_free(&self, queue: &str, limits: &HashMap<String, usize>) -> Option<usize> {
        limits
            .get(queue)
            .map(|cap| cap.saturating_sub(self.per_queue.get(queue).copied().unwrap_or(0)))
    }

    /// Takes one slot in `queue` if the global and the queue's limit allow it.
    pub(crate) fn try_take(
        &mut self,
        queue: &str,
        concurrency: usize,
        limits: &HashMap<String, usize>,
    ) -> bool {
        if self.used >= concurrency || self.queue_free(queue, limits) == Some(0) {
            return false;
        }
        self.take(queue, 1);
        true
    }

    /// Takes `n` slots in `queue` unconditionally (the claim already respected the limits).
    pub(crate) fn take(&mut self, queue: &str, n: usize) {
        self.used += n;
        *self.per_queue.entry(queue.to_owned()).or_insert(0) += n;
    }

    /// Gives `n` slots of `queue` back.
    /// Holds `n` slots for a claim in flight, not yet tied to a queue.
    pub(crate) fn hold_for_claim(&mut self, n: usize) {
        self.used += n;
        self.claiming += n;
    }

    /// Gives back what [`hold_for_claim`](Self::hold_for_claim) held.
    pub(crate) fn end_claim(&mut self, n: usize) {
        let n = n.min(self.claiming);
        self.claiming -= n;
        self.used = self.used.saturating_sub(n);
    }

    pub(crate) fn give_back(&mut self, queue: &str, n: usize) {
        self.used = self.used.saturating_sub(n);
        if let Some(count) = self.per_queue.get_mut(queue) {
            *count = count.saturating_sub(n);
            if *count == 0 {
                self.per_queue.remove(queue);
            }
        }
    }

    /// The claim this runtime can make now, or `None` when it is full.
    pub(crate) fn claim_request(
        &self,
        base: ClaimRequest,
        concurrency: usize,
        limits: &HashMap<String, usize>,
    ) -> Option<ClaimRequest> {
        let free = self.free(concurrency);
        if free == 0 {
            return None;
        }
        let mut request = ClaimRequest {
            limit: free,
            ..base
        };
        for queue in limits.keys() {
            let queue_free = self.queue_free(queue, limits).unwrap_or(free).min(free);
            request = request.cap(queue.clone(), queue_free);
        }
        Some(request)
    }

    pub(crate) fn start(&mut self, running: Running) {
        self.running.insert(running.fence, running);
    }

    /// The attempt's outcome is known and being written.
    pub(crate) fn recording(&mut self, fence: &Fence, recording: Recording) {
        if let Some(running) = self.running.get_mut(fence) {
            running.recording = Some(recording);
        }
    }

    /// A shutdown's hand-back wrote these attempts' outcomes.
    pub(crate) fn written_at_hand_back(&mut self, fences: impl IntoIterator<Item = Fence>) {
        self.written_at_hand_back.extend(fences);
    }

    /// Whether a shutdown's hand-back wrote this attempt's outcome.
    pub(crate) fn was_written_at_hand_back(&self, fence: &Fence) -> bool {
        self.written_at_hand_back.contains(fence)
    }

    /// The attempt stopped executing: its slot is free for the next task while its outcome
    /// is written (the entry stays, so heartbeats keep its lease until then).
    pub(crate) fn release(&mut self, fence: &Fence) {
        let queue = match self.running.get_mut(fence) {
            Some(r) if !r.settling => {
                r.settling = true;
                r.queue.clone()
            }
            _ => return,
        };
        self.give_back(&queue, 1);
    }

    /// Forgets a running attempt and frees its slot if [`release`](Self::release) did not
    /// already. Idempotent.
    pub(crate) fn finish(&mut self, fence: &Fence) {
        if let Some(running) = self.running.remove(fence) {
            if !running.settling {
                self.give_back(&running.queue, 1);
            }
        }
    }

    /// Attempts running now (reservations and in-flight claims excluded).
    pub(crate) fn running_count(&self) -> usize {
        self.running.len()
    }

    /// Attempts running their task's code since before `since_us` (the estimate's clock):
    /// started, and not yet given their slot back.
    pub(crate) fn running_since_before(&self, since_us: u64) -> usize {
        self.running
            .values()
            .filter(|r| !r.settling)
            .filter(|r| {
                let at = r.since_us.load(std::sync::atomic::Ordering::Relaxed);
                at != 0 && at < since_us
            })
            .count()
    }

    pub(crate) fn running(&self) -> impl Iterator<Item = &Running> {
        self.running.values()
    }

    pub(crate) fn get(&self, fence: &Fence) -> Option<&Running> {
        self.running.get(fence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::WorkerId;
    use std::time::Duration;

    #[test]
    fn claim_request_respects_global_and_queue_limits() {
        let limits = HashMap::from([("emails".to_owned(), 2)]);
        let mut slots = Slots::default();
        slots.take("emails", 1);
        slots.take("default", 5);
        let base = ClaimRequest::new(WorkerId::new(), Duration::from_secs(1), 0, ["work"]);
        let request = slots
            .claim_request(base.clone(), 10, &limits)
            .expect("free slots");
        assert_eq!(request.limit, 4);
        assert_eq!(request.capped, vec![("emails".to_owned(), 1)]);
        slots.take("default", 4);
        assert!(slots.claim_request(base, 10, &limits).is_none());
        assert!(!slots.try_take("default", 10, &limits));
    }

    #[test]
    fn two_attempts_of_one_task_each_give_back_their_slot() {
        let mut slots = Slots::default();
        let id = crate::ids::TaskId::new();
        let owner = WorkerId::new();
        let running = |attempt| Running {
            fence: Fence { id, owner, attempt },
            queue: "default".to_owned(),
            soft: CancellationToken::new(),
            hard: CancellationToken::new(),
            requested: std::sync::Arc::default(),
            settling: false,
            recording: None,
            flags: std::sync::Arc::default(),
            since_us: std::sync::Arc::default(),
        };
        for attempt in [1, 2] {
            slots.take("default", 1);
            slots.start(running(attempt));
        }
        assert_eq!((slots.running_count(), slots.free(3)), (2, 1));
        slots.release(&running(2).fence);
        slots.finish(&running(2).fence);
        slots.finish(&running(1).fence);
        slots.finish(&running(1).fence);
        assert_eq!((slots.running_count(), slots.free(3)), (0, 3));
    }
}
