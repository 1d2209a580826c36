//! The worker processes: the bench started again as `horizon-worker`, read line by line; their
//! reports are summed into one window the sampler takes every sample.

use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::histogram::Histogram;
use super::protocol::Line;
use super::starts::Starts;
use crate::backend::Backend;
use crate::Result;

/// What the workers reported since the sampler last looked.
#[derive(Debug, Clone, Default)]
pub(crate) struct Window {
    /// Attempts retried or failed.
    pub(crate) unsuccessful: u64,
    /// Due → started latencies of the attempts started.
    pub(crate) claim: Histogram,
    /// The same starts by batch.
    pub(crate) starts: Starts,
    /// Per worker process: attempts completed, and µs of its clock its reports covered.
    pub(crate) spans: std::collections::BTreeMap<usize, (u64, u64)>,
}

impl Window {
    /// Attempts completed, by every process.
    pub(crate) fn completed(&self) -> u64 {
        self.spans.values().map(|&(completed, _)| completed).sum()
    }

    /// Attempts completed per second: each process's completions over the time its reports
    /// covered, summed. Dividing the window's total by the parent's interval instead would
    /// read a window that caught one report more of a process (its reports drift against the
    /// samples) as 5% faster, and the next one as 5% slower. A window without a covered span
    /// (no report carried one) falls back to `seconds` of the parent's clock.
    pub(crate) fn rate(&self, seconds: f64) -> f64 {
        if self.spans.values().all(|&(_, span)| span == 0) {
            return self.completed() as f64 / seconds;
        }
        self.spans
            .values()
            .filter(|&&(_, span)| span > 0)
            .map(|&(completed, span)| completed as f64 * 1e6 / span as f64)
            .sum()
    }
}

/// How to start each worker process.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// Store implementation.
    pub(crate) backend: Backend,
    /// PostgreSQL URL.
    pub(crate) database_url: String,
    /// The schema (PostgreSQL) or URL (SQLite) of the run's store.
    pub(crate) target: String,
    /// The parent's own command-line options the workers must share (`--sqlite-sync`,
    /// `--task-sleep`, `--claim-ahead`, `--poll-interval`, `--retention`).
    pub(crate) passthrough: Vec<String>,
}

/// The running worker processes.
#[derive(Debug)]
pub(crate) struct Fleet {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    readers: JoinSet<Result<()>>,
    window: Arc<Mutex<Window>>,
}

impl Fleet {
    /// Starts `processes` workers sharing `slots` of concurrency and waits until each says its
    /// runtime is running.
    pub(crate) async fn start(launch: &Launch, processes: usize, slots: usize) -> Result<Self> {
        let exe = std::env::current_exe()?;
        let window = Arc::new(Mutex::new(Window::default()));
        let (ready_tx, mut ready_rx) = mpsc::channel::<()>(processes.max(1));
        let mut fleet = Fleet {
            children: Vec::new(),
            stdins: Vec::new(),
            readers: JoinSet::new(),
            window: Arc::clone(&window),
        };
        let processes = processes.max(1);
        for i in 0..processes {
            // Spread the slots: the first processes take the remainder.
            let share = slots / processes + usize::from(i < slots % processes);
            let mut command = Command::new(&exe);
            command
                .arg("horizon-worker")
                .arg("--backend")
                .arg(match launch.backend {
                    Backend::Sqlite => "sqlite",
                    Backend::Postgres => "postgres",
                })
                .arg("--database-url")
                .arg(&launch.database_url)
                .arg("--worker-target")
                .arg(&launch.target)
                .arg("--worker-slots")
                .arg(share.max(1).to_string())
                .args(&launch.passthrough)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true);
            let mut child = command.spawn()?;
            let stdout = child.stdout.take().ok_or("worker stdout not piped")?;
            let stdin = child.stdin.take().ok_or("worker stdin not piped")?;
            let window = Arc::clone(&window);
            let ready = ready_tx.clone();
            fleet.readers.spawn(async move {
                let mut lines = tokio::io::BufReader::new(stdout).lines();
                while let Some(line) = lines.next_line().await? {
                    match Line::decode(&line) {
                        None => {}
                        Some(Err(problem)) => return Err(problem.into()),
                        Some(Ok(Line::Ready)) => {
                            let _ = ready.send(()).await;
                        }
                        Some(Ok(Line::Report {
                            completed,
                            unsuccessful,
                            span_us,
                            claim,
                            starts,
                        })) => {
                            let mut w = window.lock().unwrap_or_else(PoisonError::into_inner);
                            let span = w.spans.entry(i).or_default();
                            span.0 += completed;
                            span.1 += span_us;
                            w.unsuccessful += unsuccessful;
                            w.claim.merge(&claim);
                            w.starts.merge(starts);
                        }
                        Some(Ok(Line::Done)) => return Ok(()),
                    }
                }
                Err(format!("worker process {i} ended without saying done").into())
            });
            fleet.children.push(child);
            fleet.stdins.push(stdin);
        }
        drop(ready_tx);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        for started in 0..processes {
            match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
                Ok(Some(())) => {}
                _ => {
                    return Err(format!(
                        "only {started} of {processes} worker processes started within 60 s"
                    )
                    .into())
                }
            }
        }
        Ok(fleet)
    }

    /// What was reported since the previous call.
    pub(crate) fn take(&self) -> Window {
        std::mem::take(&mut *self.window.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Closes the workers' stdin (they shut their runtimes down and send a last report),
    /// waits for them and returns what they reported since the last [`take`](Self::take).
    pub(crate) async fn stop(mut self) -> Result<Window> {
        self.stdins.clear();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        for (i, child) in self.children.iter_mut().enumerate() {
            let Ok(status) = tokio::time::timeout_at(deadline, child.wait()).await else {
                child.kill().await?;
                return Err(format!("worker process {i} did not stop within 30 s").into());
            };
            let status = status?;
            if !status.success() {
                return Err(format!("worker process {i} exited with {status}").into());
            }
        }
        while let Some(result) = self.readers.join_next().await {
            result??;
        }
        Ok(self.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reports every 500 ms from each of two processes, read every 5 s: a window holds 9 or
    /// 11 reports of a process as often as 10, yet both processes completed 1,000 tasks/s.
    #[test]
    fn the_rate_does_not_depend_on_how_many_reports_a_window_caught() {
        for (a, b) in [(10u64, 10u64), (11, 10), (9, 10), (9, 11)] {
            let mut window = Window::default();
            for (process, reports) in [(0, a), (1, b)] {
                window
                    .spans
                    .insert(process, (reports * 500, reports * 500_000));
            }
            let rate = window.rate(5.0);
            assert!(
                (rate - 2_000.0).abs() < 1e-6,
                "{a} and {b} reports in the window: {rate} tasks/s"
            );
        }
    }
}
