//! The worker runtime: claims due tasks, runs them on a [`TaskTracker`], keeps their leases
//! alive, records outcomes, and hands unfinished work back on shutdown.

mod config;
mod execute;
mod loops;
mod slots;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::{Client, LocalDispatch, Reservation, DEFAULT_MAX_PAYLOAD_BYTES};
use crate::registry::Registry;
use crate::store::ClaimRequest;
use crate::store::{ClaimedTask, Fence, NewTask, Store};
use crate::task::WorkerId;

use config::Config;
use slots::{Running, Slots};

/// Counters of what a runtime did since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Attempts that completed.
    pub completed: u64,
    /// Failed attempts put back for a retry.
    pub retried: u64,
    /// Tasks marked `failed`.
    pub failed: u64,
    /// Stale writes rejected by fencing.
    pub stale_writes: u64,
    /// Tasks dispatched locally right after their insert, without a claim.
    pub dispatched_locally: u64,
    /// Tasks claimed from the store.
    pub claimed: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    completed: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    stale: AtomicU64,
    local: AtomicU64,
    claimed: AtomicU64,
}

impl Stats {
    pub(crate) fn completed(&self) {
        self.completed.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn stale(&self) {
        self.stale.fetch_add(1, Ordering::Relaxed);
    }
    fn snapshot(&self) -> RuntimeStats {
        RuntimeStats {
            completed: self.completed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            stale_writes: self.stale.load(Ordering::Relaxed),
            dispatched_locally: self.local.load(Ordering::Relaxed),
            claimed: self.claimed.load(Ordering::Relaxed),
        }
    }
}

/// Pseudo-queue under which a claim in flight holds its slots, so local dispatch cannot
/// overfill them.
const CLAIMING: &str = "\0claiming";

/// State shared by the runtime's loops, its runners and the client's dispatch hook.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) registry: Registry,
    /// The registry's names, the task types this runtime claims (built once).
    pub(crate) names: Arc<[String]>,
    pub(crate) config: Config,
    pub(crate) owner: WorkerId,
    pub(crate) client: Client,
    pub(crate) stats: Stats,
    /// Runs the task runners; shutdown waits on it.
    tracker: TaskTracker,
    /// Counts inserts in flight that reserved local capacity.
    reservations: TaskTracker,
    /// Stop claiming and accepting local dispatch.
    stopping: CancellationToken,
    /// Parent of every attempt's cooperative token.
    soft: CancellationToken,
    /// Parent of every attempt's forced token.
    hard: CancellationToken,
    slots: Mutex<Slots>,
    lost: Mutex<std::collections::HashSet<Fence>>,
    /// Wakes the claim loop: local enqueue, a freed slot while backlogged, a timer.
    wake: Arc<Notify>,
    /// The last claim filled every free slot: more is probably due.
    backlog: AtomicBool,
    /// Earliest time this runtime knows something becomes due (a retry it scheduled).
    next_due: Mutex<Option<Instant>>,
    /// Counts commits through this process that left due tasks `pending` for a claim (a
    /// handler's own transaction, more tasks than free slots).
    commits: AtomicU64,
    /// The value of `commits` when the latest claim began: that claim saw those rows.
    covered: AtomicU64,
    /// Shutdown has collected the attempts to hand back: an attempt stopped after this
    /// (its insert committed late, after a forced or timed-out wait) hands itself back.
    pub(crate) handed_back: AtomicBool,
    /// Itself, for spawning runners from `&self` callbacks.
    this: Weak<Shared>,
    /// The application's runtime, where attempts run: the callbacks that start them may be
    /// called on the client's writer thread.
    handle: tokio::runtime::Handle,
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

    fn lost(&self) -> MutexGuard<'_, std::collections::HashSet<Fence>> {
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
            self.wake.notify_one();
        }
    }

    /// An attempt ended: free its slot and let the claim loop look for more.
    pub(crate) fn finish(&self, fence: &Fence) {
        self.slots().finish(fence);
        self.lost().remove(fence);
        if self.backlog.load(Ordering::Relaxed) {
            self.wake.notify_one();
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
            self.wake.notify_one();
        }
    }

    /// Registers and spawns claimed attempts whose slots are already taken.
    fn spawn_claimed(self: &Arc<Self>, tasks: Vec<ClaimedTask>) {
        {
            let mut slots = self.slots();
            for task in &tasks {
                slots.start(Running {
                    fence: task.fence(),
                    queue: task.queue.clone(),
                    soft: self.soft.child_token(),
                    hard: self.hard.child_token(),
                    settling: false,
                });
            }
        }
        for task in tasks {
            self.tracker
                .spawn_on(execute::run_claimed(Arc::clone(self), task), &self.handle);
        }
    }
}

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

impl Shared {
    fn me(&self) -> Option<Arc<Shared>> {
        self.this.upgrade()
    }
}

/// Configures and starts a [`Runtime`].
///
/// # Examples
///
/// ```no_run
/// # use durable_core::{Registry, Runtime, Store};
/// # use std::time::Duration;
/// # async fn demo(store: impl Store, registry: Registry) {
/// let runtime = Runtime::builder(store, registry)
///     .concurrency(32)
///     .queue_limit("emails", 8)
///     .lease(Duration::from_secs(30))
///     .start();
/// let client = runtime.client(); // enqueue through this: local tasks start at once
/// # let _ = client;
/// let report = runtime.shutdown(Duration::from_secs(10)).await;
/// println!("{report:?}");
/// # }
/// ```
#[derive(Debug)]
pub struct RuntimeBuilder {
    store: Arc<dyn Store>,
    registry: Registry,
    config: Config,
    client: Option<Client>,
    max_payload_bytes: usize,
    heartbeat_set: bool,
    rescue_set: bool,
}

impl RuntimeBuilder {
    /// Most attempts running at once (default 64).
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.concurrency = n.max(1);
        self
    }

    /// Most attempts of `queue` running at once (within the global limit).
    #[must_use]
    pub fn queue_limit(mut self, queue: impl Into<String>, n: usize) -> Self {
        self.config.queue_limits.insert(queue.into(), n);
        self
    }

    /// Lease length (default 30 s): a task of a dead process is claimable again about this
    /// long after its last heartbeat. Heartbeats run every third of it unless
    /// [`heartbeat_interval`](Self::heartbeat_interval) says otherwise, in any call order.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        let lease = lease.max(Duration::from_millis(30));
        self.config.lease = lease;
        if !self.heartbeat_set {
            self.config.heartbeat = lease / 3;
        }
        if !self.rescue_set {
            self.config.rescue_interval = lease / 4;
        }
        self
    }

    /// How often heartbeats extend the leases of running tasks (default: lease / 3). At
    /// most half the lease: [`start`](Self::start) refuses more.
    #[must_use]
    pub fn heartbeat_interval(mut self, every: Duration) -> Self {
        self.config.heartbeat = every.max(Duration::from_millis(10));
        self.heartbeat_set = true;
        self
    }

    /// How often the store is polled for due tasks that no local event announced (default
    /// 2 s): tasks enqueued by other processes without a wakeup (PostgreSQL sends one), or
    /// retries scheduled elsewhere. Local enqueues and this runtime's own retries wake it
    /// at once without polling.
    #[must_use]
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.config.poll_interval = every.max(Duration::from_millis(5));
        self
    }

    /// How often expired leases are swept (default: lease / 4).
    #[must_use]
    pub fn rescue_interval(mut self, every: Duration) -> Self {
        self.config.rescue_interval = every.max(Duration::from_millis(10));
        self.rescue_set = true;
        self
    }

    /// Keep `completed` and `cancelled` rows this long, then delete them (default 24 h);
    /// `None` keeps them forever. `failed` rows are never pruned.
    #[must_use]
    pub fn retention(mut self, keep: Option<Duration>) -> Self {
        self.config.retention = keep;
        self
    }

    /// How often pruning runs, and how many rows one prune statement deletes.
    #[must_use]
    pub fn prune_every(mut self, every: Duration, batch: u32) -> Self {
        self.config.prune_interval = every.max(Duration::from_millis(10));
        self.config.prune_batch = batch.max(1);
        self
    }

    /// After the shutdown grace, how long cancelled tasks get to observe
    /// [`TaskContext::cancelled`](crate::TaskContext::cancelled) and return before they are
    /// dropped (default 500 ms).
    #[must_use]
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.config.cancel_grace = grace;
        self
    }

    /// Whether tasks enqueued through this runtime's client are inserted already claimed
    /// and started at once when there is free capacity (default true).
    #[must_use]
    pub fn local_dispatch(mut self, on: bool) -> Self {
        self.config.local_dispatch = on;
        self
    }

    /// Largest serialized payload accepted at enqueue (default 256 KiB).
    #[must_use]
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// Uses an existing client (same store) instead of creating one.
    #[must_use]
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Starts the runtime's loops on the current Tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, and when the heartbeat interval is more than half the
    /// lease (attempts would lose their leases while healthy and run twice).
    pub fn start(self) -> Runtime {
        if let Err(problem) = self.config.check() {
            panic!("invalid durable runtime settings: {problem}");
        }
        let client = self
            .client
            .unwrap_or_else(|| Client::from_arc(Arc::clone(&self.store), self.max_payload_bytes));
        let shared = Arc::new_cyclic(|this| Shared {
            store: self.store,
            names: self
                .registry
                .names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            registry: self.registry,
            config: self.config,
            owner: WorkerId::new(),
            client: client.clone(),
            stats: Stats::default(),
            tracker: TaskTracker::new(),
            reservations: TaskTracker::new(),
            stopping: CancellationToken::new(),
            soft: CancellationToken::new(),
            hard: CancellationToken::new(),
            slots: Mutex::new(Slots::default()),
            lost: Mutex::new(std::collections::HashSet::new()),
            wake: Arc::new(Notify::new()),
            backlog: AtomicBool::new(true),
            next_due: Mutex::new(None),
            commits: AtomicU64::new(0),
            covered: AtomicU64::new(0),
            handed_back: AtomicBool::new(false),
            this: this.clone(),
            handle: tokio::runtime::Handle::current(),
        });
        let dispatch: Weak<dyn LocalDispatch> = Arc::downgrade(&shared) as Weak<dyn LocalDispatch>;
        if !client.attach(dispatch) {
            tracing::warn!("client already dispatches to another runtime; local dispatch disabled for this one");
        }
        let claimer = TaskTracker::new();
        claimer.spawn(loops::claim_loop(Arc::clone(&shared)));
        claimer.close();
        let loops = TaskTracker::new();
        let maintenance = CancellationToken::new();
        loops.spawn(loops::heartbeat_loop(
            Arc::clone(&shared),
            maintenance.clone(),
        ));
        loops.spawn(loops::prune_loop(Arc::clone(&shared), maintenance.clone()));
        loops.spawn(loops::unclaimable_loop(
            Arc::clone(&shared),
            maintenance.clone(),
        ));
        shared
            .store
            .listen(Arc::clone(&shared.wake), maintenance.clone());
        loops.close();
        tracing::info!(owner = %shared.owner, backend = shared.store.backend(),
            concurrency = shared.config.concurrency, lease_ms = shared.config.lease.as_millis() as u64,
            tasks = ?shared.registry.names(), "durable runtime started");
        Runtime {
            shared,
            claimer,
            loops,
            maintenance,
            force: CancellationToken::new(),
        }
    }
}

/// What [`Runtime::shutdown`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Attempts that were running when shutdown began and finished on their own.
    pub finished: usize,
    /// Attempts stopped and handed back as `pending` (rows changed by the requeue).
    pub requeued: u64,
    /// Whether everything finished within the grace period.
    pub drained: bool,
}

/// A running worker runtime: claims due tasks of the registered types and runs them.
///
/// A cheap handle: clones control the same runtime. Dropping handles does not stop the loops;
/// call [`shutdown`](Self::shutdown), which drains and hands unfinished tasks back
/// (`tracker.close(); token.cancel(); tracker.wait()`, the tokio-util recipe, with a grace
/// period and a requeue at the end).
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
    /// The claim loop: shutdown waits for it, so a claim in flight starts its tasks on the
    /// tracker before the tracker is drained.
    claimer: TaskTracker,
    /// Heartbeats and pruning: stopped after the drain.
    loops: TaskTracker,
    maintenance: CancellationToken,
    force: CancellationToken,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("owner", &self.shared.owner)
            .field("running", &self.running())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Starts configuring a runtime over `store` running the tasks of `registry`.
    pub fn builder(store: impl Store, registry: Registry) -> RuntimeBuilder {
        Self::builder_arc(Arc::new(store), registry)
    }

    /// Like [`builder`](Self::builder), for a store already shared.
    pub fn builder_arc(store: Arc<dyn Store>, registry: Registry) -> RuntimeBuilder {
        RuntimeBuilder {
            store,
            registry,
            config: Config::default(),
            client: None,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            heartbeat_set: false,
            rescue_set: false,
        }
    }

    /// The client whose enqueues this runtime dispatches locally.
    pub fn client(&self) -> Client {
        self.shared.client.clone()
    }

    /// This runtime's lease owner id.
    pub fn worker_id(&self) -> WorkerId {
        self.shared.owner
    }

    /// Attempts running now.
    pub fn running(&self) -> usize {
        self.shared.slots().running_count()
    }

    /// Counters since start.
    pub fn stats(&self) -> RuntimeStats {
        self.shared.stats.snapshot()
    }

    /// A token cancelled when shutdown begins ([`begin_shutdown`](Self::begin_shutdown) or
    /// [`shutdown`](Self::shutdown); `axum_durable::serve` begins it at the first signal,
    /// before the HTTP drain): end server-sent-event streams, long polls, WebSocket loops
    /// and other loops on it, so they do not hold the drain up until its deadline.
    pub fn stopping(&self) -> CancellationToken {
        self.shared.stopping.clone()
    }

    /// Begins a shutdown without waiting for it: the runtime stops claiming (and stops
    /// dispatching new tasks locally: they stay `pending` for this instance's last claim or
    /// another instance), and [`stopping`](Self::stopping) fires. Running attempts go on;
    /// [`shutdown`](Self::shutdown) drains and hands back. Idempotent.
    pub fn begin_shutdown(&self) {
        self.shared.stopping.cancel();
        self.shared.wake.notify_one();
    }

    /// Tracks a future that may be lost (metrics, cache warm-ups): not persisted, but
    /// shutdown waits for it within the grace period like for tasks, and its error or panic
    /// is logged. Same as [`Client::spawn_volatile`] on this runtime's client.
    pub fn spawn_volatile<F, E>(&self, name: &'static str, future: F)
    where
        F: std::future::Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        self.shared.client.spawn_volatile(name, future);
    }

    /// Makes a shutdown in progress skip the rest of its grace period and requeue at once
    /// (wire it to a second Ctrl-C / SIGTERM).
    pub fn force_shutdown(&self) {
        self.force.cancel();
    }

    /// Drains and stops, **within `grace`**: stop claiming (after one last claim if this
    /// process committed due tasks since the latest claim began, so what it acknowledged
    /// just before the signal is drained too); wait for running attempts; then cancel the
    /// rest (they may observe [`TaskContext::cancelled`](crate::TaskContext::cancelled) for
    /// the cancel grace) and mark their rows `pending` again in one statement — lease
    /// released, attempt not counted — so the next process starts them at once.
    ///
    /// The grace is a promise to whoever waits for the process to exit (an orchestrator
    /// that sends SIGKILL after its timeout): every phase fits in it. The end of the grace
    /// is kept for the hand-back — the cancel grace (at most a quarter of `grace`) and a
    /// requeue reserve (a tenth of `grace`, at most 1 s) — and attempts that are still
    /// recording their outcome when the reserve begins (a database that does not answer)
    /// are handed back with the rest rather than waited for. The requeue itself gets at
    /// least 100 ms, so a zero grace still hands the rows back. After
    /// [`force_shutdown`](Self::force_shutdown) every wait ends at once.
    ///
    /// Call it after the HTTP server stopped accepting, so in-flight requests have written
    /// their tasks first.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let shared = &self.shared;
        let budget = Budget::new(grace, shared.config.cancel_grace);
        shared.stopping.cancel();
        shared.wake.notify_one();
        // A claim in flight finishes and spawns what it took before the drain begins;
        // inserts that reserved local capacity either start their tasks or give it back.
        shared.reservations.close();
        let settled = within(self.claimer.wait(), budget.drain_until, &self.force).await
            && within(shared.reservations.wait(), budget.drain_until, &self.force).await
            && within(claim_uncovered(shared), budget.drain_until, &self.force).await;
        let running_at_start = shared.slots().running_count();
        shared.tracker.close();
        let drained =
            settled && within(shared.tracker.wait(), budget.drain_until, &self.force).await;
        let mut requeued = 0;
        if !drained {
            shared.soft.cancel();
            within(shared.tracker.wait(), budget.cancel_until(), &self.force).await;
            shared.hard.cancel();
            // Dropped futures return at once; runners still recording an outcome wait on
            // the database, and only until the reserve begins.
            within(shared.tracker.wait(), budget.requeue_from, &self.force).await;
            // Under the slots' lock, so an attempt registered from now on knows it was not
            // collected and hands itself back.
            let fences: Vec<Fence> = {
                let mut slots = shared.slots();
                shared.handed_back.store(true, Ordering::SeqCst);
                let fences: Vec<Fence> = slots.running().map(|r| r.fence).collect();
                for fence in &fences {
                    slots.finish(fence);
                }
                fences
            };
            requeued = requeue(shared, &fences, budget.requeue_deadline()).await;
        }
        self.maintenance.cancel();
        within(self.loops.wait(), budget.deadline, &self.force).await;
        let unfinished = usize::try_from(requeued).unwrap_or(usize::MAX);
        let report = ShutdownReport {
            finished: running_at_start.saturating_sub(unfinished),
            requeued,
            drained,
        };
        tracing::info!(
            finished = report.finished,
            requeued = report.requeued,
            drained,
            took_ms = budget.started.elapsed().as_millis() as u64,
            "durable runtime stopped"
        );
        report
    }
}

/// The least time a shutdown's requeue is given, whatever the grace.
const MIN_REQUEUE: Duration = Duration::from_millis(100);

/// How a shutdown spends its grace: drain, then cancel, then hand back.
struct Budget {
    started: Instant,
    /// Running attempts may finish on their own until here.
    drain_until: Instant,
    /// Cooperative cancellation lasts this long at most.
    cancel: Duration,
    /// From here on only the requeue runs.
    requeue_from: Instant,
    /// The end of the grace.
    deadline: Instant,
}

impl Budget {
    fn new(grace: Duration, cancel_grace: Duration) -> Self {
        let started = Instant::now();
        let deadline = started + grace;
        let reserve = (grace / 10).min(Duration::from_secs(1));
        let cancel = cancel_grace.min(grace / 4);
        let requeue_from = deadline - reserve;
        Self {
            started,
            drain_until: requeue_from - cancel,
            cancel,
            requeue_from,
            deadline,
        }
    }

    fn cancel_until(&self) -> Instant {
        (Instant::now() + self.cancel).min(self.requeue_from)
    }

    /// The requeue gets what is left of the grace, and at least [`MIN_REQUEUE`]: a grace
    /// too short to hand anything back (zero, say) still makes one attempt rather than
    /// leaving the rows to wait out their leases.
    fn requeue_deadline(&self) -> Instant {
        self.deadline.max(Instant::now() + MIN_REQUEUE)
    }
}

/// Waits for `wait` until `deadline` or a forced shutdown: false if it did not finish.
async fn within(
    wait: impl std::future::Future<Output = ()>,
    deadline: Instant,
    force: &CancellationToken,
) -> bool {
    tokio::select! {
        biased;
        () = wait => true,
        () = force.cancelled() => false,
        () = tokio::time::sleep_until(deadline) => false,
    }
}

/// One last claim when this process committed tasks after the latest claim began (a
/// request's transaction that committed just before the signal, while a claim was running):
/// they were acknowledged by this instance, so it drains them within the grace rather than
/// leaving them for the next start. Pending rows of other origins are left for other workers.
async fn claim_uncovered(shared: &Arc<Shared>) {
    if shared.commits.load(Ordering::SeqCst) == shared.covered.load(Ordering::SeqCst)
        || shared.slots().free(shared.config.concurrency) == 0
    {
        return;
    }
    let runtime: Arc<dyn LocalDispatch> = Arc::clone(shared) as Arc<dyn LocalDispatch>;
    match shared.client.claim(runtime).await {
        Ok(report) => tracing::debug!(
            claimed = report.claimed,
            "claimed tasks committed here just before shutdown"
        ),
        Err(error) => tracing::warn!(
            %error,
            "claim of tasks committed just before shutdown failed; they stay pending"
        ),
    }
}

async fn requeue(shared: &Shared, fences: &[Fence], deadline: Instant) -> u64 {
    if fences.is_empty() {
        return 0;
    }
    let mut pause = Duration::from_millis(50);
    loop {
        match tokio::time::timeout_at(deadline, shared.store.requeue(fences)).await {
            Ok(Ok(n)) => return n,
            Ok(Err(error)) if Instant::now() + pause < deadline => {
                tracing::warn!(%error, "shutdown requeue failed; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Ok(Err(error)) => {
                tracing::error!(%error, tasks = fences.len(),
                    "shutdown requeue failed; these tasks will be recovered when their lease expires");
                return 0;
            }
            Err(_) => {
                tracing::error!(tasks = fences.len(),
                    "shutdown requeue did not finish within the grace; these tasks will be recovered when their lease expires");
                return 0;
            }
        }
    }
}
