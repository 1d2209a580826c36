//! `http`: an endpoint spawning one no-op task per request, driven at concurrency 1, 16 and
//! 64, for `tokio::spawn` (baseline), `Durable` and the naive one-transaction-per-request
//! design on each store.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use axum_durable::core::store::Store;
use axum_durable::{Client, Durable, DurableLayer, Registry, Runtime};
use tokio::net::TcpListener;

use crate::backend::{Backend, BenchStore, NoOp};
use crate::counting::CountingStore;
use crate::load::{self, LoadResult};
use crate::stats::{median, ms, num, ratio, Table};
use crate::{Result, Settings, Summary};

/// Connection counts driven.
const CONCURRENCY: [usize; 3] = [1, 16, 64];

/// One server design under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Variant {
    /// `tokio::spawn(async {})` in the handler: the baseline.
    Spawn,
    /// `durable.spawn(NoOp {})` with `DurableLayer` and a running runtime.
    Durable(Backend),
    /// Diagnostic: `durable.spawn` with `DurableLayer` over a client with no runtime (the
    /// rows are stored, nothing runs them): the cost of the write path alone.
    EnqueueOnly(Backend),
    /// One insert + commit per request in the handler.
    Naive(Backend),
}

impl Variant {
    fn label(self) -> String {
        match self {
            Variant::Spawn => "tokio::spawn".to_owned(),
            Variant::Durable(b) => format!("Durable ({b})"),
            Variant::EnqueueOnly(b) => format!("Durable, no runtime ({b})"),
            Variant::Naive(b) => format!("naive tx/request ({b})"),
        }
    }
}

/// Where a `Durable` run's store traffic went.
#[derive(Debug, Clone, Copy, Default)]
struct Traffic {
    /// Rows inserted (tasks acknowledged, warm-up included).
    tasks: u64,
    /// Rows per insert transaction.
    rows_per_insert: f64,
    /// Rows per completion statement.
    rows_per_complete: f64,
    /// Claim statements per 100 tasks.
    claims_per_100: f64,
    /// Write transactions (insert + completion + claim cycles) per 100 tasks.
    writes_per_100: f64,
    /// Share of tasks dispatched locally at insert, in percent.
    local_pct: f64,
}

/// One measurement's figures.
#[derive(Debug, Clone, Copy)]
struct Point {
    rps: f64,
    p50: f64,
    p99: f64,
    errors: u64,
    traffic: Option<Traffic>,
}

impl From<&LoadResult> for Point {
    fn from(r: &LoadResult) -> Self {
        Self {
            rps: r.rps(),
            p50: r.p50(),
            p99: r.p99(),
            errors: r.errors,
            traffic: None,
        }
    }
}

/// Runs the mode and prints its table.
pub(crate) async fn run(settings: &Settings, summary: &mut Summary) -> Result<()> {
    let mut variants = vec![Variant::Spawn];
    for backend in &settings.backends {
        variants.push(Variant::Durable(*backend));
        variants.push(Variant::EnqueueOnly(*backend));
        variants.push(Variant::Naive(*backend));
    }
    let warmup = (settings.duration / 5).min(Duration::from_secs(1));
    let probe_dir = tempfile::Builder::new().prefix("durable-bench").tempdir()?;
    let mut fsync = Vec::new();
    // runs[(variant, c)] = one point per run
    let mut points: HashMap<(Variant, usize), Vec<Point>> = HashMap::new();
    let mut incomplete = Vec::new();
    for run in 0..settings.runs {
        fsync.push(crate::sys::fdatasync_ms(probe_dir.path(), 50)?);
        for c in settings.points(&CONCURRENCY) {
            for variant in &variants {
                let (result, note, traffic) = measure(
                    *variant,
                    c,
                    warmup,
                    settings.duration,
                    &settings.database_url,
                )
                .await?;
                if let Some(note) = note {
                    incomplete.push(format!(
                        "run {}: {} c={c}: {note}",
                        run + 1,
                        variant.label()
                    ));
                }
                eprintln!(
                    "  http run {} {} c={c}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms, {} errors",
                    run + 1,
                    variant.label(),
                    result.rps(),
                    result.p50(),
                    result.p99(),
                    result.errors
                );
                let mut point = Point::from(&result);
                point.traffic = traffic;
                points.entry((*variant, c)).or_default().push(point);
            }
        }
    }
    print_table(settings, &variants, &points, &fsync, &incomplete, summary);
    Ok(())
}

/// Median over runs of `f(point of variant a, point of variant b in the same run)`.
fn paired(
    points: &HashMap<(Variant, usize), Vec<Point>>,
    a: Variant,
    b: Variant,
    c: usize,
    f: impl Fn(&Point, &Point) -> f64,
) -> f64 {
    let (Some(xs), Some(ys)) = (points.get(&(a, c)), points.get(&(b, c))) else {
        return f64::NAN;
    };
    let values: Vec<f64> = xs.iter().zip(ys).map(|(x, y)| f(x, y)).collect();
    median(&values)
}

fn of(
    points: &HashMap<(Variant, usize), Vec<Point>>,
    v: Variant,
    c: usize,
    f: fn(&Point) -> f64,
) -> f64 {
    points
        .get(&(v, c))
        .map_or(f64::NAN, |ps| median(&ps.iter().map(f).collect::<Vec<_>>()))
}

fn print_table(
    settings: &Settings,
    variants: &[Variant],
    points: &HashMap<(Variant, usize), Vec<Point>>,
    fsync: &[f64],
    incomplete: &[String],
    summary: &mut Summary,
) {
    let mut table = Table::new(
        format!(
            "http: one no-op task per request ({} s per point, medians of {} runs)",
            settings.duration.as_secs_f64(),
            settings.runs
        ),
        &[
            "design",
            "conns",
            "req/s",
            "p50 ms",
            "p99 ms",
            "vs tokio::spawn",
            "vs naive",
            "errors",
        ],
    );
    for c in settings.points(&CONCURRENCY) {
        for v in variants {
            let vs_naive = match v {
                Variant::Durable(b) | Variant::EnqueueOnly(b) => {
                    paired(points, *v, Variant::Naive(*b), c, |x, y| x.rps / y.rps)
                }
                _ => f64::NAN,
            };
            let errors: u64 = points
                .get(&(*v, c))
                .map_or(0, |ps| ps.iter().map(|p| p.errors).sum());
            table.row(vec![
                v.label(),
                c.to_string(),
                num(of(points, *v, c, |p| p.rps)),
                ms(of(points, *v, c, |p| p.p50)),
                ms(of(points, *v, c, |p| p.p99)),
                ratio(paired(points, *v, Variant::Spawn, c, |x, y| x.rps / y.rps)),
                ratio(vs_naive),
                errors.to_string(),
            ]);
        }
    }
    let fsync_ms = median(fsync);
    table.note(format!(
        "fdatasync of a 4 KiB append on this disk (the wait of one SQLite FULL commit): median {} ms, measured at the start of each run",
        ms(fsync_ms)
    ));
    for v in variants {
        if let Variant::Durable(b) = v {
            let added = paired(points, *v, Variant::Spawn, 1, |x, y| x.p50 - y.p50);
            let naive_added = paired(points, Variant::Naive(*b), Variant::Spawn, 1, |x, y| {
                x.p50 - y.p50
            });
            let at64 = paired(points, *v, Variant::Spawn, 64, |x, y| x.rps / y.rps);
            let naive64 = paired(points, *v, Variant::Naive(*b), 64, |x, y| x.rps / y.rps);
            let (target_ratio, latency_ok, latency_target) = match b {
                Backend::Sqlite => (
                    0.5,
                    added <= fsync_ms,
                    format!("≤ one fsync ({} ms)", ms(fsync_ms)),
                ),
                Backend::Postgres => (0.35, added < 1.0, "< 1 ms".to_owned()),
            };
            table.note(format!(
                "{b}: added p50 latency at c=1 = {} ms (target {latency_target}: {}; the naive single-row commit adds {} ms); c=64: {} of tokio::spawn (target ≥ {target_ratio}x: {}), {} of naive (target ≥ 3x: {})",
                ms(added),
                met(latency_ok),
                ms(naive_added),
                ratio(at64),
                met(at64 >= target_ratio),
                ratio(naive64),
                met(naive64 >= 3.0),
            ));
            for (name, design, conns) in [
                ("durable", *v, 1),
                ("durable", *v, 64),
                ("naive", Variant::Naive(*b), 1),
                ("naive", Variant::Naive(*b), 64),
            ] {
                let rps = of(points, design, conns, |p| p.rps);
                summary.add(format!("http {name} {b} c={conns} req/s"), rps, "req/s");
            }
            summary.add(format!("http durable {b} added p50 c=1"), added, "ms");
        }
    }
    summary.add(
        "http tokio::spawn c=64 req/s",
        of(points, Variant::Spawn, 64, |p| p.rps),
        "req/s",
    );
    for line in incomplete {
        table.note(line.clone());
    }
    table.print();
    print_traffic(settings, variants, points);
}

fn print_traffic(
    settings: &Settings,
    variants: &[Variant],
    points: &HashMap<(Variant, usize), Vec<Point>>,
) {
    let mut table = Table::new(
        format!(
            "http: where Durable's writes went (store calls counted by a decorator; medians of {} runs)",
            settings.runs
        ),
        &[
            "store",
            "conns",
            "tasks stored",
            "rows per insert tx",
            "rows per completion tx",
            "claims per 100 tasks",
            "write tx per 100 tasks",
            "dispatched locally",
        ],
    );
    for c in settings.points(&CONCURRENCY) {
        for v in variants {
            let Variant::Durable(b) = v else { continue };
            let Some(ps) = points.get(&(*v, c)) else {
                continue;
            };
            let ts: Vec<Traffic> = ps.iter().filter_map(|p| p.traffic).collect();
            let m = |f: fn(&Traffic) -> f64| median(&ts.iter().map(f).collect::<Vec<_>>());
            table.row(vec![
                b.to_string(),
                c.to_string(),
                num(m(|t| t.tasks as f64)),
                num(m(|t| t.rows_per_insert)),
                num(m(|t| t.rows_per_complete)),
                num(m(|t| t.claims_per_100)),
                num(m(|t| t.writes_per_100)),
                format!("{}%", num(m(|t| t.local_pct))),
            ]);
        }
    }
    table.note("warm-up included; a task not dispatched locally at insert (no free slot) is claimed by the runtime's claim loop; inserts, completions and claims queued together share one write transaction");
    table.print();
}

/// "met" / "MISSED".
pub(crate) fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

async fn naive_handler(State(store): State<Arc<BenchStore>>) -> StatusCode {
    match store.naive_insert().await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn durable_handler(durable: Durable) -> &'static str {
    durable.spawn(NoOp {});
    "ok"
}

async fn spawn_handler() -> &'static str {
    tokio::spawn(async {});
    "ok"
}

/// Serves `app` on a free local port, drives it, stops it. Returns the load result.
async fn serve_and_drive(
    app: Router,
    c: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<LoadResult> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .into_future(),
    );
    let result = load::drive(addr, c, warmup, duration).await;
    let _ = stop.send(());
    if tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .is_err()
    {
        eprintln!("  (server did not stop within 5 s)");
    }
    result
}

/// One measurement of one design at one concurrency, on fresh storage. Returns the load
/// result and a note when not every acknowledged task ran.
async fn measure(
    variant: Variant,
    c: usize,
    warmup: Duration,
    duration: Duration,
    url: &str,
) -> Result<(LoadResult, Option<String>, Option<Traffic>)> {
    match variant {
        Variant::Spawn => {
            let app = Router::new().route("/", post(spawn_handler));
            Ok((serve_and_drive(app, c, warmup, duration).await?, None, None))
        }
        Variant::Naive(backend) => {
            let store = Arc::new(BenchStore::open(backend, url).await?);
            let app = Router::new()
                .route("/", post(naive_handler))
                .with_state(Arc::clone(&store));
            let result = serve_and_drive(app, c, warmup, duration).await?;
            if let Ok(store) = Arc::try_unwrap(store) {
                store.close().await?;
            }
            Ok((result, None, None))
        }
        Variant::EnqueueOnly(backend) => {
            let store = BenchStore::open(backend, url).await?;
            let client = Client::new(Arc::clone(&store.store));
            let app = Router::new()
                .route("/", post(durable_handler))
                .layer(DurableLayer::new(client.clone()));
            let result = serve_and_drive(app, c, warmup, duration).await?;
            drop(client);
            store.close().await?;
            Ok((result, None, None))
        }
        Variant::Durable(backend) => {
            let store = BenchStore::open(backend, url).await?;
            let counting = Arc::new(CountingStore::new(Arc::clone(&store.store)));
            let runtime = Runtime::builder(
                Arc::clone(&counting) as Arc<dyn Store>,
                Registry::new().register::<NoOp>(()),
            )
            .start();
            let app = Router::new()
                .route("/", post(durable_handler))
                .layer(DurableLayer::new(runtime.client()));
            let result = serve_and_drive(app, c, warmup, duration).await?;
            // Every acknowledged task must run: wait for the stragglers, then stop.
            let counts_deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            let mut note = None;
            loop {
                let counts = store.store.counts().await?;
                if counts.unfinished() == 0 {
                    break;
                }
                if tokio::time::Instant::now() >= counts_deadline {
                    note = Some(format!(
                        "{} tasks still unfinished 30 s after the load",
                        counts.unfinished()
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            runtime.shutdown(Duration::from_secs(10)).await;
            let stats = runtime.stats();
            drop(runtime);
            let insert = counting.tally("insert");
            let complete = counting.tally("complete");
            let claim = counting.tally("claim");
            let write = counting.tally("write");
            let per = |a: u64, b: u64| a as f64 / (b.max(1)) as f64;
            let traffic = Traffic {
                tasks: insert.rows,
                rows_per_insert: per(insert.rows, insert.calls),
                rows_per_complete: per(complete.rows, complete.calls),
                claims_per_100: 100.0 * per(claim.calls, insert.rows),
                writes_per_100: 100.0 * per(write.calls, insert.rows),
                local_pct: 100.0 * per(stats.dispatched_locally, insert.rows),
            };
            drop(counting);
            store.close().await?;
            Ok((result, note, Some(traffic)))
        }
    }
}
