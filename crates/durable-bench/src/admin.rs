//! `admin`: latency of the admin reads (`stats`, `list` pages, a payload search, `get`,
//! `throughput`) on a table of `--rows` tasks (default 1,000,000) in realistic proportions:
//! 90% completed, 5% failed, 3% pending, 1% processing, 1% cancelled. The rows are seeded
//! with one set-based statement per backend, not through the store, so seeding a million
//! takes seconds.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use durable_core::store::{ListQuery, Store, ThroughputBucket};
use durable_core::{TaskId, TaskState, WorkerId};

use crate::backend::{Backend, BenchStore};
use crate::stats::{ms, num, percentile_ms, Table};
use crate::{Result, Settings, Summary};

/// Times each read is measured (after one warm-up call).
const SAMPLES: usize = 30;

/// Rows each page asks for.
const PAGE: u32 = 50;

/// Milliseconds between seeded rows' creation times (their ids are UUID v7 of that time).
const SPACING_MS: i64 = 1;

/// SQLite: ?1 rows, ?2 first creation time (ms). Ids are UUID v7 text built from each row's
/// creation time, so id order is creation order as for real rows.
const SEED_SQLITE: &str = "
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1),
r AS (SELECT i, ?2 + i AS ms, i % 100 AS k FROM n)
INSERT INTO durable_tasks (id, name, queue, payload, state, priority, attempts, max_attempts,
    run_at, lease_owner, lease_expires_at, last_error, errors, created_at, updated_at,
    started_at, finished_at)
SELECT printf('%08x-%04x-7000-8000-%012x', ms >> 16, ms & 65535, i),
    CASE WHEN i % 7 = 0 THEN 'send_report' ELSE 'send_email' END,
    CASE WHEN i % 10 = 0 THEN 'slow' ELSE 'default' END,
    json_object('user', i, 'email', 'user' || i || '@example.com'),
    CASE WHEN k < 90 THEN 'completed' WHEN k < 95 THEN 'failed' WHEN k < 98 THEN 'pending'
         WHEN k < 99 THEN 'processing' ELSE 'cancelled' END,
    0, CASE WHEN k < 95 OR k = 98 THEN 1 ELSE 0 END, 3, ms,
    CASE WHEN k = 98 THEN '00000000-0000-7000-8000-000000000001' END,
    CASE WHEN k = 98 THEN ?2 + ?1 + 3600000 END,
    CASE WHEN k BETWEEN 90 AND 94 THEN 'smtp: connection refused' END,
    CASE WHEN k BETWEEN 90 AND 94 THEN json_array(json_object('attempt', 1, 'at', ms,
        'worker', NULL, 'message', 'smtp: connection refused')) ELSE '[]' END,
    ms, ms, CASE WHEN k < 95 OR k = 98 THEN ms END,
    CASE WHEN k < 95 OR k = 99 THEN ms END
FROM r";

/// PostgreSQL: $1 rows, $2 first creation time (ms). As [`SEED_SQLITE`]; finished rows go
/// to the history partition (`archived`), as the statements that finish tasks move them.
const SEED_POSTGRES: &str = "
INSERT INTO durable_tasks (id, name, queue, payload, state, priority, attempts, max_attempts,
    run_at, lease_owner, lease_expires_at, last_error, errors, created_at, updated_at,
    started_at, finished_at, archived)
SELECT (substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,
    CASE WHEN i % 7 = 0 THEN 'send_report' ELSE 'send_email' END,
    CASE WHEN i % 10 = 0 THEN 'slow' ELSE 'default' END,
    jsonb_build_object('user', i, 'email', 'user' || i || '@example.com'),
    CASE WHEN k < 90 THEN 'completed' WHEN k < 95 THEN 'failed' WHEN k < 98 THEN 'pending'
         WHEN k < 99 THEN 'processing' ELSE 'cancelled' END,
    0, CASE WHEN k < 95 OR k = 98 THEN 1 ELSE 0 END, 3, at,
    CASE WHEN k = 98 THEN '00000000-0000-7000-8000-000000000001'::uuid END,
    CASE WHEN k = 98 THEN now() + interval '1 hour' END,
    CASE WHEN k BETWEEN 90 AND 94 THEN 'smtp: connection refused' END,
    CASE WHEN k BETWEEN 90 AND 94 THEN jsonb_build_array(jsonb_build_object('attempt', 1,
        'at', ms, 'worker', NULL, 'message', 'smtp: connection refused')) ELSE '[]' END,
    at, at, CASE WHEN k < 95 OR k = 98 THEN at END,
    CASE WHEN k < 95 OR k = 99 THEN at END,
    k < 95 OR k = 99
FROM (
    SELECT i, ms, i % 100 AS k, lpad(to_hex(ms), 12, '0') AS h,
        to_timestamp(ms / 1000.0) AS at
    FROM (SELECT i, $2::int8 + i AS ms FROM generate_series(0::int8, $1::int8 - 1) AS i) AS s
) AS r";

/// The id the seed gives row `i`.
fn seeded_id(first_ms: i64, i: i64) -> TaskId {
    let ms = first_ms + i * SPACING_MS;
    let text = format!("{:08x}-{:04x}-7000-8000-{:012x}", ms >> 16, ms & 0xffff, i);
    text.parse().unwrap_or_else(|_| TaskId::new())
}

/// Seeds `rows` tasks; returns how long it took.
async fn seed(bench: &BenchStore, rows: u64, first_ms: i64) -> Result<Duration> {
    let started = Instant::now();
    let rows = i64::try_from(rows)?;
    if let Some(writer) = bench.sqlite_writer() {
        sqlx::query(SEED_SQLITE)
            .bind(rows)
            .bind(first_ms)
            .execute(writer)
            .await?;
        sqlx::query("ANALYZE").execute(writer).await?;
    } else if let Some(pool) = bench.pg_pool() {
        sqlx::query(SEED_POSTGRES)
            .bind(rows)
            .bind(first_ms)
            .execute(pool)
            .await?;
        // What autovacuum does soon after a bulk insert (the table's insert threshold is 5%):
        // without it, every index-only scan still visits the heap.
        sqlx::query("VACUUM (ANALYZE) durable_tasks_live, durable_tasks_history")
            .execute(pool)
            .await?;
    }
    Ok(started.elapsed())
}

/// Median and p99 of `SAMPLES` calls of `read`, in ms (one warm-up call first).
async fn time<F, Fut>(mut read: F) -> Result<(f64, f64)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = durable_core::Result<()>>,
{
    read().await?;
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        read().await?;
        samples.push(started.elapsed());
    }
    samples.sort();
    Ok((percentile_ms(&samples, 50.0), percentile_ms(&samples, 99.0)))
}

/// One backend's rows of the table: (read, median ms, p99 ms).
async fn measure(
    backend: Backend,
    rows: u64,
    url: &str,
) -> Result<(Duration, Vec<(String, f64, f64)>)> {
    let bench = BenchStore::open(backend, url).await?;
    let first_ms = Utc::now().timestamp_millis() - i64::try_from(rows)? * SPACING_MS;
    let seeded = seed(&bench, rows, first_ms).await?;
    let store: Arc<dyn Store> = Arc::clone(&bench.store);
    let rows_i = i64::try_from(rows)?;
    let deep = seeded_id(first_ms, rows_i * 8 / 10);
    let one = seeded_id(first_ms, rows_i / 2);
    let needle = format!("\"user{}@", rows_i * 99 / 100);
    let workers: Vec<WorkerId> = (0..4).map(|_| WorkerId::new()).collect();
    let now = store.now();
    for worker in &workers {
        let buckets: Vec<ThroughputBucket> = (0..60)
            .map(|m| ThroughputBucket::new(now - TimeDelta::minutes(m), 100, 2, 1))
            .collect();
        store.add_throughput(*worker, &buckets).await?;
    }
    let mut figures = Vec::new();
    let mut add =
        |name: &str, (median, p99): (f64, f64)| figures.push((name.to_owned(), median, p99));
    add(
        "stats()",
        time(|| async { store.stats().await.map(drop) }).await?,
    );
    add(
        "state_stats() (the state gauges' read)",
        time(|| async { store.state_stats().await.map(drop) }).await?,
    );
    add(
        "list: first page, newest first",
        time(|| async {
            store
                .list(&ListQuery::new(PAGE).newest_first())
                .await
                .map(drop)
        })
        .await?,
    );
    add(
        "list: failed, newest first",
        time(|| async {
            let query = ListQuery::new(PAGE).state(TaskState::Failed).newest_first();
            store.list(&query).await.map(drop)
        })
        .await?,
    );
    add(
        "list: page at 80% of the keyset",
        time(|| async {
            store
                .list(&ListQuery::new(PAGE).after(deep))
                .await
                .map(drop)
        })
        .await?,
    );
    add(
        "list: search (one match, newest first)",
        time(|| async {
            let query = ListQuery::new(PAGE).search(needle.clone()).newest_first();
            store.list(&query).await.map(drop)
        })
        .await?,
    );
    add(
        "get",
        time(|| async { store.get(one).await.map(drop) }).await?,
    );
    add(
        "throughput (last hour, 4 instances)",
        time(|| async { store.throughput(now - TimeDelta::hours(1)).await.map(drop) }).await?,
    );
    bench.close().await?;
    Ok((seeded, figures))
}

/// Runs the mode and prints its table.
pub(crate) async fn run(settings: &Settings, summary: &mut Summary) -> Result<()> {
    let rows = settings.rows;
    let mut table = Table::new(
        format!("admin: reads on {rows} tasks (90% completed, 5% failed, 3% pending, 1% processing, 1% cancelled; {SAMPLES} calls each)"),
        &["store", "read", "median ms", "p99 ms"],
    );
    for backend in &settings.backends {
        let (seeded, figures) = measure(*backend, rows, &settings.database_url).await?;
        eprintln!(
            "  admin {backend}: seeded {rows} rows in {:.1} s",
            seeded.as_secs_f64()
        );
        for (name, median, p99) in figures {
            summary.add(format!("admin {backend} {name} median"), median, "ms");
            table.row(vec![backend.to_string(), name, ms(median), ms(p99)]);
        }
        table.note(format!(
            "{backend}: rows seeded in {} s with one set-based statement, then `ANALYZE` (PostgreSQL: `VACUUM (ANALYZE)`, as autovacuum would)",
            num(seeded.as_secs_f64())
        ));
    }
    table.note("search: one payload matches; a call reads at most SEARCH_SCAN (10,000) rows and returns where to resume");
    table.print();
    Ok(())
}
