//! Whole-system test of the example: each binary is started on a fresh SQLite file, sent
//! [`ORDERS`] orders, SIGKILLed while their confirmations are being sent, and restarted on
//! the same file. `raw` (`tokio::spawn`) loses every confirmation that was in progress;
//! `durable` (`#[task]` + `Durable`) loses none.
//!
//! `cargo test -p example-migrate-from-spawn -- --nocapture` prints the figures.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tempfile::TempDir;

/// Orders posted before the kill.
const ORDERS: usize = 20;
/// `WORK_MS`: long enough that every order is still mid-send when the process is killed.
const WORK: Duration = Duration::from_millis(2000);
/// `LEASE_MS`: how long `durable` waits before taking over a dead process's tasks.
const LEASE: Duration = Duration::from_millis(2000);
/// Upper bound on any wait (startup, recovery).
const DEADLINE: Duration = Duration::from_secs(30);

/// A fresh directory with the SQLite file and the servers' logs; prints the logs if the
/// test panics.
struct Scenario {
    bin: &'static str,
    exe: &'static str,
    dir: TempDir,
    logs: Vec<PathBuf>,
    http: reqwest::Client,
}

/// A running binary, SIGKILLed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Scenario {
    fn new(bin: &'static str, exe: &'static str) -> Self {
        Self {
            bin,
            exe,
            dir: tempfile::tempdir().expect("create a temp dir"),
            logs: Vec::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("build the HTTP client"),
        }
    }

    fn database_url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("migrate.db").display())
    }

    /// Starts the binary on a free port, stderr and stdout to `<bin>-<n>.log`, and waits
    /// for `/health`.
    async fn start(&mut self) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("find a free port")
            .port();
        let log_path = self
            .dir
            .path()
            .join(format!("{}-{}.log", self.bin, self.logs.len() + 1));
        let log = File::create(&log_path).expect("create the log file");
        self.logs.push(log_path);
        let child = Command::new(self.exe)
            .env("DATABASE_URL", self.database_url())
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("WORK_MS", WORK.as_millis().to_string())
            .env("LEASE_MS", LEASE.as_millis().to_string())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file handle"))
            .stderr(log)
            .spawn()
            .expect("start the binary");
        let mut server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = server.child.try_wait().expect("poll the child") {
                panic!("{} exited during startup: {status}", self.bin);
            }
            let health = self.http.get(format!("{}/health", server.base)).send();
            if let Ok(response) = health.await {
                if response.status() == StatusCode::OK {
                    return server;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} not healthy after {DEADLINE:?}",
                self.bin
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Posts the orders concurrently; every one must be accepted.
    async fn post_orders(&self, server: &Server) -> Vec<String> {
        let ids: Vec<String> = (1..=ORDERS).map(|i| format!("order-{i:02}")).collect();
        let mut requests = tokio::task::JoinSet::new();
        for id in &ids {
            let request = self
                .http
                .post(format!("{}/orders", server.base))
                .json(&serde_json::json!({ "id": id }))
                .send();
            requests.spawn(request);
        }
        while let Some(result) = requests.join_next().await {
            let response = result
                .expect("request task")
                .expect("POST /orders answered");
            assert_eq!(response.status(), StatusCode::ACCEPTED, "POST /orders");
        }
        ids
    }

    /// A connection to the scenario's SQLite file (WAL: reads do not block the server).
    async fn db(&self) -> SqlitePool {
        let options = SqliteConnectOptions::from_str(&self.database_url())
            .expect("parse the database URL")
            .busy_timeout(Duration::from_secs(10));
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("open the SQLite file")
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for path in &self.logs {
                let text = std::fs::read_to_string(path).unwrap_or_else(|e| e.to_string());
                eprintln!("===== {} =====\n{text}", path.display());
            }
        }
    }
}

impl Server {
    /// SIGKILL: no shutdown hook, no drain, exactly like `kill -9` or an OOM kill.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Order ids recorded in `sent`, sorted.
async fn sent(db: &SqlitePool) -> Vec<String> {
    sqlx::query_scalar("SELECT order_id FROM sent ORDER BY order_id")
        .fetch_all(db)
        .await
        .expect("read `sent`")
}

/// Rows of `durable_tasks` per state.
async fn task_states(db: &SqlitePool) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>("SELECT state, COUNT(*) FROM durable_tasks GROUP BY state")
        .fetch_all(db)
        .await
        .expect("read `durable_tasks`")
        .into_iter()
        .collect()
}

/// Sleeps until `at` (no-op if past).
async fn sleep_until(at: Instant) {
    tokio::time::sleep(at.saturating_duration_since(Instant::now())).await;
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[tokio::test]
async fn raw_tokio_spawn_loses_the_work_in_progress() {
    let mut scenario = Scenario::new("raw", env!("CARGO_BIN_EXE_raw"));
    let server = scenario.start().await;
    let posted = Instant::now();
    scenario.post_orders(&server).await;
    let accepted = posted.elapsed();

    // Halfway through the sends: all of them are sleeping in `tokio::spawn`ed futures.
    sleep_until(posted + WORK / 2).await;
    let db = scenario.db().await;
    let sent_at_kill = sent(&db).await.len();
    let killed_at = posted.elapsed();
    server.kill();
    assert!(
        killed_at < WORK,
        "the kill came {killed_at:?} after the first POST, not within WORK_MS ({WORK:?}): \
         the machine is too slow for this test's timing"
    );
    assert_eq!(sent_at_kill, 0, "nothing can be sent before WORK_MS");

    // Same binary, same file. Nothing was written down, so there is nothing to resume:
    // wait longer than any send could take, then count.
    let restarted = Instant::now();
    let _server = scenario.start().await;
    sleep_until(restarted + WORK * 3 + Duration::from_secs(1)).await;
    let sent = sent(&db).await;
    eprintln!(
        "raw: {ORDERS}/{ORDERS} accepted (202) in {} ms; SIGKILL at {} ms ({sent_at_kill} sent); \
         restarted and waited {} ms: {}/{ORDERS} sent, {} lost",
        ms(accepted),
        ms(killed_at),
        ms(restarted.elapsed()),
        sent.len(),
        ORDERS - sent.len(),
    );
    assert_eq!(
        sent,
        Vec::<String>::new(),
        "raw lost all {ORDERS} confirmations: none was stored anywhere"
    );
}

#[tokio::test]
async fn durable_spawn_loses_nothing() {
    let mut scenario = Scenario::new("durable", env!("CARGO_BIN_EXE_with-durable"));
    let server = scenario.start().await;
    let posted = Instant::now();
    let ids = scenario.post_orders(&server).await;
    let accepted = posted.elapsed();
    let db = scenario.db().await;

    // Every 202 means the task is stored; wait until they are being worked on.
    let deadline = posted + WORK / 2;
    let at_kill = loop {
        let states = task_states(&db).await;
        let total: i64 = states.values().sum();
        assert_eq!(total, ORDERS as i64, "a 202 means the task is stored");
        let processing = states.get("processing").copied().unwrap_or(0);
        if Instant::now() >= deadline && processing > 0 {
            break states;
        }
        assert!(
            posted.elapsed() < DEADLINE,
            "no task in progress: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let sent_at_kill = sent(&db).await.len();
    let killed_at = posted.elapsed();
    server.kill();

    // Same binary, same file: the new process takes the dead one's tasks over once their
    // leases expire, and runs them again.
    let restarted = Instant::now();
    let _server = scenario.start().await;
    let recovery = loop {
        let states = task_states(&db).await;
        let outstanding = states.get("pending").copied().unwrap_or(0)
            + states.get("processing").copied().unwrap_or(0);
        if outstanding == 0 {
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < DEADLINE,
            "tasks still outstanding {DEADLINE:?} after the restart: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let sent = sent(&db).await;
    let states = task_states(&db).await;
    let attempts: i64 = sqlx::query_scalar("SELECT SUM(attempts) FROM durable_tasks")
        .fetch_one(&db)
        .await
        .expect("sum attempts");
    eprintln!(
        "durable: {ORDERS}/{ORDERS} accepted (202) in {} ms; SIGKILL at {} ms with tasks {at_kill:?} \
         ({sent_at_kill} sent); restarted, all done {} ms later (LEASE_MS {}, WORK_MS {}): \
         {}/{ORDERS} sent, {} lost; tasks {states:?}, {attempts} attempts in all",
        ms(accepted),
        ms(killed_at),
        ms(recovery),
        ms(LEASE),
        ms(WORK),
        sent.len(),
        ORDERS - sent.len(),
    );
    assert_eq!(sent, ids, "exactly one confirmation per order, none lost");
    assert_eq!(
        states,
        BTreeMap::from([("completed".to_owned(), ORDERS as i64)]),
        "every task completed"
    );
}
