//! Taking one sample: the workers' reports, the producer's counters, the queue depth and the
//! storage, over the interval since the previous sample.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use tokio::time::Instant;

use super::args::Phase;
use super::fleet::Fleet;
use super::histogram::Histogram;
use super::producer::Counters;
use super::sample::Sample;
use super::starts::Starts;
use super::storage::Reader;
use crate::backend::BenchStore;
use crate::sys::MachineCpu;
use crate::Result;

/// Takes the samples of one run.
#[derive(Debug)]
pub(crate) struct Sampler {
    /// When the load started.
    pub(crate) started: Instant,
    /// Reads the storage.
    pub(crate) reader: Reader,
    /// Attempts completed in all samples so far.
    pub(crate) completed: u64,
    /// Attempts retried or failed in all samples so far.
    pub(crate) unsuccessful: u64,
    counters: Arc<Counters>,
    at: Instant,
    offered: u64,
    inserted: u64,
    /// Starts whose batch's commit the producer has not acknowledged yet.
    unresolved: Starts,
    /// The machine's CPU counters at the start of the interval.
    cpu: Option<MachineCpu>,
}

impl Sampler {
    /// Starts the first interval now.
    pub(crate) fn new(counters: Arc<Counters>, reader: Reader) -> Self {
        let now = Instant::now();
        Self {
            started: now,
            reader,
            completed: 0,
            unsuccessful: 0,
            counters,
            at: now,
            offered: 0,
            inserted: 0,
            unresolved: Starts::default(),
            cpu: MachineCpu::read(),
        }
    }

    /// Ends the interval: the sample of `phase`, at position `step` of the run, since the
    /// previous one.
    pub(crate) async fn sample(
        &mut self,
        phase: Phase,
        step: usize,
        fleet: &Fleet,
        bench: &BenchStore,
    ) -> Result<Sample> {
        let mut window = fleet.take();
        self.completed += window.completed();
        self.unsuccessful += window.unsuccessful;
        let now = Instant::now();
        let seconds = (now - self.at).as_secs_f64().max(1e-3);
        let offered = self.counters.offered.load(Ordering::Relaxed);
        let inserted = self.counters.inserted.load(Ordering::Relaxed);
        let commit = self.counters.take_commit();
        let mut pickup = Histogram::default();
        self.unresolved.merge(std::mem::take(&mut window.starts));
        self.unresolved.resolve(
            &self
                .counters
                .acked
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            &mut pickup,
        );
        let cpu = MachineCpu::read();
        let (cpu_busy, cpu_wait) = match (cpu, self.cpu) {
            (Some(now), Some(then)) => {
                (now.busy_percent_since(&then), now.wait_percent_since(&then))
            }
            _ => (f64::NAN, f64::NAN),
        };
        let sample = Sample {
            phase,
            step,
            elapsed_s: (now - self.started).as_secs_f64(),
            offered: (offered - self.offered) as f64 / seconds,
            inserted: (inserted - self.inserted) as f64 / seconds,
            completed: window.rate(seconds),
            unsuccessful: window.unsuccessful,
            claim_p50: window.claim.percentile_ms(50.0),
            claim_p99: window.claim.percentile_ms(99.0),
            claim_max: window.claim.max_ms(),
            pickup_p50: pickup.percentile_ms(50.0),
            pickup_p99: pickup.percentile_ms(99.0),
            commit_p99: commit.percentile_ms(99.0),
            cpu_busy,
            cpu_wait,
            depth: bench.store.backlog().await?,
            storage: self.reader.read().await?,
        };
        self.at = now;
        self.cpu = cpu;
        self.offered = offered;
        self.inserted = inserted;
        Ok(sample)
    }
}
