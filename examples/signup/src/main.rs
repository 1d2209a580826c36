//! A signup service whose welcome emails are durable tasks: the user row and its email task
//! commit together, the 201 is sent only once both are stored, and the email is sent even if
//! the process is killed, restarted or redeployed in between.
//!
//! Run with
//!
//! ```sh
//! cargo run -p example-signup
//! curl -i -X POST localhost:3000/signup -H 'content-type: application/json' -d '{"email":"ada@example.com"}'
//! curl -i localhost:3000/tasks/<task_id from the answer>   # waits (up to 10 s) until the email is sent
//! curl -i -X POST localhost:3000/onboard -H 'content-type: application/json' -d '{"email":"ada@example.com"}'
//! curl -i -X POST localhost:3000/tasks/<task_id>/cancel    # cancels it if not sent yet
//! ```
//!
//! `/onboard` runs a task of three steps, each once per task, completed in the transaction
//! that records the onboarding (`onboarding.rs`).
//!
//! Environment: `DATABASE_URL` (default `sqlite://signup.db`; `postgres://...` works too),
//! `BIND` (127.0.0.1:3000), `EMAIL_DELAY_MS` (200), `EMAIL_FAIL_RATE` (0.0),
//! `EMAIL_RELAY_WARMUP_MS` (0: email tasks snooze, using no attempt, until the simulated mail
//! relay is up this long after start),
//! `SHUTDOWN_GRACE_MS` (5000), `WORKER_CONCURRENCY` (64), `WORKER_CLAIM_AHEAD` (`auto`:
//! tasks claimed beyond the free slots, what they finish in a claim round trip; `0`: none),
//! `LEASE_MS` (10000), `RUST_LOG`,
//! `MAX_BACKLOG` (unset: no load shedding; else 503 + `Retry-After` while more tasks are
//! due and pending), `CHAOS_TASKS` (unset; `1` adds the failure-injection tasks of `chaos.rs`),
//! `CRASH_AFTER_SIGNUP_COMMIT` (unset; `1` aborts the process after a signup commits, before
//! its response: the crash test of idempotent retries).
//!
//! `POST /signup` is idempotent: a client that sends an `Idempotency-Key` header and retries
//! after a timeout gets the first answer again (header `Idempotent-Replayed: true`), never a
//! second user or a second email — even when the process died between the commit and the
//! response.
//!
//! `ONBOARD_PAUSE_AFTER_STEP` (unset; `N` makes onboarding attempts wait after step N).
//!
//! `GET /metrics` serves the runtime's metrics for Prometheus. Tasks that fail for good (or
//! keep failing) are logged at error level, and posted to `ALERT_WEBHOOK_URL` when built
//! with `--features webhook` (`ops.rs`).
//!
//! `DIGEST_CRON` (`0 9 * * MON-FRI`) in `DIGEST_TZ` (`UTC`), or `DIGEST_EVERY_MS`: when the
//! periodic signup digest runs.
//!
//! `ADMIN_PASSWORD` (unset: no dashboard) with `ADMIN_USER` (`admin`), and optionally
//! `ADMIN_VIEWER_USER` / `ADMIN_VIEWER_PASSWORD` (read-only): the operators' dashboard and
//! JSON API at `/admin` (log in at `/admin/login`; `admin.rs`). From a shell, the `durable`
//! command reads and acts on the same database: `cargo run -p durable-cli --
//! --database-url sqlite://signup.db stats` (or `list --state failed`, `show ID`, `retry ID`).

mod admin;
mod chaos;
mod config;
mod db;
mod digest;
mod email;
mod object;
mod onboarding;
mod ops;
mod routes;
#[cfg(test)]
mod tests;

use axum::routing::{get, post};
use axum::Router;
use axum_durable::core::store::ListQuery;
use axum_durable::{DurableLayer, Idempotency, Registry, Runtime, TaskState};
use tower_http::trace::TraceLayer;
use tracing_subscriber::EnvFilter;

use crate::config::Config;
use crate::db::Db;
use crate::digest::SignupDigest;
use crate::email::{Mailer, SendWelcomeEmail};
use crate::onboarding::{OnboardUser, Onboarding};

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(error) = run().await {
        tracing::error!(%error, "example-signup failed");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    routes::CRASH_AFTER_SIGNUP_COMMIT.store(
        config.crash_after_signup_commit,
        std::sync::atomic::Ordering::Relaxed,
    );
    let db = Db::connect(&config.database_url).await?;
    db.migrate().await?;
    // Failed tasks wait for an operator (a retry or a delete): say so at start.
    let failed = db
        .store()
        .list(&ListQuery::new(10).state(TaskState::Failed))
        .await?
        .tasks;
    for task in &failed {
        tracing::warn!(task_id = %task.id, task_name = %task.name, error = ?task.last_error,
            "failed task waiting for an operator");
    }

    let mailer = Mailer {
        db: db.clone(),
        delay: config.email_delay,
        fail_rate: config.email_fail_rate,
        relay_ready_at: tokio::time::Instant::now() + config.email_relay_warmup,
    };
    let onboarding = Onboarding {
        db: db.clone(),
        pause_after_step: config.onboard_pause_after_step,
    };
    // The digest is periodic: every instance runs its schedule, the database picks the one
    // that enqueues each occurrence.
    let mut registry = Registry::new()
        .register::<SendWelcomeEmail>(mailer)
        .register::<OnboardUser>(onboarding)
        .register::<SignupDigest>(db.clone())
        .periodic(digest::periodic(&config)?);
    if config.chaos_tasks {
        registry = chaos::register(registry);
    }
    // Before the runtime starts, so its metrics reach the recorder from the first task on.
    let metrics = ops::install_metrics()?;
    let runtime = Runtime::builder(db.store(), registry)
        .concurrency(config.concurrency)
        .claim_ahead(config.claim_ahead)
        .lease(config.lease)
        .alert_after_attempts(ops::ALERT_AFTER_ATTEMPTS)
        .on_alert(ops::alert)
        .start();
    // What this process really runs with (builder values, defaults filled in).
    let settings = runtime.settings();
    tracing::info!(
        concurrency = settings.concurrency,
        claim_ahead = %settings.claim_ahead,
        lease_ms = settings.lease.as_millis() as u64,
        heartbeat_ms = settings.heartbeat.as_millis() as u64,
        poll_ms = settings.poll_interval.as_millis() as u64,
        "durable runtime settings"
    );

    let mut app = Router::new()
        // Retries with the same Idempotency-Key get the recorded answer; the handler records
        // it in its own transaction (`Durable::respond_in`).
        .route("/signup", post(routes::signup).layer(Idempotency::new()))
        .route("/invite", post(routes::invite))
        .route("/onboard", post(onboarding::onboard))
        .route("/tasks/{id}", get(routes::task))
        .route("/tasks/{id}/cancel", post(routes::cancel))
        .route("/health", get(routes::health))
        .route("/metrics", get(move || async move { metrics.render() }));
    if config.chaos_tasks {
        app = app.merge(chaos::routes());
    }
    let mut durable = DurableLayer::new(runtime.client());
    if let Some(limit) = config.max_backlog {
        durable = durable.max_backlog(limit);
    }
    let mut app = app.with_state(db.clone());
    if let Some(admin) = admin::router(&config, &db) {
        // `nest_service` also routes `/admin/` (the overview), not only `/admin`.
        app = app.nest_service("/admin", admin);
    }
    let app = app.layer(durable).layer(TraceLayer::new_for_http());

    let listener = tokio::net::TcpListener::bind(&config.bind).await?;
    tracing::info!(address = %listener.local_addr()?, database = %redact(&config.database_url), "example-signup listening");
    let report = axum_durable::serve(listener, app, runtime, config.shutdown_grace).await?;
    tracing::info!(
        finished = report.finished,
        requeued = report.requeued,
        not_handed_back = report.not_handed_back,
        "example-signup stopped"
    );
    Ok(())
}

/// Hides a password in a database URL for logging.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}
