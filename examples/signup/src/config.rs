//! Settings from the environment (the example's documented contract).

use std::time::Duration;

use axum_durable::core::runtime::ClaimAhead;

/// Everything the example reads from its environment.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// `DATABASE_URL`: `sqlite://...` (default `sqlite://signup.db`) or `postgres://...`.
    pub(crate) database_url: String,
    /// `BIND`: listen address (default `127.0.0.1:3000`).
    pub(crate) bind: String,
    /// `EMAIL_DELAY_MS`: simulated send time (default 200).
    pub(crate) email_delay: Duration,
    /// `EMAIL_FAIL_RATE`: chance (0.0–1.0) that one send attempt fails (default 0).
    pub(crate) email_fail_rate: f64,
    /// `EMAIL_RELAY_WARMUP_MS`: the simulated mail relay accepts mail only this long after
    /// start; until then email tasks snooze (default 0).
    pub(crate) email_relay_warmup: Duration,
    /// `SHUTDOWN_GRACE_MS`: how long shutdown waits for running tasks (default 5000).
    pub(crate) shutdown_grace: Duration,
    /// `WORKER_CONCURRENCY`: tasks running at once (default 64).
    pub(crate) concurrency: usize,
    /// `WORKER_CLAIM_AHEAD`: tasks claimed beyond the free slots, waiting in the process for
    /// one: `auto` (default) or a count (see `RuntimeBuilder::claim_ahead`).
    pub(crate) claim_ahead: ClaimAhead,
    /// `LEASE_MS`: lease of a running task; a killed process's tasks are recovered after
    /// about this long (default 10000).
    pub(crate) lease: Duration,
    /// `MAX_BACKLOG`: answer `503` + `Retry-After` while more than this many tasks are due
    /// and pending (`DurableLayer::max_backlog`); unset: no load shedding.
    pub(crate) max_backlog: Option<u64>,
    /// `CHAOS_TASKS=1`: also register and route the failure-injection tasks of `chaos.rs`
    /// (for the failure-mode runner); off by default.
    pub(crate) chaos_tasks: bool,
    /// `CRASH_AFTER_SIGNUP_COMMIT=1`: abort the process right after a signup's transaction
    /// commits, before its response is sent (for the crash test of idempotent retries); off
    /// by default.
    pub(crate) crash_after_signup_commit: bool,
    /// `ONBOARD_PAUSE_AFTER_STEP=N`: onboarding attempts wait after their step N until
    /// stopped (for the crash test); unset: no pause.
    pub(crate) onboard_pause_after_step: Option<u8>,
    /// `DIGEST_EVERY_MS`: run the signup digest every this many milliseconds instead of on
    /// `DIGEST_CRON` (unset by default).
    pub(crate) digest_every: Option<Duration>,
    /// `DIGEST_CRON`: when the signup digest runs (default `0 9 * * MON-FRI`).
    pub(crate) digest_cron: String,
    /// `DIGEST_TZ`: the IANA time zone `DIGEST_CRON` is read in (default `UTC`).
    pub(crate) digest_tz: axum_durable::periodic::chrono_tz::Tz,
    /// `ADMIN_USER` (default `admin`) and `ADMIN_PASSWORD`: the operator of the dashboard at
    /// `/admin` (may act); without `ADMIN_PASSWORD` the dashboard is not mounted.
    pub(crate) admin: Option<(String, String)>,
    /// `ADMIN_VIEWER_USER` and `ADMIN_VIEWER_PASSWORD`: a read-only user of the dashboard.
    pub(crate) admin_viewer: Option<(String, String)>,
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

fn optional<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => raw
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| format!("invalid {name}={raw:?}: {e}")),
        _ => Ok(None),
    }
}

impl Config {
    pub(crate) fn from_env() -> Result<Self, String> {
        let email_fail_rate: f64 = var("EMAIL_FAIL_RATE", 0.0)?;
        if !(0.0..=1.0).contains(&email_fail_rate) {
            return Err(format!(
                "invalid EMAIL_FAIL_RATE={email_fail_rate}: must be between 0.0 and 1.0"
            ));
        }
        Ok(Self {
            database_url: var("DATABASE_URL", "sqlite://signup.db".to_owned())?,
            bind: var("BIND", "127.0.0.1:3000".to_owned())?,
            email_delay: Duration::from_millis(var("EMAIL_DELAY_MS", 200)?),
            email_fail_rate,
            email_relay_warmup: Duration::from_millis(var("EMAIL_RELAY_WARMUP_MS", 0)?),
            shutdown_grace: Duration::from_millis(var("SHUTDOWN_GRACE_MS", 5000)?),
            concurrency: var("WORKER_CONCURRENCY", 64)?,
            claim_ahead: var("WORKER_CLAIM_AHEAD", ClaimAhead::Auto)?,
            lease: Duration::from_millis(var("LEASE_MS", 10_000)?),
            max_backlog: optional("MAX_BACKLOG")?,
            chaos_tasks: var("CHAOS_TASKS", 0u8)? == 1,
            crash_after_signup_commit: var("CRASH_AFTER_SIGNUP_COMMIT", 0u8)? == 1,
            onboard_pause_after_step: optional("ONBOARD_PAUSE_AFTER_STEP")?,
            digest_every: optional("DIGEST_EVERY_MS")?.map(Duration::from_millis),
            digest_cron: var("DIGEST_CRON", "0 9 * * MON-FRI".to_owned())?,
            digest_tz: var("DIGEST_TZ", axum_durable::periodic::chrono_tz::UTC)?,
            admin: optional::<String>("ADMIN_PASSWORD")?
                .map(|password| Ok::<_, String>((var("ADMIN_USER", "admin".to_owned())?, password)))
                .transpose()?,
            admin_viewer: optional::<String>("ADMIN_VIEWER_USER")?
                .zip(optional::<String>("ADMIN_VIEWER_PASSWORD")?),
        })
    }
}
