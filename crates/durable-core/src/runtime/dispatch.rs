//! The runtime as its writer sees it: local dispatch of fresh inserts, and the claims that
//! ride on writer cycles.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::shared::Shared;
use crate::store::{ClaimRequest, ClaimedTask, NewTask};
use crate::writer::{LocalRuntime, Reservation};

impl LocalRuntime for Shared {
    fn reserve(&self, tasks: &mut [NewTask]) -> Option<Reservation> {
        if !self.config.local_dispatch || self.stopping.is_cancelled() {
            return None;
        }
        let guard = self.reservations.token();
        let mut taken: Vec<(usize, String)> = Vec::new();
        {
            let mut slots = self.slots();
            for (i, task) in tasks.iter_mut().enumerate() {
                let due = task.run_at.is_none_or(|at| at <= chrono::Utc::now());
                if due
                    && self.registry.contains(&task.name)
                    && slots.try_take(
                        &task.queue,
                        self.config.concurrency,
                        &self.config.queue_limits,
                    )
                {
                    task.claimed_by = Some(crate::store::LocalClaim {
                        owner: self.owner,
                        lease: self.config.lease,
                    });
                    taken.push((i, task.queue.clone()));
                }
            }
        }
        if taken.is_empty() {
            return None;
        }
        Some(Reservation {
            slots: taken,
            _guard: guard,
        })
    }

    fn inserted(&self, reservation: Option<Reservation>, tasks: &[NewTask], committed: bool) {
        if !committed {
            if let Some(reservation) = reservation {
                let mut slots = self.slots();
                for (_, queue) in &reservation.slots {
                    slots.give_back(queue, 1);
                }
            }
            return;
        }
        let mut claimed = Vec::new();
        let now = self.store.now();
        if let Some(reservation) = &reservation {
            for (i, queue) in &reservation.slots {
                let t = &tasks[*i];
                if t.claimed_by.is_none() {
                    // Not stored (its unique key was held): nothing to start.
                    self.slots().give_back(queue, 1);
                    continue;
                }
                let due = t.run_at.unwrap_or(now);
                claimed.push(
                    ClaimedTask::new(
                        t.id,
                        t.name.clone(),
                        t.queue.clone(),
                        t.payload.clone(),
                        1,
                        t.max_attempts,
                        self.owner,
                    )
                    .with_due_at(due.min(now))
                    .with_trace_parent(t.trace_parent.clone()),
                );
            }
        }
        let unclaimed = tasks.len() - claimed.len();
        if !claimed.is_empty() {
            self.stats
                .local
                .fetch_add(claimed.len() as u64, Ordering::Relaxed);
            if let Some(me) = self.me() {
                me.spawn_claimed(claimed);
            }
        }
        if unclaimed > 0 {
            let earliest = tasks
                .iter()
                .filter(|t| t.claimed_by.is_none())
                .filter_map(|t| t.run_at)
                .min();
            match earliest {
                Some(at)
                    if tasks
                        .iter()
                        .all(|t| t.claimed_by.is_some() || t.run_at.is_some()) =>
                {
                    let delay = (at - chrono::Utc::now()).to_std().unwrap_or_default();
                    self.wake_at(delay);
                }
                _ => {
                    self.backlog.store(true, Ordering::Relaxed);
                    self.wake.committed();
                }
            }
        }
        drop(reservation);
    }

    fn begin_claim(&self) -> Option<ClaimRequest> {
        // No check of `stopping`: the claim loop checks before asking, a claim asked for
        // before shutdown completes (shutdown waits for it and drains its tasks), and
        // shutdown's own last claim comes through here.
        if self.names.is_empty() {
            // No task type registered: nothing this runtime could run.
            return None;
        }
        let base =
            ClaimRequest::with_names(self.owner, self.config.lease, 0, Arc::clone(&self.names));
        let mut slots = self.slots();
        let room = self.claim_room(&slots);
        let request = slots.claim_request(base, room, &self.config.queue_limits)?;
        slots.hold_for_claim(request.limit);
        // Every commit counted so far happened before this claim's statement runs.
        self.covered.store(self.wake.commits(), Ordering::SeqCst);
        Some(request)
    }

    fn claimed(&self, request: &ClaimRequest, claimed: Option<Vec<ClaimedTask>>) {
        let claimed = claimed.unwrap_or_default();
        {
            let mut slots = self.slots();
            slots.end_claim(request.limit);
            for task in &claimed {
                slots.take(&task.queue, 1);
            }
        }
        if claimed.is_empty() {
            return;
        }
        self.stats
            .claimed
            .fetch_add(claimed.len() as u64, Ordering::Relaxed);
        tracing::trace!(n = claimed.len(), limit = request.limit, "claimed");
        if let Some(me) = self.me() {
            me.spawn_claimed(claimed);
        } else {
            // The runtime is gone: give the capacity back; the leases expire and another
            // worker rescues the rows.
            let mut slots = self.slots();
            for task in &claimed {
                slots.give_back(&task.queue, 1);
            }
        }
    }
}
