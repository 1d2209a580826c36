//! The runtime's side of the client's writer: local dispatch of fresh inserts, and the
//! claims that ride on writer cycles.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::shared::{Shared, CLAIMING};
use crate::client::{LocalDispatch, Reservation};
use crate::store::{ClaimRequest, ClaimedTask, NewTask};

impl LocalDispatch for Shared {
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

    fn committed(&self, reservation: Option<Reservation>, tasks: &[NewTask]) {
        let mut claimed = Vec::new();
        if let Some(reservation) = &reservation {
            for (i, _) in &reservation.slots {
                let t = &tasks[*i];
                claimed.push(ClaimedTask::new(
                    t.id,
                    t.name.clone(),
                    t.queue.clone(),
                    t.payload.clone(),
                    1,
                    t.max_attempts,
                    self.owner,
                ));
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
                    self.commits.fetch_add(1, Ordering::SeqCst);
                    self.wake.notify_one();
                }
            }
        }
        drop(reservation);
    }

    fn aborted(&self, reservation: Option<Reservation>) {
        if let Some(reservation) = reservation {
            let mut slots = self.slots();
            for (_, queue) in &reservation.slots {
                slots.give_back(queue, 1);
            }
        }
    }

    fn wake(&self) {
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
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
        let request =
            slots.claim_request(base, self.config.concurrency, &self.config.queue_limits)?;
        slots.take(CLAIMING, request.limit);
        // Every commit counted so far happened before this claim's statement runs.
        self.covered
            .store(self.commits.load(Ordering::SeqCst), Ordering::SeqCst);
        Some(request)
    }

    fn end_claim(&self, request: &ClaimRequest, claimed: Option<Vec<ClaimedTask>>) {
        let claimed = claimed.unwrap_or_default();
        {
            let mut slots = self.slots();
            slots.give_back(CLAIMING, request.limit);
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

    fn spawn_volatile(&self, name: &'static str, future: crate::client::VolatileFuture) {
        self.tracker.spawn_on(
            run_volatile(name, future, Some(self.hard.clone())),
            &self.handle,
        );
    }
}

/// Runs a volatile future, logging its error or panic; dropped when `hard` fires.
pub(crate) async fn run_volatile(
    name: &'static str,
    future: crate::client::VolatileFuture,
    hard: Option<CancellationToken>,
) {
    let guarded = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(future));
    let stop = async {
        match &hard {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = stop => tracing::warn!(volatile = name, "volatile task dropped at shutdown (it is not persisted)"),
        result = guarded => match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(volatile = name, %error, "volatile task failed"),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_owned());
                tracing::error!(volatile = name, panic = %message, "volatile task panicked");
            }
        },
    }
}
