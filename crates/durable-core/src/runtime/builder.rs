//! Configuring and starting a runtime.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::alert::{AlertConfig, Alerts};
use super::handle::Runtime;
use super::loops;
use super::settings::Settings;
use super::shared::Shared;
use super::slots::Slots;
use super::stats::Stats;
use crate::client::{Client, Link, Wake, DEFAULT_MAX_PAYLOAD_BYTES};
use crate::ids::WorkerId;
use crate::registry::Registry;
use crate::store::{Store, Wakeup};
use crate::writer::LocalRuntime;

impl Runtime {
    /// Starts configuring a runtime over `store` running the tasks of `registry`.
    pub fn builder(store: impl Store, registry: Registry) -> RuntimeBuilder {
        RuntimeBuilder::new(Arc::new(store), registry)
    }
}

/// Configures and starts a [`Runtime`].
///
/// # Examples
///
/// ```no_run
/// # use durable_core::{store::Store, Registry, Runtime};
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
    pub(super) config: Settings,
    client: Option<Client>,
    max_payload_bytes: usize,
    heartbeat_set: bool,
    rescue_set: bool,
    pub(super) alert: Option<AlertConfig>,
    pub(super) alert_timeout_set: Option<Duration>,
}

/// How long one call of the alerting hook may run by default.
pub(super) const DEFAULT_ALERT_TIMEOUT: Duration = Duration::from_secs(30);

impl RuntimeBuilder {
    pub(super) fn new(store: Arc<dyn Store>, registry: Registry) -> Self {
        Self {
            store,
            registry,
            config: Settings::default(),
            client: None,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            heartbeat_set: false,
            rescue_set: false,
            alert: None,
            alert_timeout_set: None,
        }
    }

    /// Most attempts running at once (default 64).
    ///
    /// A slot is taken when a claim is sized and given back when its task returns, so
    /// without [`claim_ahead`](Self::claim_ahead) a runtime runs at most `n` tasks per claim
    /// round trip: with short tasks and a database slow to answer (its cores taken by other
    /// work), the default [`ClaimAhead::Auto`](super::ClaimAhead::Auto) claims the next
    /// tasks while the slots run; with `claim_ahead(0)`, size `n` for the round trip too,
    /// not only for the tasks' own time.
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.concurrency = n.max(1);
        self
    }

    /// How many tasks to claim beyond the free slots:
    /// [`ClaimAhead::Auto`](super::ClaimAhead::Auto) (default) or a fixed count
    /// (`claim_ahead(0)`: only for free slots). Tasks claimed ahead wait in this runtime,
    /// their leases renewed like the running tasks', and each starts as soon as a slot is
    /// given back, with no claim round trip in between; never more than
    /// [`concurrency`](Self::concurrency) run at once.
    ///
    /// It matters for short tasks behind a database that is far away or slow to answer (its
    /// cores taken by reports, say): without it the slots wait for claims instead of running
    /// tasks. `Auto` claims what the slots finish in one measured round trip, so a task
    /// claimed ahead waits about as long as claiming it later would take, and claims none
    /// ahead of tasks that run longer than `concurrency` round trips, nor while every slot
    /// has been held for longer than a round trip with no task starting or ending (long
    /// tasks among short ones: new tasks are left to instances with room). A slot held by
    /// an attempt running eight times the average finishes nothing the average predicts:
    /// with most slots held by long tasks, the count is what the others finish. The cost is
    /// fairness where task run times vary widely: a task claimed ahead waits for a slot here
    /// even if another instance has one free — up to the rest of a long task's run when the
    /// slots fill with long tasks just after it was claimed — so set `0` for a runtime whose
    /// short tasks share the slots with tasks that run for minutes. Tasks claimed ahead count toward
    /// [`queue_limit`](Self::queue_limit)s as running ones do (and in the
    /// `durable_runtime_busy_slots` gauge); at shutdown they are run within the grace or
    /// handed back unstarted, as they were (neither a requeue nor an attempt counts).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(store: std::sync::Arc<dyn durable_core::store::Store>, registry: durable_core::Registry) {
    /// use durable_core::Runtime;
    ///
    /// // Minutes-long tasks: claim only for free slots.
    /// let runtime = Runtime::builder(store, registry).claim_ahead(0).start();
    /// # }
    /// ```
    #[must_use]
    pub fn claim_ahead(mut self, ahead: impl Into<super::ClaimAhead>) -> Self {
        self.config.claim_ahead = ahead.into();
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
    /// at once without polling. Between wakeups the claim loop claims again only while its
    /// last claim filled every free slot (more is probably due), once a batch of slots is
    /// free; new work announced while every slot is busy is claimed at the first slot given
    /// back.
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

    /// How often the store's housekeeping runs (default 1 s; `None`: never). On PostgreSQL it
    /// vacuums the live partition of `durable_tasks` when dead row versions pile up there,
    /// so the table claims scan stays small even where autovacuum is off or wakes once a
    /// minute (its default); concurrent instances skip a vacuum another one is running.
    #[must_use]
    pub fn maintain_every(mut self, every: Option<Duration>) -> Self {
        self.config.maintain_interval = every.map(|d| d.max(Duration::from_millis(10)));
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
        let client = self.client.unwrap_or_else(|| {
            Client::builder(Arc::clone(&self.store))
                .max_payload_bytes(self.max_payload_bytes)
                .build()
        });
        super::observe::describe();
        let maintenance = CancellationToken::new();
        let (alerts, deliver) = match self.alert {
            Some(mut alert) => {
                if let Some(timeout) = self.alert_timeout_set {
                    alert.timeout = timeout;
                }
                let (alerts, deliver) =
                    Alerts::start(alert, self.config.alert_after_attempts, maintenance.clone());
                (Some(alerts), Some(deliver))
            }
            None => (None, None),
        };
        let shared = Arc::new_cyclic(|this| Shared {
            store: self.store,
            names: claimable_names(&self.registry),
            registry: self.registry,
            // Before `config` moves in.
            running: super::execute::run_gate(&self.config),
            estimate: super::ahead::Estimate::default(),
            config: self.config,
            owner: WorkerId::new(),
            client: client.clone(),
            stats: Stats::default(),
            alerts,
            throughput: super::throughput::Throughput::default(),
            tracker: TaskTracker::new(),
            reservations: TaskTracker::new(),
            stopping: CancellationToken::new(),
            soft: CancellationToken::new(),
            hard: CancellationToken::new(),
            slots: Mutex::new(Slots::default()),
            lost: Mutex::new(std::collections::HashSet::new()),
            wake: Arc::new(Wake::default()),
            backlog: AtomicBool::new(true),
            next_due: Mutex::new(None),
            covered: AtomicU64::new(0),
            handed_back: AtomicBool::new(false),
            this: this.clone(),
            handle: tokio::runtime::Handle::current(),
        });
        let local: Weak<dyn LocalRuntime> = Arc::downgrade(&shared) as Weak<dyn LocalRuntime>;
        let link = Link {
            wake: Arc::clone(&shared.wake),
            tracker: shared.tracker.clone(),
            hard: shared.hard.clone(),
            handle: shared.handle.clone(),
            cancels: Arc::downgrade(&shared) as Weak<dyn crate::client::Cancels>,
        };
        if !client.attach(local, link) {
            tracing::warn!("client already dispatches to another runtime; local dispatch disabled for this one");
        }
        let claimer = TaskTracker::new();
        claimer.spawn(loops::claim_loop(Arc::clone(&shared)));
        claimer.spawn(loops::rescue_loop(Arc::clone(&shared)));
        claimer.close();
        let loops = TaskTracker::new();
        if let Some(deliver) = deliver {
            loops.spawn(deliver);
        }
        spawn_reporting(&loops, &shared, &maintenance);
        loops.spawn(loops::heartbeat_loop(
            Arc::clone(&shared),
            maintenance.clone(),
        ));
        loops.spawn(loops::prune_loop(Arc::clone(&shared), maintenance.clone()));
        loops.spawn(loops::maintain_loop(
            Arc::clone(&shared),
            maintenance.clone(),
        ));
        loops.spawn(loops::unclaimable_loop(
            Arc::clone(&shared),
            maintenance.clone(),
        ));
        loops.spawn(forward_wakeups(Arc::clone(&shared), maintenance.clone()));
        // Stops when shutdown begins: no occurrence is enqueued by an instance on its way out.
        loops.spawn(super::scheduler::scheduler_loop(
            Arc::clone(&shared),
            shared.stopping.clone(),
        ));
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

/// Spawns the loops that report what the runtime did: the throughput flush and, with the
/// `metrics` feature, the state gauges' refresh.
fn spawn_reporting(loops: &TaskTracker, shared: &Arc<Shared>, stop: &CancellationToken) {
    loops.spawn(super::throughput::flush_loop(
        Arc::clone(shared),
        stop.clone(),
    ));
    if cfg!(feature = "metrics") {
        if let Some(every) = shared.config.stats_interval {
            loops.spawn(super::observe::stats_loop(
                Arc::clone(shared),
                every,
                stop.clone(),
            ));
        }
    }
}

/// Wakes the claim loop on each of the store's cross-process wakeups, until `stop`.
async fn forward_wakeups(shared: Arc<Shared>, stop: CancellationToken) {
    let mut wakeups = shared.store.wakeups();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            wakeup = wakeups.next() => match wakeup {
                Some(Wakeup::Due) => shared.wake.notify(),
                Some(Wakeup::Cancel(id)) => shared.cancel_attempts(id),
                None => return,
            },
        }
    }
}

/// The task types a runtime claims: those its registry knows.
fn claimable_names(registry: &Registry) -> Arc<[String]> {
    registry.names().into_iter().map(str::to_owned).collect()
}
