//! `reference`: the raw database limits on this machine for the same row (the tasks table
//! with its indexes): single-row insert transactions/s and 100-row batches rows/s — SQLite
//! through sqlx directly (WAL, `synchronous` FULL and NORMAL), PostgreSQL through `pgbench`
//! with custom scripts — printed beside the client's own enqueue rate at the same
//! concurrency.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_core::Client;
use durable_sqlx::sqlite::Durability;
use sqlx::SqlitePool;

use crate::backend::{Backend, BenchStore, NoOp};
use crate::stats::{median, num, ratio, Table};
use crate::{Result, Settings, Summary};

/// Client counts for PostgreSQL and for our enqueue.
const CLIENTS: [usize; 2] = [1, 32];
/// Rows per batch.
const BATCH: usize = 100;

/// Runs the mode and prints its table.
pub(crate) async fn run(settings: &Settings, summary: &mut Summary) -> Result<()> {
    let secs = if settings.quick { 3 } else { 10 };
    let window = Duration::from_secs(secs);
    // label -> one value per run
    let mut raw: Vec<(String, &'static str)> = Vec::new();
    let mut values: HashMap<String, Vec<f64>> = HashMap::new();
    let mut push = |label: String, unit: &'static str, value: f64| {
        eprintln!("  reference {label}: {value:.0} {unit}");
        if !raw.iter().any(|(l, _)| *l == label) {
            raw.push((label.clone(), unit));
        }
        values.entry(label).or_default().push(value);
    };
    for _ in 0..settings.runs {
        if settings.backends.contains(&Backend::Sqlite) {
            for (durability, name) in [(Durability::Full, "FULL"), (Durability::Normal, "NORMAL")] {
                let bench = BenchStore::open_sqlite(durability).await?;
                let pool = sqlite_pool(&bench)?;
                let single = sqlite_inserts(&pool, 1, window).await?;
                let batch = sqlite_inserts(&pool, BATCH, window).await?;
                bench.close().await?;
                push(
                    format!("raw SQLite {name} single-row tx, 1 writer"),
                    "tx/s",
                    single,
                );
                push(
                    format!("raw SQLite {name} 100-row tx, 1 writer"),
                    "rows/s",
                    batch,
                );
            }
        }
        if settings.backends.contains(&Backend::Postgres) {
            let bench = BenchStore::open(Backend::Postgres, &settings.database_url).await?;
            let schema = bench.pg_schema().ok_or("postgres schema")?.to_owned();
            for clients in CLIENTS {
                let single = pgbench(&settings.database_url, &schema, 1, clients, secs).await?;
                let batch = pgbench(&settings.database_url, &schema, BATCH, clients, secs).await?;
                push(
                    format!("raw PostgreSQL single-row tx, {clients} clients"),
                    "tx/s",
                    single,
                );
                push(
                    format!("raw PostgreSQL 100-row tx, {clients} clients"),
                    "rows/s",
                    batch * BATCH as f64,
                );
            }
            bench.close().await?;
        }
        for backend in &settings.backends {
            for clients in CLIENTS {
                let bench = BenchStore::open(*backend, &settings.database_url).await?;
                let rate = enqueue_rate(&bench, clients, window).await?;
                bench.close().await?;
                push(
                    format!("durable enqueue ({backend}), {clients} callers"),
                    "tasks/s",
                    rate,
                );
            }
        }
    }
    let med = |label: &str| median(values.get(label).map_or(&[][..], Vec::as_slice));
    let mut table = Table::new(
        format!(
            "reference: raw limits of the same row on this machine, {secs} s each (medians of {} runs)",
            settings.runs
        ),
        &["measurement", "rate", "unit", "durable enqueue at same concurrency", "ratio"],
    );
    for (label, unit) in &raw {
        let value = med(label);
        summary.add(label.clone(), value, unit);
        let ours = ours_for(label).map(|o| (o.clone(), med(&o)));
        table.row(vec![
            label.clone(),
            num(value),
            (*unit).to_owned(),
            ours.as_ref()
                .map_or(String::new(), |(o, v)| format!("{} ({o})", num(*v))),
            ours.as_ref()
                .map_or(String::new(), |(_, v)| ratio(v / value)),
        ]);
    }
    table.note("raw: explicit BEGIN / INSERT / COMMIT per transaction on one connection (SQLite, WAL, through sqlx); PostgreSQL: `pgbench -M prepared -f script` with an INSERT of 1 row or of 100 rows (one statement) per transaction");
    table.note("durable enqueue: `Client::enqueue` of one task per call from N concurrent callers, no runtime; the client group-commits concurrent calls into one transaction");
    table.print();
    Ok(())
}

/// The durable-enqueue label compared with a raw label, if any.
fn ours_for(raw: &str) -> Option<String> {
    if raw.starts_with("raw SQLite FULL single-row") {
        Some("durable enqueue (SQLite), 32 callers".to_owned())
    } else if raw.starts_with("raw PostgreSQL single-row tx, ") {
        let clients = raw.rsplit(", ").next()?.split(' ').next()?;
        Some(format!("durable enqueue (PostgreSQL), {clients} callers"))
    } else {
        None
    }
}

fn sqlite_pool(bench: &BenchStore) -> Result<SqlitePool> {
    // The store's single writer connection: WAL, its `synchronous` setting, the table and its
    // indexes, nothing else of the store involved.
    Ok(bench
        .sqlite_writer()
        .ok_or("sqlite store expected")?
        .clone())
}

/// Inserts `rows` rows per transaction for `window`; returns transactions/s for one row,
/// rows/s otherwise.
async fn sqlite_inserts(pool: &SqlitePool, rows: usize, window: Duration) -> Result<f64> {
    let mut sql = String::from(
        "INSERT INTO durable_tasks (id, name, queue, payload, max_attempts, run_at, created_at, updated_at) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?, 'bench_noop', 'default', '{}', 20, 0, 0, 0)");
    }
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < window {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
        for _ in 0..rows {
            query = query.bind(uuid::Uuid::now_v7().to_string());
        }
        query.execute(&mut *tx).await?;
        tx.commit().await?;
        done += rows as u64;
    }
    Ok(done as f64 / started.elapsed().as_secs_f64())
}

/// Runs `pgbench` with a script inserting `rows` rows per transaction into the schema's
/// tasks table; returns transactions/s.
async fn pgbench(url: &str, schema: &str, rows: usize, clients: usize, secs: u64) -> Result<f64> {
    let dir = tempfile::Builder::new().prefix("durable-bench").tempdir()?;
    let script = dir.path().join("insert.sql");
    let statement = if rows == 1 {
        format!(
            "INSERT INTO \"{schema}\".durable_tasks (id, name, queue, payload, max_attempts) \
             VALUES (gen_random_uuid(), 'bench_noop', 'default', '{{}}', 20);\n"
        )
    } else {
        format!(
            "INSERT INTO \"{schema}\".durable_tasks (id, name, queue, payload, max_attempts) \
             SELECT gen_random_uuid(), 'bench_noop', 'default', '{{}}', 20 FROM generate_series(1, {rows});\n"
        )
    };
    std::fs::write(&script, statement)?;
    let output = tokio::process::Command::new("pgbench")
        .arg("-n")
        .args(["-M", "prepared"])
        .arg("-f")
        .arg(&script)
        .args(["-c", &clients.to_string()])
        .args(["-j", &clients.min(2).to_string()])
        .args(["-T", &secs.to_string()])
        .arg(url)
        .output()
        .await
        .map_err(|e| format!("pgbench could not start ({e}); install postgresql-client"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "pgbench failed: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let tps = stdout
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .ok_or_else(|| format!("no tps in pgbench output: {stdout}"))?;
    Ok(tps.parse()?)
}

/// `Client::enqueue` of one task per call from `callers` concurrent loops for `window`,
/// without a runtime; returns tasks/s.
async fn enqueue_rate(bench: &BenchStore, callers: usize, window: Duration) -> Result<f64> {
    let client = Client::new(Arc::clone(&bench.store));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..callers {
        let client = client.clone();
        handles.push(tokio::spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < window {
                client.enqueue(NoOp {}).await?;
                n += 1;
            }
            Ok::<u64, durable_core::Error>(n)
        }));
    }
    let mut total = 0;
    for handle in handles {
        total += handle.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// The closing summary of `all`: our figures as a ratio of the raw limits.
pub(crate) fn print_ratios(summary: &Summary) {
    let mut table = Table::new(
        "summary: our figures against the raw database limits (same process, medians)",
        &["our figure", "value", "raw limit", "value", "ratio"],
    );
    let pairs = [
        (
            "http durable SQLite c=1 req/s",
            "raw SQLite FULL single-row tx, 1 writer",
        ),
        (
            "http durable SQLite c=64 req/s",
            "raw SQLite FULL single-row tx, 1 writer",
        ),
        (
            "http naive SQLite c=64 req/s",
            "raw SQLite FULL single-row tx, 1 writer",
        ),
        (
            "burn-down SQLite c=256 tasks/s",
            "raw SQLite FULL 100-row tx, 1 writer",
        ),
        (
            "http durable PostgreSQL c=1 req/s",
            "raw PostgreSQL single-row tx, 1 clients",
        ),
        (
            "http durable PostgreSQL c=64 req/s",
            "raw PostgreSQL single-row tx, 32 clients",
        ),
        (
            "http naive PostgreSQL c=64 req/s",
            "raw PostgreSQL single-row tx, 32 clients",
        ),
        (
            "burn-down PostgreSQL c=256 tasks/s",
            "raw PostgreSQL 100-row tx, 32 clients",
        ),
    ];
    for (ours, raw) in pairs {
        if let (Some(a), Some(b)) = (summary.get(ours), summary.get(raw)) {
            table.row(vec![
                ours.to_owned(),
                num(a),
                raw.to_owned(),
                num(b),
                ratio(a / b),
            ]);
        }
    }
    table.print();
}
