//! A worker process of `horizon`: a runtime over the parent's store with local dispatch off
//! (every task arrives through a claim), reporting to the parent on stdout every half
//! second until its stdin closes.

use std::io::Write as _;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use durable_core::store::Store;
use durable_core::{Registry, Runtime, Task, TaskContext, TaskError};
use durable_sqlx::postgres::PostgresStore;
use durable_sqlx::sqlite::{Durability, SqliteStore};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnectOptions;

use super::args::Args;
use super::histogram::Histogram;
use super::protocol::Line;
use super::starts::Starts;
use crate::backend::Backend;
use crate::Result;

/// How often a worker reports.
pub(crate) const REPORT_EVERY: Duration = Duration::from_millis(500);

/// Microseconds since the Unix epoch: the clock the producer stamps and the workers read
/// (one machine, one wall clock for every process).
pub(crate) fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The task of `horizon`: carries the instant it was handed to the producer's batch (the
/// task context does not expose the row's `run_at`), sleeps, succeeds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Timed {
    /// Unix microseconds when the producer built the batch, just before its commit.
    pub(crate) at_us: i64,
}

/// What the tasks of one worker process share: the sleep and the latencies since the last
/// report.
#[derive(Debug)]
pub(crate) struct Probe {
    sleep: Duration,
    claim: Mutex<Histogram>,
    starts: Mutex<Starts>,
}

impl Task for Timed {
    const NAME: &'static str = "bench_horizon";
    type State = Arc<Probe>;

    async fn run(self, cx: TaskContext<Arc<Probe>>) -> Result<(), TaskError> {
        let waited = unix_micros() - self.at_us;
        let probe = cx.state();
        probe
            .claim
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(waited);
        probe
            .starts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(self.at_us, waited);
        tokio::time::sleep(probe.sleep).await;
        Ok(())
    }
}

/// Writes one protocol line and flushes it (the parent reads line by line through a pipe).
fn send(line: &Line) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", line.encode())?;
    out.flush()?;
    Ok(())
}

/// Opens the parent's store (already migrated) on `target`: a schema or a SQLite URL.
async fn open(
    backend: Backend,
    database_url: &str,
    durability: Durability,
    target: &str,
) -> Result<Arc<dyn Store>> {
    Ok(match backend {
        Backend::Postgres => Arc::new(
            PostgresStore::builder_with_options(PgConnectOptions::from_str(database_url)?)
                .schema(target)
                .application_name("durable-bench-horizon")
                .connect()
                .await?,
        ),
        Backend::Sqlite => Arc::new(
            SqliteStore::builder(target)
                .durability(durability)
                .connect()
                .await?,
        ),
    })
}

/// Runs a worker process until its stdin closes (or says `stop`).
pub(crate) async fn run(
    backend: Backend,
    database_url: &str,
    durability: Durability,
    args: &Args,
) -> Result<()> {
    let target = args
        .worker_target
        .as_deref()
        .ok_or("a horizon worker needs --worker-target")?;
    let store = open(backend, database_url, durability, target).await?;
    let probe = Arc::new(Probe {
        sleep: args.task_sleep,
        claim: Mutex::new(Histogram::default()),
        starts: Mutex::new(Starts::default()),
    });
    let mut builder =
        Runtime::builder(store, Registry::new().register::<Timed>(Arc::clone(&probe)))
            .concurrency(args.worker_slots)
            .claim_ahead(args.claim_ahead)
            .local_dispatch(false);
    if let Some(every) = args.poll_interval {
        builder = builder.poll_interval(every);
    }
    if let Some(keep) = args.retention {
        builder = builder.retention(Some(keep));
    }
    let runtime = builder.start();
    send(&Line::Ready)?;

    // A thread reads stdin (blocking): EOF (the parent closed the pipe or died) stops the
    // worker as `stop` does.
    let (stopped, stop) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            match line {
                Ok(line) if line.trim() != "stop" => {}
                _ => break,
            }
        }
        let _ = stopped.send(());
    });
    tokio::pin!(stop);
    let mut ticker = tokio::time::interval(REPORT_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = (runtime.stats(), std::time::Instant::now());
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticker.tick() => last = report(&runtime, &probe, last)?,
        }
    }
    runtime.shutdown(Duration::from_secs(10)).await;
    report(&runtime, &probe, last)?;
    send(&Line::Done)
}

/// Sends what happened since `last` (the counters and the instant of the previous report);
/// returns the counters and the instant now.
fn report(
    runtime: &Runtime,
    probe: &Probe,
    (last, since): (durable_core::runtime::RuntimeStats, std::time::Instant),
) -> Result<(durable_core::runtime::RuntimeStats, std::time::Instant)> {
    let at = std::time::Instant::now();
    let now = runtime.stats();
    let claim = std::mem::take(&mut *probe.claim.lock().unwrap_or_else(PoisonError::into_inner));
    let starts = std::mem::take(&mut *probe.starts.lock().unwrap_or_else(PoisonError::into_inner));
    send(&Line::Report {
        completed: now.completed - last.completed,
        unsuccessful: (now.retried + now.failed) - (last.retried + last.failed),
        span_us: u64::try_from((at - since).as_micros()).unwrap_or(u64::MAX),
        claim,
        starts,
    })?;
    Ok((now, at))
}
