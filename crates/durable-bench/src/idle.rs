//! `idle`: what a runtime with nothing to do costs: process CPU time and store queries per
//! second (counted by a decorator around the store; on PostgreSQL also the database's
//! committed transactions from `pg_stat_database`).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_core::store::Store;
use durable_core::{Registry, Runtime};
use durable_testkit::PgDatabase;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::backend::{Backend, BenchStore, NoOp};
use crate::counting::CountingStore;
use crate::http::met;
use crate::stats::{median, num, Table};
use crate::sys::cpu_seconds;
use crate::{Result, Settings, Summary};

/// One run's figures.
#[derive(Debug, Clone, Default)]
struct Figures {
    cpu_ms_per_s: f64,
    queries_per_s: f64,
    xact_per_s: Option<f64>,
    methods: HashMap<&'static str, crate::counting::Tally>,
}

/// Committed transactions of database `name`, read from the administrative database (so
/// the reading itself is not counted).
async fn xact_commit(admin_url: &str, name: &str) -> Result<i64> {
    let mut conn = PgConnectOptions::from_str(admin_url)?.connect().await?;
    let n: i64 = sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
        .bind(name)
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(n)
}

/// Runs the mode and prints its table.
pub(crate) async fn run(settings: &Settings, summary: &mut Summary) -> Result<()> {
    let window = if settings.quick {
        Duration::from_secs(5)
    } else {
        Duration::from_secs(30)
    };
    let mut figures: HashMap<Backend, Vec<Figures>> = HashMap::new();
    for run in 0..settings.runs {
        for backend in &settings.backends {
            let f = measure(*backend, window, &settings.database_url).await?;
            eprintln!(
                "  idle run {} {backend}: {:.3} ms CPU/s, {:.3} store calls/s, xact/s {:?}, {:?}",
                run + 1,
                f.cpu_ms_per_s,
                f.queries_per_s,
                f.xact_per_s,
                f.methods
            );
            figures.entry(*backend).or_default().push(f);
        }
    }
    let mut table = Table::new(
        format!(
            "idle: a started runtime with nothing to do, over {} s (medians of {} runs)",
            window.as_secs(),
            settings.runs
        ),
        &[
            "store",
            "CPU ms per s",
            "% of one core",
            "store calls/s",
            "db commits/s (pg_stat_database)",
            "calls by method (last run)",
            "target < 1 query/s",
        ],
    );
    for backend in &settings.backends {
        let fs = figures.get(backend).map_or(&[][..], Vec::as_slice);
        let cpu = median(&fs.iter().map(|f| f.cpu_ms_per_s).collect::<Vec<_>>());
        let qps = median(&fs.iter().map(|f| f.queries_per_s).collect::<Vec<_>>());
        let xact: Vec<f64> = fs.iter().filter_map(|f| f.xact_per_s).collect();
        let mut methods: Vec<_> = fs
            .last()
            .map(|f| {
                f.methods
                    .iter()
                    .map(|(k, v)| format!("{k} {}", v.calls))
                    .collect()
            })
            .unwrap_or_default();
        methods.sort();
        table.row(vec![
            backend.to_string(),
            num(cpu),
            format!("{:.2}%", cpu / 10.0),
            num(qps),
            if xact.is_empty() {
                "–".to_owned()
            } else {
                num(median(&xact))
            },
            methods.join(", "),
            met(qps < 1.0).to_owned(),
        ]);
        summary.add(format!("idle {backend} store calls/s"), qps, "calls/s");
        summary.add(format!("idle {backend} CPU ms/s"), cpu, "ms/s");
    }
    table.note("CPU: utime+stime of the whole benchmark process over the window, after a 1 s settle, default runtime settings (poll 2 s, lease 30 s, prune every 60 s)");
    table.note("store calls: a `write` (one writer cycle) is one call; the parts it carried are also listed under their own names (a `claim` inside a `write` is not a second call)");
    table.note("db commits/s: delta of `xact_commit` of a database created for the run, from runtime start to after its pools closed (includes start-up and shutdown statements and the LISTEN session)");
    table.print();
    Ok(())
}

async fn measure(backend: Backend, window: Duration, url: &str) -> Result<Figures> {
    let database = match backend {
        Backend::Postgres => Some(PgDatabase::create(url, "durable_bench_db").await?),
        Backend::Sqlite => None,
    };
    let bench = match &database {
        // Migrate on one pool, then work on a fresh one: the migration's connections have
        // exited (and reported their statistics) before the baseline is read.
        Some(db) => {
            BenchStore::open_postgres(db.url())
                .await?
                .fresh_pool()
                .await?
        }
        None => BenchStore::open(Backend::Sqlite, url).await?,
    };
    let xact_before = match &database {
        Some(db) => {
            // Let the migration's backends report their statistics first.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Some(xact_commit(url, db.name()).await?)
        }
        None => None,
    };
    let counting = Arc::new(CountingStore::new(Arc::clone(&bench.store)));
    let store: Arc<dyn Store> = counting.clone();
    let started = Instant::now();
    let runtime = Runtime::builder(store, Registry::new().register::<NoOp>(())).start();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let calls_before = counting.calls();
    let cpu_before = cpu_seconds()?;
    let measured = Instant::now();
    tokio::time::sleep(window).await;
    let cpu = cpu_seconds()? - cpu_before;
    let secs = measured.elapsed().as_secs_f64();
    let calls = counting.calls() - calls_before;
    runtime.shutdown(Duration::from_secs(5)).await;
    let total_secs = started.elapsed().as_secs_f64();
    let methods = counting.by_method();
    drop(runtime);
    drop(counting);
    let schema_close = bench.close();
    schema_close.await?;
    let xact_per_s = match (&database, xact_before) {
        (Some(db), Some(before)) => {
            // Backends flush their statistics when they exit.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let after = xact_commit(url, db.name()).await?;
            Some((after - before) as f64 / total_secs)
        }
        _ => None,
    };
    if let Some(db) = database {
        db.drop_now().await?;
    }
    Ok(Figures {
        cpu_ms_per_s: cpu * 1000.0 / secs,
        queries_per_s: calls as f64 / secs,
        xact_per_s,
        methods,
    })
}
