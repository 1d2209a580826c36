//! An example binary (`example-signup`, `example-rollout`) as a child process.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::backend::TestDb;
use crate::binary;

/// How long a server gets to answer `GET /health` after it is spawned.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Lines of the log printed when something goes wrong.
const TAIL_LINES: usize = 60;

/// A binary the harness starts, and the environment it gets unless a test overrides it
/// (besides `DATABASE_URL`, `BIND` and `RUST_LOG`, which every program reads).
#[derive(Debug, Clone, Copy)]
pub struct Program {
    /// The executable.
    pub binary: &'static Path,
    /// `(name, value)` pairs set before the test's own.
    pub defaults: &'static [(&'static str, &'static str)],
}

impl Program {
    /// `example-signup` with the contract's defaults: 200 ms emails that never fail, 5 s
    /// grace, 64 workers, 10 s lease.
    pub fn signup() -> Program {
        Program {
            binary: binary::example_signup(),
            defaults: &[
                ("EMAIL_DELAY_MS", "200"),
                ("EMAIL_FAIL_RATE", "0"),
                ("SHUTDOWN_GRACE_MS", "5000"),
                ("WORKER_CONCURRENCY", "64"),
                ("LEASE_MS", "10000"),
            ],
        }
    }

    /// `example-rollout` (release chosen by the test's `SERVICE_VERSION`), with no defaults
    /// beyond its own.
    pub fn rollout() -> Program {
        Program {
            binary: binary::example_rollout(),
            defaults: &[],
        }
    }
}

/// A running example process on a free local port, its stdout and stderr in a log
/// file of the test's directory. Dropping it kills the process (SIGKILL) if still running,
/// and prints its log tail if the test is failing.
#[derive(Debug)]
pub struct Server {
    name: String,
    child: Child,
    base_url: String,
    log: PathBuf,
    exit: Option<ExitStatus>,
    ready_at: Instant,
    startup: Duration,
    /// The log tail was already part of a panic message.
    tail_shown: bool,
}

impl Server {
    /// Starts the example on `db` with the contract's defaults, overridden by `env` (e.g.
    /// `[("EMAIL_DELAY_MS", "400")]`), and waits until `GET /health` answers 200.
    ///
    /// # Panics
    ///
    /// If the process exits or stays unhealthy for [`STARTUP_TIMEOUT`] (its log tail is shown).
    pub async fn start(db: &TestDb, env: &[(&str, &str)]) -> Server {
        Server::start_program(db, &Program::signup(), env).await
    }

    /// Starts `program` on `db` with its defaults, overridden by `env`, and waits until
    /// `GET /health` answers 200.
    ///
    /// # Panics
    ///
    /// If the process exits or stays unhealthy for [`STARTUP_TIMEOUT`] (its log tail is shown).
    pub async fn start_program(db: &TestDb, program: &Program, env: &[(&str, &str)]) -> Server {
        let binary = program.binary;
        // The port is found by binding :0 and releasing it, so another process may take it
        // in between: on "address in use", try again with another port.
        for _ in 0..3 {
            let (n, log) = db.next_log_path();
            let port = free_port();
            let name = format!("{} server #{n} (port {port})", db.backend());
            let spawned = Instant::now();
            let child = spawn(binary, db.url(), port, program.defaults, env, &log);
            let mut server = Server {
                name,
                child,
                base_url: format!("http://127.0.0.1:{port}"),
                log,
                exit: None,
                ready_at: spawned,
                startup: Duration::ZERO,
                tail_shown: false,
            };
            match server.wait_healthy().await {
                Ok(()) => {
                    server.ready_at = Instant::now();
                    server.startup = server.ready_at - spawned;
                    return server;
                }
                Err(status) if server.log_text().contains("Address already in use") => {
                    eprintln!(
                        "{} exited ({status}): port taken meanwhile; retrying",
                        server.name
                    );
                }
                Err(status) => {
                    server.tail_shown = true;
                    panic!(
                        "{} exited during startup ({status}); DATABASE_URL={}\n{}",
                        server.name,
                        db.url(),
                        server.log_tail(TAIL_LINES)
                    )
                }
            }
        }
        panic!(
            "could not start {} on a free port in 3 tries",
            binary.display()
        )
    }

    /// Polls `GET /health` until 200; `Err(exit status)` if the process exits first.
    async fn wait_healthy(&mut self) -> Result<(), ExitStatus> {
        let client = crate::http::client();
        let url = self.url("/health");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.try_exit() {
                return Err(status);
            }
            let healthy = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status() == reqwest::StatusCode::OK);
            if healthy {
                return Ok(());
            }
            self.tail_shown = Instant::now() >= deadline;
            assert!(
                !self.tail_shown,
                "{} did not become healthy within {STARTUP_TIMEOUT:?}\n{}",
                self.name,
                self.log_tail(TAIL_LINES)
            );
            tokio::time::sleep(crate::wait::POLL).await;
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// When `GET /health` first answered.
    pub fn ready_at(&self) -> Instant {
        self.ready_at
    }

    /// From spawn to the first healthy answer.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// A description for messages: backend, number, port.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Kills the process with SIGKILL (no shutdown code runs) and reaps it.
    pub fn sigkill(&mut self) -> ExitStatus {
        if let Some(status) = self.try_exit() {
            return status;
        }
        // On Unix, `Child::kill` sends SIGKILL.
        self.child.kill().expect("send SIGKILL to the server");
        let status = self.child.wait().expect("reap the killed server");
        self.exit = Some(status);
        status
    }

    /// Sends SIGTERM (graceful shutdown); see [`wait_exit`](Self::wait_exit).
    pub fn sigterm(&self) {
        let pid = i32::try_from(self.child.id()).expect("a pid fits in i32");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("send SIGTERM to the server");
    }

    /// Waits up to `timeout` for the process to exit and returns its status.
    ///
    /// # Panics
    ///
    /// If it is still running after `timeout` (its log tail is shown).
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return status;
            }
            self.tail_shown = Instant::now() >= deadline;
            assert!(
                !self.tail_shown,
                "{} still running {timeout:?} after being asked to stop\n{}",
                self.name,
                self.log_tail(TAIL_LINES)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the process as an orchestrator does: SIGTERM, then SIGKILL if it is still
    /// running `kill_after` later. Returns how it ended and when.
    pub async fn terminate(&mut self, kill_after: Duration) -> Termination {
        self.sigterm();
        let signalled = Instant::now();
        loop {
            if let Some(status) = self.try_exit() {
                return Termination {
                    status,
                    took: signalled.elapsed(),
                    killed: false,
                };
            }
            if signalled.elapsed() >= kill_after {
                let status = self.sigkill();
                return Termination {
                    status,
                    took: signalled.elapsed(),
                    killed: true,
                };
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Whether the process is still running (polled without waiting).
    pub fn is_running(&mut self) -> bool {
        self.try_exit().is_none()
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("poll the server process");
        }
        self.exit
    }

    /// The log file (stdout and stderr of the process).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log) {
            let mut bytes = Vec::new();
            if file.read_to_end(&mut bytes).is_ok() {
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        text
    }

    /// How many log lines contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// The last `lines` lines of the log, framed for printing.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut bytes = Vec::new();
        if let Ok(mut file) = File::open(&self.log) {
            let len = file.metadata().map_or(0, |m| m.len());
            let start = len.saturating_sub(64 * 1024);
            if file.seek(SeekFrom::Start(start)).is_ok() {
                file.read_to_end(&mut bytes).ok();
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let all: Vec<&str> = text.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        format!(
            "----- last lines of {} ({}) -----\n{tail}\n----- end of log -----",
            self.name,
            self.log.display()
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() && !self.tail_shown {
            eprintln!("{}", self.log_tail(TAIL_LINES));
        }
    }
}

/// How [`Server::terminate`] ended a process.
#[derive(Debug, Clone, Copy)]
pub struct Termination {
    /// Its exit status.
    pub status: ExitStatus,
    /// From SIGTERM to its exit (or to the SIGKILL).
    pub took: Duration,
    /// It was still running at the deadline and got SIGKILL.
    pub killed: bool,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

fn spawn(
    binary: &Path,
    database_url: &str,
    port: u16,
    defaults: &[(&str, &str)],
    env: &[(&str, &str)],
    log: &Path,
) -> Child {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("create the server log file");
    let err = out.try_clone().expect("clone the log file handle");
    let mut command = Command::new(binary);
    command
        .env("DATABASE_URL", database_url)
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info,durable_core=trace,tower_http=debug");
    for (key, value) in defaults.iter().chain(env) {
        command.env(key, value);
    }
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()))
}
