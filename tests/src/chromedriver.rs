//! Headless Chromium for the dashboard's browser test: finding `chromium` and `chromedriver`,
//! running chromedriver as a child process on a free port, and the browser options a
//! WebDriver session is opened with.
//!
//! The WebDriver client itself lives in the test (it is a dev-dependency); this module only
//! needs the programs. On Debian they are the `chromium` and `chromium-driver` packages.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Environment variable naming the Chromium binary (default: `chromium`, `chromium-browser`
/// or `google-chrome` on `PATH`).
pub const CHROMIUM_ENV: &str = "DURABLE_TEST_CHROMIUM";

/// Environment variable naming the chromedriver binary (default: `chromedriver` on `PATH`).
pub const CHROMEDRIVER_ENV: &str = "DURABLE_TEST_CHROMEDRIVER";

/// How long chromedriver gets to answer `GET /status` with `ready: true`.
pub const DRIVER_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The two programs a browser test needs.
#[derive(Debug, Clone)]
pub struct Chromium {
    /// The browser.
    pub browser: PathBuf,
    /// The WebDriver server that drives it.
    pub driver: PathBuf,
}

impl Chromium {
    /// Finds Chromium and chromedriver (see [`CHROMIUM_ENV`], [`CHROMEDRIVER_ENV`]); `None`
    /// if the test must be skipped, with the reason printed.
    ///
    /// # Panics
    ///
    /// If one is missing while `CI` is set: CI installs both, so a missing one there is a
    /// broken setup, not a reason to skip.
    pub fn find() -> Option<Chromium> {
        let browser = from_env_or_path(
            CHROMIUM_ENV,
            &["chromium", "chromium-browser", "google-chrome"],
        );
        let driver = from_env_or_path(CHROMEDRIVER_ENV, &["chromedriver"]);
        match (browser, driver) {
            (Ok(browser), Ok(driver)) => Some(Chromium { browser, driver }),
            (Err(missing), _) | (_, Err(missing)) => {
                let reason = format!(
                    "{missing} not found (Debian: apt-get install chromium chromium-driver)"
                );
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI is set and the browser test cannot run: {reason}"
                );
                eprintln!("skipped: {reason}");
                None
            }
        }
    }

    /// The `goog:chromeOptions` capability for a headless session: no sandbox (tests may
    /// run as root in a container), no GPU, nothing that reaches the network on its own
    /// (there may be none), a fixed window size for screenshots, and `profile` as a fresh
    /// user data directory so no state leaks between sessions.
    pub fn options(&self, profile: &Path) -> serde_json::Value {
        serde_json::json!({
            "binary": self.browser,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        })
    }
}

/// `name`'s value if set, else the first of `candidates` found on `PATH`; `Err(what)` if
/// none is found.
fn from_env_or_path(name: &str, candidates: &[&str]) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(name).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{name}={}", path.display()))
        };
    }
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    candidates
        .iter()
        .flat_map(|c| dirs.iter().map(move |d| d.join(c)))
        .find(|p| p.is_file())
        .ok_or_else(|| candidates.join(" / "))
}

/// A running chromedriver on a free local port, its output in a log file. It runs in a
/// process group of its own, with the browsers it starts: dropping this kills the whole
/// group (SIGKILL), so no Chromium outlives a test, even a failed one.
#[derive(Debug)]
pub struct Chromedriver {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Chromedriver {
    /// Starts `chromium.driver`, logging to `log`, and waits until it is ready for
    /// sessions.
    ///
    /// # Panics
    ///
    /// If it exits or is not ready within [`DRIVER_STARTUP_TIMEOUT`] (its log is shown).
    pub async fn start(chromium: &Chromium, log: &Path) -> Chromedriver {
        // The port is found by binding :0 and releasing it, so another process may take it
        // in between: if chromedriver exits at startup, try another port.
        for _ in 0..3 {
            let port = free_port();
            let mut driver = Chromedriver {
                child: spawn(&chromium.driver, port, log),
                url: format!("http://127.0.0.1:{port}"),
                log: log.to_owned(),
            };
            match driver.wait_ready().await {
                Ok(()) => return driver,
                Err(status) => eprintln!(
                    "chromedriver on port {port} exited at startup ({status}); retrying\n{}",
                    driver.log_tail()
                ),
            }
        }
        panic!("could not start chromedriver on a free port in 3 tries")
    }

    /// Polls `GET /status` until chromedriver says it is ready; `Err(exit status)` if it
    /// exits first.
    async fn wait_ready(&mut self) -> Result<(), ExitStatus> {
        let client = crate::http::client();
        let url = format!("{}/status", self.url);
        let deadline = Instant::now() + DRIVER_STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll chromedriver") {
                return Err(status);
            }
            let answer = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            let ready = match answer {
                Ok(response) => response
                    .json::<serde_json::Value>()
                    .await
                    .is_ok_and(|body| body["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready within {DRIVER_STARTUP_TIMEOUT:?}\n{}",
                self.log_tail()
            );
            tokio::time::sleep(crate::wait::POLL).await;
        }
    }

    /// The WebDriver endpoint, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The end of chromedriver's log, framed for printing.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "----- last lines of {} -----\n{}\n----- end of log -----",
            self.log.display(),
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The group id is chromedriver's pid (`process_group(0)` below); the group holds
        // chromedriver and the browsers it started, and nothing else.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

fn spawn(driver: &Path, port: u16, log: &Path) -> Child {
    use std::os::unix::process::CommandExt;

    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("create the chromedriver log file");
    let err = out.try_clone().expect("clone the log file handle");
    Command::new(driver)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()))
}
