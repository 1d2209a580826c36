//! Settings from the environment.

use std::time::Duration;

/// Which release of the service this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// The release being replaced: one task type, `work`.
    V1,
    /// The next release: `work` gains a `tag` with a default, a new task type `audit`, and a
    /// migration adding `completions.tag`.
    V2,
}

impl Version {
    /// The number recorded in `completions.version` and answered by `POST /work`.
    pub(crate) fn number(self) -> i32 {
        match self {
            Version::V1 => 1,
            Version::V2 => 2,
        }
    }
}

impl std::str::FromStr for Version {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "1" => Ok(Version::V1),
            "2" => Ok(Version::V2),
            other => Err(format!("unknown version {other:?}: expected 1 or 2")),
        }
    }
}

/// Everything the service reads from its environment.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// `SERVICE_VERSION`: `1` or `2` (default 1).
    pub(crate) version: Version,
    /// `DATABASE_URL`: `sqlite://...` (default `sqlite://rollout.db`) or `postgres://...`.
    pub(crate) database_url: String,
    /// `BIND`: listen address (default `127.0.0.1:3000`).
    pub(crate) bind: String,
    /// `SHUTDOWN_GRACE_MS`: the whole shutdown's budget from the signal (default 5000).
    pub(crate) shutdown_grace: Duration,
    /// `LEASE_MS`: lease of a running task (default 30000).
    pub(crate) lease: Duration,
    /// `TASK_MS`: how long a `work` task runs unless its request says otherwise (default 200).
    pub(crate) task_ms: u64,
    /// `WORKER_CONCURRENCY`: tasks running at once (default 64).
    pub(crate) concurrency: usize,
}

fn var<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => raw
            .trim()
            .parse()
            .map_err(|e| format!("invalid {name}={raw:?}: {e}")),
        _ => Ok(default),
    }
}

impl Config {
    pub(crate) fn from_env() -> Result<Self, String> {
        Ok(Self {
            version: var("SERVICE_VERSION", Version::V1)?,
            database_url: var("DATABASE_URL", "sqlite://rollout.db".to_owned())?,
            bind: var("BIND", "127.0.0.1:3000".to_owned())?,
            shutdown_grace: Duration::from_millis(var("SHUTDOWN_GRACE_MS", 5000)?),
            lease: Duration::from_millis(var("LEASE_MS", 30_000)?),
            task_ms: var("TASK_MS", 200)?,
            concurrency: var("WORKER_CONCURRENCY", 64)?,
        })
    }
}
