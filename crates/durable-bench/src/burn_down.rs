//! `burn-down`: 100,000 no-op tasks enqueued before the runtime starts; time until all are
//! completed, at concurrency 32 and 256.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_core::store::Store;
use durable_core::{Client, Registry, Runtime};

use crate::backend::{Backend, BenchStore, NoOp};
use crate::counting::CountingStore;
use crate::http::met;
use crate::stats::{median, num, Table};
use crate::{Result, Settings, Summary};

/// Runtime concurrencies measured.
const CONCURRENCY: [usize; 2] = [32, 256];

/// Per run: rows per claim, rows per completion, tasks per write transaction.
type Batches = Vec<(f64, f64, f64)>;
/// Rows per `enqueue_many` call while preparing.
const CHUNK: usize = 5_000;

/// Enqueues `n` no-op tasks through a client of `store` (no runtime), in chunks; returns
/// the rows/s of that insert.
pub(crate) async fn preload(store: &Arc<dyn Store>, n: u64) -> Result<f64> {
    let client = Client::new(Arc::clone(store));
    let started = Instant::now();
    let mut left = n;
    while left > 0 {
        let chunk = left.min(CHUNK as u64);
        client
            .enqueue_many(std::iter::repeat_n(NoOp {}, chunk as usize))
            .await?;
        left -= chunk;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Starts a runtime of `concurrency` over `store` and waits until `n` tasks completed (or
/// `timeout`). Returns the elapsed time and the runtime (still running).
pub(crate) async fn burn(
    store: &Arc<dyn Store>,
    concurrency: usize,
    n: u64,
    timeout: Duration,
) -> Result<(Duration, Runtime)> {
    let runtime = Runtime::builder(Arc::clone(store), Registry::new().register::<NoOp>(()))
        .concurrency(concurrency)
        .start();
    let started = Instant::now();
    loop {
        if runtime.stats().completed >= n {
            return Ok((started.elapsed(), runtime));
        }
        if started.elapsed() > timeout {
            let stats = runtime.stats();
            runtime.shutdown(Duration::from_secs(5)).await;
            return Err(format!(
                "only {} of {n} tasks completed within {timeout:?}",
                stats.completed
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Runs the mode and prints its table.
pub(crate) async fn run(settings: &Settings, summary: &mut Summary) -> Result<()> {
    let n: u64 = if settings.quick { 10_000 } else { 100_000 };
    let mut rates: HashMap<(Backend, usize), Vec<f64>> = HashMap::new();
    let mut inserts: HashMap<Backend, Vec<f64>> = HashMap::new();
    // (rows per claim, rows per completion statement) per run
    let mut batches: HashMap<(Backend, usize), Batches> = HashMap::new();
    for run in 0..settings.runs {
        for backend in &settings.backends {
            for c in settings.points(&CONCURRENCY) {
                let bench = BenchStore::open(*backend, &settings.database_url).await?;
                let insert_rate = preload(&bench.store, n).await?;
                let counting = Arc::new(CountingStore::new(Arc::clone(&bench.store)));
                let store: Arc<dyn Store> = counting.clone();
                let (elapsed, runtime) = burn(&store, c, n, Duration::from_secs(600)).await?;
                runtime.shutdown(Duration::from_secs(10)).await;
                let counts = bench.store.counts().await?;
                if counts.completed != n {
                    eprintln!("  burn-down: store counts {counts:?}, expected {n} completed");
                }
                bench.close().await?;
                let rate = n as f64 / elapsed.as_secs_f64();
                eprintln!(
                    "  burn-down run {} {backend} c={c}: {:.2} s, {rate:.0} tasks/s (insert {insert_rate:.0} rows/s)",
                    run + 1,
                    elapsed.as_secs_f64()
                );
                rates.entry((*backend, c)).or_default().push(rate);
                let (claim, complete) = (counting.tally("claim"), counting.tally("complete"));
                let writes = counting.tally("write").calls;
                batches.entry((*backend, c)).or_default().push((
                    claim.rows as f64 / claim.calls.max(1) as f64,
                    complete.rows as f64 / complete.calls.max(1) as f64,
                    n as f64 / writes.max(1) as f64,
                ));
                inserts.entry(*backend).or_default().push(insert_rate);
            }
        }
    }
    let mut table = Table::new(
        format!(
            "burn-down: {n} pre-enqueued no-op tasks (medians of {} runs)",
            settings.runs
        ),
        &[
            "store",
            "concurrency",
            "tasks/s",
            "seconds",
            "rows per claim",
            "rows per completion tx",
            "tasks per write tx",
            "target",
            "",
        ],
    );
    for backend in &settings.backends {
        let target = match backend {
            Backend::Sqlite => 20_000.0,
            Backend::Postgres => 10_000.0,
        };
        for c in settings.points(&CONCURRENCY) {
            let rate = median(rates.get(&(*backend, c)).map_or(&[][..], Vec::as_slice));
            let bs = batches.get(&(*backend, c)).map_or(&[][..], Vec::as_slice);
            let per_claim = median(&bs.iter().map(|b| b.0).collect::<Vec<_>>());
            let per_complete = median(&bs.iter().map(|b| b.1).collect::<Vec<_>>());
            let per_write = median(&bs.iter().map(|b| b.2).collect::<Vec<_>>());
            table.row(vec![
                backend.to_string(),
                c.to_string(),
                num(rate),
                num(n as f64 / rate),
                num(per_claim),
                num(per_complete),
                num(per_write),
                format!("≥ {}", num(target)),
                met(rate >= target).to_owned(),
            ]);
            summary.add(
                format!("burn-down {backend} c={c} tasks/s"),
                rate,
                "tasks/s",
            );
        }
        table.note(format!(
            "{backend}: preloading with `enqueue_many` ({CHUNK} per call) ran at a median {} rows/s",
            num(median(inserts.get(backend).map_or(&[][..], Vec::as_slice)))
        ));
    }
    table.print();
    Ok(())
}
