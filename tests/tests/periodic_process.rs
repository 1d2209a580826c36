//! Periodic tasks across processes: three instances of `example-signup` run its digest
//! schedule every 200 ms on one database, while instances are SIGKILLed and restarted one at
//! a time and all at once. Every occurrence from the first to the last is enqueued exactly
//! once, none is skipped (the schedule's catch-up policy keeps up to 1,000 missed ones), and
//! each one's digest is recorded once.
//!
//! Both backends; the PostgreSQL variant needs
//! `DURABLE_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use durable_tests::{wait_until, Backend, Inspector, Server, TestDb};

/// The digest's period, as given to the example.
const PERIOD_MS: i64 = 200;
/// Occurrences the run must cover at least.
const OCCURRENCES: usize = 30;
/// Deadline for any condition that should hold "soon" (generous: 2 cores, parallel tests).
const DEADLINE: Duration = Duration::from_secs(60);

const ENV: &[(&str, &str)] = &[
    ("DIGEST_EVERY_MS", "200"),
    ("LEASE_MS", "2000"),
    ("SHUTDOWN_GRACE_MS", "1000"),
    ("RUST_LOG", "info"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_each_occurrence_once_across_restarts() {
    each_occurrence_once_across_restarts(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_each_occurrence_once_across_restarts() {
    each_occurrence_once_across_restarts(Backend::Postgres).await;
}

/// One `signup_digest` row: its occurrence (Unix ms, from the payload: `run_at` moves when a
/// killed attempt is retried), when it was inserted, its state.
#[derive(Debug, Clone)]
struct Digest {
    at: i64,
    created_at: i64,
    state: String,
}

async fn digests(inspector: &Inspector) -> Vec<Digest> {
    let rows: Vec<(String, i64, String)> = match inspector {
        Inspector::Sqlite(pool) => sqlx::query_as(
            "SELECT json_extract(payload, '$.at'), created_at, state FROM durable_tasks
             WHERE name = 'signup_digest'",
        )
        .fetch_all(pool)
        .await
        .expect("read digest tasks"),
        Inspector::Postgres(pool) => sqlx::query_as(
            "SELECT payload ->> 'at', (extract(epoch FROM created_at) * 1000)::int8, state
             FROM durable_tasks WHERE name = 'signup_digest'",
        )
        .fetch_all(pool)
        .await
        .expect("read digest tasks"),
    };
    let mut rows: Vec<Digest> = rows
        .into_iter()
        .map(|(at, created_at, state)| Digest {
            at: chrono::DateTime::parse_from_rfc3339(&at)
                .unwrap_or_else(|e| panic!("occurrence {at:?}: {e}"))
                .timestamp_millis(),
            created_at,
            state,
        })
        .collect();
    rows.sort_by_key(|d| d.at);
    rows
}

/// The occurrences whose digest the task recorded (the example's `digests` table).
async fn recorded(inspector: &Inspector) -> Vec<i64> {
    match inspector {
        Inspector::Sqlite(pool) => {
            sqlx::query_scalar("SELECT scheduled_at FROM digests ORDER BY scheduled_at")
                .fetch_all(pool)
                .await
        }
        Inspector::Postgres(pool) => {
            sqlx::query_scalar(
                "SELECT (extract(epoch FROM scheduled_at) * 1000)::int8 FROM digests
             ORDER BY scheduled_at",
            )
            .fetch_all(pool)
            .await
        }
    }
    .expect("read digests")
}

/// Waits until at least `n` digest occurrences are stored.
async fn until_occurrences(inspector: &Inspector, n: usize) {
    wait_until(&format!("{n} digest occurrences"), DEADLINE, async || {
        let count = digests(inspector).await.len();
        if count >= n {
            Ok(())
        } else {
            Err(count)
        }
    })
    .await;
}

async fn each_occurrence_once_across_restarts(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(Server::start(&db, ENV).await);
    }
    let inspector = Inspector::connect(&db).await;
    until_occurrences(&inspector, 3).await;

    // One instance at a time: killed mid-flight, the others go on; then it comes back.
    for round in 0..6 {
        let victim = round % 3;
        servers[victim].sigkill();
        let seen = digests(&inspector).await.len();
        until_occurrences(&inspector, seen + 2).await;
        servers[victim] = Server::start(&db, ENV).await;
    }

    // Every instance at once, for a second of downtime: the first to start catches up.
    for server in &mut servers {
        server.sigkill();
    }
    let before_outage = digests(&inspector).await.len();
    let down_since = Instant::now();
    wait_until("a second of downtime", DEADLINE, async || {
        (down_since.elapsed() >= Duration::from_secs(1))
            .then_some(())
            .ok_or(())
    })
    .await;
    for server in &mut servers {
        *server = Server::start(&db, ENV).await;
    }
    until_occurrences(&inspector, OCCURRENCES.max(before_outage + 5)).await;

    // Two instances go; the last one runs what is left, then stops cleanly.
    servers[0].sigkill();
    servers[1].sigkill();
    let last = digests(&inspector)
        .await
        .last()
        .map(|d| d.at)
        .expect("digests");
    let done = wait_until(
        "every digest enqueued so far to complete and be recorded",
        DEADLINE,
        async || {
            let rows = digests(&inspector).await;
            let upto: Vec<Digest> = rows.into_iter().filter(|d| d.at <= last).collect();
            let unfinished = upto.iter().filter(|d| d.state != "completed").count();
            let recorded = recorded(&inspector).await;
            if unfinished == 0 && recorded.iter().filter(|at| **at <= last).count() >= upto.len() {
                Ok((upto, recorded))
            } else {
                Err((unfinished, upto.len(), recorded.len()))
            }
        },
    )
    .await;
    servers[2].terminate(Duration::from_secs(10)).await;
    let (rows, recorded) = done;

    let at: Vec<i64> = rows.iter().map(|d| d.at).collect();
    assert!(at.len() >= OCCURRENCES, "{} occurrences", at.len());
    let distinct: BTreeSet<i64> = at.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        at.len(),
        "an occurrence enqueued twice: {at:?}"
    );
    for pair in at.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            PERIOD_MS,
            "an occurrence skipped between {} and {}: {at:?}",
            pair[0],
            pair[1]
        );
    }
    let recorded: BTreeSet<i64> = recorded.into_iter().filter(|r| *r <= last).collect();
    assert_eq!(recorded, distinct, "each occurrence's digest recorded once");
    // The outage was caught up: several occurrences enqueued at once, well after their time.
    let late = rows
        .iter()
        .filter(|d| d.created_at - d.at >= 2 * PERIOD_MS)
        .count();
    assert!(
        late >= 3,
        "{late} occurrences enqueued late: the outage left no gap to catch up"
    );
}
