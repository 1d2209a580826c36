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

use durable_core::store::{Fence, Store, WriteOutcome};
use durable_core::{Error, Result, WorkerId};

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

    pub fn note(&self, fences: impl IntoIterator<Item = Fence>, at: Instant, delivered: bool) {
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
pub enum Method {
    Heartbeat,
    Rescue,
    Cancel,
    Prune,
    Get,
    Counts,
    Backlog,
    Write,
    MarkStarted,
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
pub trait Answer: Sized + Send + 'static {
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
        WriteOutcome::empty()
            .with_inserted(Err(injected(what)))
            .with_completed(Err(injected(what)))
            .with_settled(Err(injected(what)))
            .with_claimed(Err(injected(what)))
    }
    fn spoil(self, rng: &mut Rng) -> Self {
        let WriteOutcome {
            inserted,
            completed,
            settled,
            claimed,
            ..
        } = self;
        let parts = rng.between(1, 15);
        let what = "error after the write was applied";
        let keep = |bit: u64| parts & bit == 0;
        WriteOutcome::empty()
            .with_inserted(if keep(1) {
                inserted
            } else {
                Err(injected(what))
            })
            .with_completed(if keep(2) {
                completed
            } else {
                Err(injected(what))
            })
            .with_settled(if keep(8) {
                settled
            } else {
                Err(injected(what))
            })
            .with_claimed(if keep(4) {
                claimed
            } else {
                Err(injected(what))
            })
    }
}

/// The decorator: one per simulated process (and one for the producer, incarnation 0).
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    pub faults: Arc<Faults>,
    pub incarnation: u32,
    calls: [AtomicU64; 9],
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
    pub async fn call<T: Answer>(
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

    pub fn inner(&self) -> Arc<dyn Store> {
        Arc::clone(&self.inner)
    }
}
