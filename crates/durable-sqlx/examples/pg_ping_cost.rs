//! What pinging every pooled connection before use costs a PostgreSQL enqueue.
//!
//! Times sequential single-row enqueues (one request at a time, so every enqueue is its own
//! writer cycle: one acquire, one INSERT) with `ping_after_idle(Duration::ZERO)` — sqlx's
//! default `test_before_acquire(true)`, a ping per acquire — and with the store's default
//! (ping only connections idle 10 s or more), alternating the two. With a one-way delay
//! the connections go through a local proxy that holds every packet that long, standing in
//! for a network between the application and the database.
//!
//! ```sh
//! cargo run --release -p durable-sqlx --features postgres --example pg_ping_cost -- \
//!     postgres://postgres@127.0.0.1:5432/test 2000 250
//! ```
//!
//! Arguments: database URL, enqueues per run (default 2000), one-way delay in microseconds
//! (default 0: no proxy).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::str::FromStr;
use std::time::{Duration, Instant};

use durable_core::{Client, Task, TaskContext, TaskError};
use durable_sqlx::postgres::PostgresStore;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Serialize, Deserialize)]
struct Noop {
    n: usize,
}

impl Task for Noop {
    const NAME: &'static str = "noop";
    type State = ();
    async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
        Ok(())
    }
}

/// Forwards `from` to `to`, holding each chunk `delay` first.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let mut buf = vec![0; 64 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        std::thread::sleep(delay);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// A local TCP proxy to `target` adding `delay` each way; returns its port.
fn proxy(target: String, delay: Duration) -> Result<u16, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            std::thread::spawn(move || pipe(client, server, delay));
            std::thread::spawn(move || pipe(s2, c2, delay));
        }
    });
    Ok(port)
}

/// Milliseconds per enqueue over `n` sequential enqueues (after a warm-up).
async fn run(
    options: &PgConnectOptions,
    schema: &str,
    ping_every_time: bool,
    n: usize,
) -> Result<f64, BoxError> {
    let mut builder = PostgresStore::builder_with_options(options.clone()).schema(schema);
    if ping_every_time {
        builder = builder.ping_after_idle(Duration::ZERO);
    }
    let store = builder.connect().await?;
    store.migrate().await?;
    let client = Client::new(store.clone());
    for i in 0..100 {
        client.enqueue(Noop { n: i }).await?;
    }
    let started = Instant::now();
    for i in 0..n {
        client.enqueue(Noop { n: i }).await?;
    }
    let per = started.elapsed().as_secs_f64() * 1000.0 / n as f64;
    store.pool().close().await;
    Ok(per)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let n: usize = args.next().map_or(Ok(2000), |a| a.parse())?;
    let delay_us: u64 = args.next().map_or(Ok(0), |a| a.parse())?;
    let mut options = PgConnectOptions::from_str(&url)?;
    if delay_us > 0 {
        let target = format!("{}:{}", options.get_host(), options.get_port());
        let port = proxy(target, Duration::from_micros(delay_us))?;
        options = options.host("127.0.0.1").port(port);
    }
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    let mut results = [Vec::new(), Vec::new()];
    for round in 0..5 {
        for (i, ping) in [true, false].into_iter().enumerate() {
            let per = run(&options, &schema, ping, n).await?;
            println!(
                "round {round}: {} {per:.3} ms per enqueue",
                if ping {
                    "ping every acquire  "
                } else {
                    "ping after 10 s idle"
                }
            );
            results[i].push(per);
        }
    }
    for (i, label) in ["ping every acquire", "ping after 10 s idle"]
        .iter()
        .enumerate()
    {
        results[i].sort_by(f64::total_cmp);
        println!("{label}: median {:.3} ms per enqueue", results[i][2]);
    }
    let mut conn = PgConnection::connect(&url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(())
}
