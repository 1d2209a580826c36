//! `pickup`: an idle runtime, tasks enqueued one by one 10 ms apart; latency from just
//! before `enqueue` to the task's first line, locally (local dispatch) and, on PostgreSQL,
//! for a second instance woken only by `NOTIFY`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use durable_core::store::Store;
use durable_core::{Client, Registry, Runtime, Task, TaskContext, TaskError};
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, BenchStore};
use crate::http::met;
use crate::stats::{median, ms, percentile_signed, Table};
use crate::{Result, Settings, Summary};

/// When each probe's first line ran, by sequence number.
type Starts = Arc<Mutex<HashMap<u64, Instant>>>;

/// A task recording the instant its `run` starts.
#[derive(Debug, Serialize, Deserialize)]
struct Probe {
    seq: u64,
}

impl Task for Probe {
    const NAME: &'static str = "bench_probe";
    type State = Starts;

    async fn run(self, cx: TaskContext<Starts>) -> Result<(), TaskError> {
        let now = Instant::now();
        cx.state()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(self.seq)
            .or_insert(now);
        Ok(())
    }
}

/// Where the runtime runs relative to the enqueuing client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Path {
    /// Enqueued through the runtime's own client: local dispatch.
    Local(Backend),
    /// Reference: the naive single-row transaction (begin, insert, commit) at the same pace.
    RawCommit(Backend),
    /// Enqueued through a client on store A; the runtime runs on store B (own pool), poll
    /// interval 1 h, so only `NOTIFY` wakes it.
    Notify,
}

impl Path {
    fn label(self) -> String {
        match self {
            Path::Local(b) => format!("{b}, same process (local dispatch)"),
            Path::RawCommit(b) => format!("{b}: reference, one single-row insert tx (no task)"),
            Path::Notify => "PostgreSQL, second instance via NOTIFY".to_owned(),
        }
    }
}

/// One run's percentiles, in ms.
#[derive(Debug, Clone, Copy)]
struct Figures {
    enqueue_p50: f64,
    enqueue_p99: f64,
    commit_p50: f64,
    commit_p99: f64,
    missing: usize,
    local: u64,
}

/// Runs the mode and prints its table.
pub(crate) async fn run(settings: &Settings, summary: &mut Summary) -> Result<()> {
    let n: u64 = if settings.quick { 50 } else { 200 };
    let mut paths: Vec<Path> = settings
        .backends
        .iter()
        .flat_map(|b| [Path::RawCommit(*b), Path::Local(*b)])
        .collect();
    if settings.backends.contains(&Backend::Postgres) {
        paths.push(Path::Notify);
    }
    let mut figures: HashMap<Path, Vec<Figures>> = HashMap::new();
    for run in 0..settings.runs {
        for path in &paths {
            let f = match path {
                Path::RawCommit(b) => measure_raw(*b, n, &settings.database_url).await?,
                _ => measure(*path, n, &settings.database_url).await?,
            };
            eprintln!(
                "  pickup run {} {}: p50 {:.3} ms, p99 {:.3} ms, commit->start p50 {:.3} ms, {} missing",
                run + 1,
                path.label(),
                f.enqueue_p50,
                f.enqueue_p99,
                f.commit_p50,
                f.missing
            );
            figures.entry(*path).or_default().push(f);
        }
    }
    let mut table = Table::new(
        format!(
            "pickup: {n} tasks enqueued 10 ms apart into an idle runtime (medians of {} runs)",
            settings.runs
        ),
        &[
            "path",
            "enqueue→start p50 ms",
            "p99 ms",
            "commit→start p50 ms",
            "p99 ms",
            "dispatched locally",
            "not started",
            "target",
        ],
    );
    for path in &paths {
        let fs = figures.get(path).map_or(&[][..], Vec::as_slice);
        let m = |f: fn(&Figures) -> f64| median(&fs.iter().map(f).collect::<Vec<_>>());
        let p50 = m(|f| f.enqueue_p50);
        let (target, ok) = match path {
            Path::Local(_) => ("p50 < 1 ms", p50 < 1.0),
            Path::Notify => ("p50 < 5 ms", p50 < 5.0),
            Path::RawCommit(_) => ("", true),
        };
        table.row(vec![
            path.label(),
            ms(p50),
            ms(m(|f| f.enqueue_p99)),
            ms(m(|f| f.commit_p50)),
            ms(m(|f| f.commit_p99)),
            fs.iter().map(|f| f.local).sum::<u64>().to_string(),
            fs.iter().map(|f| f.missing).sum::<usize>().to_string(),
            if target.is_empty() {
                String::new()
            } else {
                format!("{target}: {}", met(ok))
            },
        ]);
        summary.add(format!("pickup {} p50", path.label()), p50, "ms");
    }
    table.note(
        "enqueue→start: from just before `client.enqueue(..)` to the task's first line; \
         commit→start: from `enqueue` returning to the first line (negative: the task started \
         before the caller got its answer, as local dispatch spawns it right at commit)",
    );
    table.print();
    Ok(())
}

async fn measure(path: Path, n: u64, url: &str) -> Result<Figures> {
    let backend = match path {
        Path::Local(b) | Path::RawCommit(b) => b,
        Path::Notify => Backend::Postgres,
    };
    let bench = BenchStore::open(backend, url).await?;
    let starts: Starts = Arc::new(Mutex::new(HashMap::new()));
    let registry = Registry::new().register::<Probe>(Arc::clone(&starts));
    let (runtime, client, second) = match path {
        Path::Local(_) => {
            let runtime = Runtime::builder(Arc::clone(&bench.store), registry).start();
            let client = runtime.client();
            (runtime, client, None)
        }
        Path::RawCommit(_) => return Err("raw commits are measured by measure_raw".into()),
        Path::Notify => {
            let b = bench
                .second_instance()
                .await?
                .ok_or("second instance needs PostgreSQL")?;
            let shared: Arc<dyn Store> = Arc::new(b.clone());
            let runtime = Runtime::builder(shared, registry)
                .poll_interval(Duration::from_secs(3600))
                .start();
            let client = Client::new(Arc::clone(&bench.store));
            (runtime, client, Some(b))
        }
    };
    // Let the runtime finish its first claim (and open its LISTEN connection) first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut sent = Vec::with_capacity(n as usize);
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    for seq in 0..n {
        ticker.tick().await;
        let before = Instant::now();
        client.enqueue(Probe { seq }).await?;
        let after = Instant::now();
        sent.push((seq, before, after));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while starts.lock().map_or(0, |m| m.len()) < n as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let local = runtime.stats().dispatched_locally;
    runtime.shutdown(Duration::from_secs(5)).await;
    drop(client);
    let starts = starts.lock().map_err(|_| "probe map poisoned")?.clone();
    let mut enqueue_to_start = Vec::new();
    let mut commit_to_start = Vec::new();
    for (seq, before, after) in &sent {
        if let Some(start) = starts.get(seq) {
            enqueue_to_start.push(signed_ms(*start, *before));
            commit_to_start.push(signed_ms(*start, *after));
        }
    }
    if let Some(b) = second {
        b.pool().close().await;
    }
    bench.close().await?;
    Ok(Figures {
        enqueue_p50: percentile_signed(&enqueue_to_start, 50.0),
        enqueue_p99: percentile_signed(&enqueue_to_start, 99.0),
        commit_p50: percentile_signed(&commit_to_start, 50.0),
        commit_p99: percentile_signed(&commit_to_start, 99.0),
        missing: sent.len() - enqueue_to_start.len(),
        local,
    })
}

/// The floor under local pickup: latency of one naive single-row insert transaction,
/// `n` of them 10 ms apart, on a fresh store of `backend`.
async fn measure_raw(backend: Backend, n: u64, url: &str) -> Result<Figures> {
    let bench = BenchStore::open(backend, url).await?;
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    let mut latencies = Vec::with_capacity(n as usize);
    for _ in 0..n {
        ticker.tick().await;
        let before = Instant::now();
        bench.naive_insert().await?;
        latencies.push(signed_ms(Instant::now(), before));
    }
    bench.close().await?;
    Ok(Figures {
        enqueue_p50: percentile_signed(&latencies, 50.0),
        enqueue_p99: percentile_signed(&latencies, 99.0),
        commit_p50: f64::NAN,
        commit_p99: f64::NAN,
        missing: 0,
        local: 0,
    })
}

/// `a - b` in milliseconds, negative when `a` is earlier.
fn signed_ms(a: Instant, b: Instant) -> f64 {
    if a >= b {
        (a - b).as_secs_f64() * 1000.0
    } else {
        -((b - a).as_secs_f64() * 1000.0)
    }
}
