//! Shared by the command's tests: a database of the test's own (a SQLite file or a
//! PostgreSQL schema), tasks seeded by a real runtime, and the built `durable` binary.

// Each test file uses part of it; items are `pub` for the test files, not for a crate.
#![allow(dead_code, unreachable_pub)]

pub mod scenarios;

use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use durable_core::store::{Store, TaskRecord};
use durable_core::{Registry, Runtime, Task, TaskContext, TaskError, TaskId, TaskOptions};
use durable_sqlx::postgres::PostgresStore;
use durable_sqlx::sqlite::SqliteStore;
use durable_testkit::{PgSchema, SqliteFile};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long a test waits for a condition before it fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A database of one test and the store the test seeds it through.
pub struct Db {
    pub url: String,
    pub schema: Option<String>,
    pub store: Arc<dyn Store>,
    _keep: Keep,
}

enum Keep {
    Sqlite(SqliteFile),
    Postgres(PgSchema),
}

impl Db {
    /// A fresh, migrated SQLite file.
    pub async fn sqlite() -> Self {
        let file = SqliteFile::new();
        let url = file.url();
        let store = SqliteStore::connect(url.clone())
            .await
            .expect("open sqlite");
        store.migrate().await.expect("migrate");
        Self {
            url,
            schema: None,
            store: Arc::new(store),
            _keep: Keep::Sqlite(file),
        }
    }

    /// A fresh, migrated PostgreSQL schema; `None` (skipped) without a test server.
    pub async fn postgres() -> Option<Self> {
        let server = durable_testkit::database_url()?;
        let schema = PgSchema::new(&server).await;
        let store = PostgresStore::builder(server.clone())
            .schema(schema.name())
            .connect()
            .await
            .expect("connect postgres");
        store.migrate().await.expect("migrate");
        Some(Self {
            url: server,
            schema: Some(schema.name().to_owned()),
            store: Arc::new(store),
            _keep: Keep::Postgres(schema),
        })
    }

    /// The command line the binary gets, with this database in its environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_durable"));
        command
            .args(args)
            .env("DATABASE_URL", &self.url)
            .env("USER", "cli-test")
            .env_remove("DURABLE_ACTOR")
            .env_remove("RUST_LOG");
        match &self.schema {
            Some(schema) => command.env("DURABLE_SCHEMA", schema),
            None => command.env_remove("DURABLE_SCHEMA"),
        };
        command
    }

    /// Runs `durable args...` to its end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run the durable binary")
    }

    /// Runs `durable --json args...`, checks it succeeded, and parses its output.
    pub fn json(&self, args: &[&str]) -> Value {
        self.json_code(args, 0)
    }

    /// Runs `durable --json args...`, checks it exited with `expected`, and parses its output.
    pub fn json_code(&self, args: &[&str], expected: i32) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert_eq!(code(&out), expected, "durable {args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "durable {args:?} printed no JSON document ({e}): {}",
                stdout(&out)
            )
        })
    }

    /// The stored row of `id`.
    pub async fn get(&self, id: TaskId) -> Option<TaskRecord> {
        self.store.get(id).await.expect("get")
    }
}

/// A database URL whose file does not exist yet (for `migrate`).
pub fn missing_sqlite() -> (SqliteFile, String) {
    let file = SqliteFile::new();
    let url = file.url();
    (file, url)
}

pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exited")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A welcome email that always fails: one attempt, so its row is `failed` at once.
#[derive(Serialize, Deserialize)]
pub struct FailingEmail {
    pub email: String,
}

impl Task for FailingEmail {
    const NAME: &'static str = "failing_email";
    type State = ();
    async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
        Err(TaskError::permanent(format!(
            "mailbox {} is full",
            self.email
        )))
    }
    fn options() -> TaskOptions {
        TaskOptions::default().max_attempts(1)
    }
}

/// A report that succeeds through one step, so `show` has a step to print.
#[derive(Serialize, Deserialize)]
pub struct Report {
    pub month: String,
}

impl Task for Report {
    const NAME: &'static str = "report";
    type State = ();
    async fn run(self, cx: TaskContext<()>) -> Result<(), TaskError> {
        let month = self.month.clone();
        cx.step("render", || async move {
            Ok::<_, std::io::Error>(format!("report for {month}"))
        })
        .await?;
        Ok(())
    }
}

/// Runs until cancelled: a task that stays `processing`.
#[derive(Serialize, Deserialize)]
pub struct Endless;

impl Task for Endless {
    const NAME: &'static str = "endless";
    type State = ();
    async fn run(self, cx: TaskContext<()>) -> Result<(), TaskError> {
        cx.cancelled().await;
        Err(TaskError::permanent("stopped"))
    }
    fn options() -> TaskOptions {
        TaskOptions::default().max_attempts(1).no_timeout()
    }
}

/// The rows [`seed`] leaves.
pub struct Seeded {
    /// `failing_email`, `failed`, payload mentions ada@example.com.
    pub failed: TaskId,
    /// `report`, `completed`, one step.
    pub completed: TaskId,
    /// `report`, `pending`, due in an hour.
    pub pending: TaskId,
}

/// A runtime that knows every task type of these tests, with quick heartbeats (so a
/// cancellation or requeue from the command reaches it soon).
pub fn runtime(db: &Db) -> Runtime {
    let registry = Registry::new()
        .register::<FailingEmail>(())
        .register::<Report>(())
        .register::<Endless>(());
    Runtime::builder(Arc::clone(&db.store), registry)
        .heartbeat_interval(Duration::from_millis(200))
        .lease(Duration::from_secs(2))
        .poll_interval(Duration::from_millis(100))
        .start()
}

/// Seeds one failed, one completed and one delayed pending task through a real runtime.
pub async fn seed(db: &Db) -> Seeded {
    let runtime = runtime(db);
    let client = runtime.client();
    let failed = client
        .enqueue(FailingEmail {
            email: "ada@example.com".into(),
        })
        .await
        .expect("enqueue failing");
    let completed = client
        .enqueue(Report {
            month: "2026-01".into(),
        })
        .await
        .expect("enqueue report");
    let pending = client
        .enqueue_with(
            Report {
                month: "2026-02".into(),
            },
            durable_core::EnqueueOptions::new().delay(Duration::from_secs(3600)),
        )
        .await
        .expect("enqueue delayed");
    for id in [failed, completed] {
        tokio::time::timeout(DEADLINE, client.wait(id))
            .await
            .expect("finished in time")
            .expect("wait");
    }
    runtime.shutdown(Duration::from_secs(5)).await;
    Seeded {
        failed,
        completed,
        pending,
    }
}

/// Waits until `check` holds for the row of `id`, or fails the test at the deadline.
pub async fn wait_for(db: &Db, id: TaskId, what: &str, check: impl Fn(&TaskRecord) -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(task) = db.get(id).await {
            if check(&task) {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {id} never {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
