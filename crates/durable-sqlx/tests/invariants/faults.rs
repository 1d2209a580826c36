//! A store decorator that injects faults into every call, and the journal of what the
//! store really granted (leases) and what the caller was told.
//!
//! Each call's fault is decided by hashing (seed, process, method, call number): none; an
//! error before the database is reached; an error after the database applied the call (the
//! write happened, the caller thinks it did not); a delay before or after the call
//! (heartbeats: up to a whole lease, so leases get lost); or a timeout: the caller gets an
//! error after a few milliseconds while the call goes on in the background and may still
//! land.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use durable_core::{
    async_trait, ClaimRequest, ClaimedTask, Error, Fence, NewTask, RescueReport, Result,
    StateCounts, Store, TaskId, TaskRecord, WorkerId, WriteBatch, WriteOutcome,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::plan::{hash, Off, Rng};

/// A lease the database really granted: a claim, a claimed insert or a heartbeat that
/// applied. `at` is when the call began: the database's "now" for it is later, so the
/// lease is valid at least until `at + lease`.
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    pub fence: Fence,
    pub at: Instant,
}

/// A heartbeat call and, if the caller got one, the answer (when, and the fences still held).
#[derive(Debug, Clone)]
pub struct Beat {
    pub incarnation: u32,
    pub at: Instant,
    pub held: Vec<Fence>,
    pub answer: Option<(Instant, Vec<Fence>)>,
}

/// What the stores of one iteration did.
#[derive(Debug, Default, Clone)]
pub struct Journal {
    /// Leases the database granted (whether or not the caller heard of it).
    pub granted: Vec<Grant>,
    /// Claims the caller was told about (claims and claimed inserts that returned `Ok`).
    pub delivered: Vec<Grant>,
    pub beats: Vec<Beat>,
    /// Lease owner of each process incarnation.
    pub owners: HashMap<WorkerId, u32>,
    /// Injected faults per kind.
    pub injected: BTreeMap<&'static str, u64>,
    /// Store calls made while faults were on.
    pub calls: u64,
}

/// The fault switch and journal shared by every decorator of an iteration.
#[derive(Debug)]
pub struct Faults {
    seed: u64,
    lease: Duration,
    off: Off,
    on: AtomicBool,
    journal: Mutex<Journal>,
}

impl Faults {
    pub fn new(seed: u64, lease: Duration, off: Off) -> Self {
        Self {
            seed,
            lease,
            off,
            on: AtomicBool::new(true),
            journal: Mutex::default(),
        }
    }

    /// Stops injecting (calls in flight keep their fault).
    pub fn stop(&self) {
        self.on.store(false, Ordering::SeqCst);
    }

    pub fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn note(&self, fences: impl IntoIterator<Item = Fence>, at: Instant, delivered: bool) {
        let mut journal = self.journal();
        let list = if delivered {
            &mut journal.delivered
        } else {
            &mut journal.granted
        };
        list.extend(fences.into_iter().map(|fence| Grant { fence, at }));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Insert,
    Claim,
    Heartbeat,
    Complete,
    Retry,
    Fail,
    Requeue,
    Rescue,
    Cancel,
    Prune,
    Get,
    Counts,
    Backlog,
    Write,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    None,
    ErrorBefore,
    ErrorAfter(u64),
    DelayBefore(Duration),
    DelayAfter(Duration),
    Timeout(Duration),
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::ErrorBefore => "error before",
            Fault::ErrorAfter(_) => "error after",
            Fault::DelayBefore(_) => "delay before",
            Fault::DelayAfter(_) => "delay after",
            Fault::Timeout(_) => "timeout",
        }
    }
}

fn injected(what: &str) -> Error {
    Error::store("injected fault", std::io::Error::other(what.to_owned()))
}

/// A call's answer that a fault can replace with an error.
trait Answer: Sized + Send + 'static {
    fn failed(what: &str) -> Self;
    /// The call succeeded, the caller is told (part of) it failed.
    fn spoil(self, rng: &mut Rng) -> Self;
}

impl<T: Send + 'static> Answer for Result<T> {
    fn failed(what: &str) -> Self {
        Err(injected(what))
    }
    fn spoil(self, _: &mut Rng) -> Self {
        Err(injected("error after the call was applied"))
    }
}

impl Answer for WriteOutcome {
    fn failed(what: &str) -> Self {
        WriteOutcome::new(
            Err(injected(what)),
            Err(injected(what)),
            Err(injected(what)),
        )
    }
    fn spoil(self, rng: &mut Rng) -> Self {
        let WriteOutcome {
            inserted,
            completed,
            claimed,
            ..
        } = self;
        let parts = rng.between(1, 7);
        let what = "error after the write was applied";
        WriteOutcome::new(
            if parts & 1 == 0 {
                inserted
            } else {
                Err(injected(what))
            },
            if parts & 2 == 0 {
                completed
            } else {
                Err(injected(what))
            },
            if parts & 4 == 0 {
                claimed
            } else {
                Err(injected(what))
            },
        )
    }
}

/// The decorator: one per simulated process (and one for the producer, incarnation 0).
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    faults: Arc<Faults>,
    incarnation: u32,
    calls: [AtomicU64; 14],
}

fn fences(claimed: &[ClaimedTask]) -> Vec<Fence> {
    claimed.iter().map(ClaimedTask::fence).collect()
}

/// The fences of rows inserted already claimed (local dispatch): attempt 1 of the owner.
fn local(rows: &[NewTask]) -> Vec<Fence> {
    rows.iter()
        .filter_map(|row| {
            row.claimed_by.map(|claim| Fence {
                id: row.id,
                owner: claim.owner,
                attempt: 1,
            })
        })
        .collect()
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>, faults: Arc<Faults>, incarnation: u32) -> Self {
        Self {
            inner,
            faults,
            incarnation,
            calls: Default::default(),
        }
    }

    fn decide(&self, method: Method) -> Fault {
        if !self.faults.on.load(Ordering::SeqCst) {
            return Fault::None;
        }
        let n = self.calls[method as usize].fetch_add(1, Ordering::Relaxed);
        self.faults.journal().calls += 1;
        let key = [
            self.faults.seed,
            4,
            u64::from(self.incarnation),
            method as u64,
            n,
        ];
        let mut rng = Rng::new(hash(&key));
        let beat = method == Method::Heartbeat;
        // Per mille: error before, error after, delay before, delay after, timeout.
        let odds: [u64; 5] = if beat {
            [50, 30, 150, 120, 30]
        } else {
            [40, 30, 40, 30, 20]
        };
        let lease = self.faults.lease.as_millis() as u64;
        let delay = |rng: &mut Rng| {
            if beat {
                rng.ms(lease / 4, lease)
            } else {
                rng.ms(5, 150)
            }
        };
        let off = &self.faults.off;
        let delays = off.on(if beat {
            "heartbeat-delay"
        } else {
            "store-delay"
        });
        let mut roll = rng.below(1000);
        for (kind, odds) in odds.into_iter().enumerate() {
            if roll >= odds {
                roll -= odds;
                continue;
            }
            let fault = match kind {
                0 if off.on("store-error") => Fault::ErrorBefore,
                1 if off.on("error-after") => Fault::ErrorAfter(rng.next()),
                2 if delays => Fault::DelayBefore(delay(&mut rng)),
                3 if delays => Fault::DelayAfter(delay(&mut rng)),
                4 if off.on("call-timeout") => Fault::Timeout(rng.ms(1, 40)),
                _ => Fault::None,
            };
            if !matches!(fault, Fault::None) {
                *self
                    .faults
                    .journal()
                    .injected
                    .entry(fault.name())
                    .or_insert(0) += 1;
            }
            return fault;
        }
        Fault::None
    }

    /// Runs `real` (a `'static` future doing the real call) under this call's fault.
    async fn call<T: Answer>(
        &self,
        method: Method,
        real: impl Future<Output = T> + Send + 'static,
    ) -> T {
        match self.decide(method) {
            Fault::None => real.await,
            Fault::ErrorBefore => T::failed("error before the call reached the database"),
            Fault::ErrorAfter(seed) => real.await.spoil(&mut Rng::new(seed)),
            Fault::DelayBefore(d) => {
                tokio::time::sleep(d).await;
                real.await
            }
            Fault::DelayAfter(d) => {
                let answer = real.await;
                tokio::time::sleep(d).await;
                answer
            }
            Fault::Timeout(d) => {
                let mut call = tokio::spawn(real);
                match tokio::time::timeout(d, &mut call).await {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(join)) if join.is_panic() => {
                        std::panic::resume_unwind(join.into_panic())
                    }
                    Ok(Err(_)) => T::failed("the call was cancelled"),
                    // Dropping the handle detaches the call: it may still be applied.
                    Err(_) => T::failed("timed out; the call goes on in the background"),
                }
            }
        }
    }

    fn inner(&self) -> Arc<dyn Store> {
        Arc::clone(&self.inner)
    }
}

#[async_trait]
impl Store for FaultyStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn listen(&self, wake: Arc<Notify>, stop: CancellationToken) {
        self.inner.listen(wake, stop);
    }

    fn single_writer(&self) -> bool {
        self.inner.single_writer()
    }

    async fn migrate(&self) -> Result<()> {
        self.inner.migrate().await
    }

    async fn insert(&self, tasks: &[NewTask]) -> Result<()> {
        let (at, inner, faults, rows) = (
            Instant::now(),
            self.inner(),
            Arc::clone(&self.faults),
            tasks.to_vec(),
        );
        let answer = self
            .call(Method::Insert, async move {
                let result = inner.insert(&rows).await;
                if result.is_ok() {
                    faults.note(local(&rows), at, false);
                }
                result
            })
            .await;
        if answer.is_ok() {
            self.faults.note(local(tasks), at, true);
        }
        answer
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<ClaimedTask>> {
        let (at, inner, faults, request) = (
            Instant::now(),
            self.inner(),
            Arc::clone(&self.faults),
            request.clone(),
        );
        let answer = self
            .call(Method::Claim, async move {
                let result = inner.claim(&request).await;
                if let Ok(claimed) = &result {
                    faults.note(fences(claimed), at, false);
                }
                result
            })
            .await;
        if let Ok(claimed) = &answer {
            self.faults.note(fences(claimed), at, true);
        }
        answer
    }

    async fn heartbeat(&self, held: &[Fence], lease: Duration) -> Result<Vec<Fence>> {
        let (at, inner, faults, list) = (
            Instant::now(),
            self.inner(),
            Arc::clone(&self.faults),
            held.to_vec(),
        );
        let answer = self
            .call(Method::Heartbeat, async move {
                let result = inner.heartbeat(&list, lease).await;
                if let Ok(still) = &result {
                    faults.note(still.iter().copied(), at, false);
                }
                result
            })
            .await;
        self.faults.journal().beats.push(Beat {
            incarnation: self.incarnation,
            at,
            held: held.to_vec(),
            answer: answer
                .as_ref()
                .ok()
                .map(|still| (Instant::now(), still.clone())),
        });
        answer
    }

    async fn complete(&self, fences: &[Fence]) -> Result<Vec<TaskId>> {
        let (inner, list) = (self.inner(), fences.to_vec());
        self.call(Method::Complete, async move { inner.complete(&list).await })
            .await
    }

    async fn retry(&self, fence: &Fence, delay: Duration, error: &str) -> Result<bool> {
        let (inner, fence, error) = (self.inner(), *fence, error.to_owned());
        self.call(Method::Retry, async move {
            inner.retry(&fence, delay, &error).await
        })
        .await
    }

    async fn fail(&self, fence: &Fence, error: &str) -> Result<bool> {
        let (inner, fence, error) = (self.inner(), *fence, error.to_owned());
        self.call(
            Method::Fail,
            async move { inner.fail(&fence, &error).await },
        )
        .await
    }

    async fn requeue(&self, fences: &[Fence]) -> Result<u64> {
        let (inner, list) = (self.inner(), fences.to_vec());
        self.call(Method::Requeue, async move { inner.requeue(&list).await })
            .await
    }

    async fn rescue_expired(&self) -> Result<RescueReport> {
        let inner = self.inner();
        self.call(Method::Rescue, async move { inner.rescue_expired().await })
            .await
    }

    async fn cancel(&self, id: TaskId) -> Result<bool> {
        let inner = self.inner();
        self.call(Method::Cancel, async move { inner.cancel(id).await })
            .await
    }

    async fn prune(&self, older_than: Duration, limit: u32) -> Result<u64> {
        let inner = self.inner();
        self.call(Method::Prune, async move {
            inner.prune(older_than, limit).await
        })
        .await
    }

    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        let inner = self.inner();
        self.call(Method::Get, async move { inner.get(id).await })
            .await
    }

    async fn counts(&self) -> Result<StateCounts> {
        let inner = self.inner();
        self.call(Method::Counts, async move { inner.counts().await })
            .await
    }

    async fn backlog(&self) -> Result<u64> {
        let inner = self.inner();
        self.call(Method::Backlog, async move { inner.backlog().await })
            .await
    }

    async fn write(&self, batch: WriteBatch<'_>) -> WriteOutcome {
        let at = Instant::now();
        let (inner, faults) = (self.inner(), Arc::clone(&self.faults));
        let (rows, done, claim) = (
            batch.insert.to_vec(),
            batch.complete.to_vec(),
            batch.claim.cloned(),
        );
        let answer = self
            .call(Method::Write, async move {
                let mut batch = WriteBatch::new().insert(&rows).complete(&done);
                if let Some(claim) = &claim {
                    batch = batch.claim(claim);
                }
                let outcome = inner.write(batch).await;
                if outcome.inserted.is_ok() {
                    faults.note(local(&rows), at, false);
                }
                if let Ok(claimed) = &outcome.claimed {
                    faults.note(fences(claimed), at, false);
                }
                outcome
            })
            .await;
        if answer.inserted.is_ok() {
            self.faults.note(local(batch.insert), at, true);
        }
        if let Ok(claimed) = &answer.claimed {
            self.faults.note(fences(claimed), at, true);
        }
        answer
    }
}
