//! The durable task: send the welcome email, exactly once in effect.

use std::time::Duration;

use axum_durable::{Backoff, CancelReason, Task, TaskContext, TaskError, TaskOptions};
use serde::{Deserialize, Serialize};

use crate::db::Db;

/// What the email task needs at run time.
#[derive(Debug, Clone)]
pub(crate) struct Mailer {
    pub(crate) db: Db,
    pub(crate) delay: Duration,
    pub(crate) fail_rate: f64,
    /// When the simulated mail relay starts accepting mail (`EMAIL_RELAY_WARMUP_MS`).
    pub(crate) relay_ready_at: tokio::time::Instant,
}

/// Longest snooze while the relay is not up: look again at least this often.
const MAX_SNOOZE: Duration = Duration::from_secs(1);

/// Sends the welcome email to `email`.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SendWelcomeEmail {
    pub(crate) email: String,
}

impl Task for SendWelcomeEmail {
    const NAME: &'static str = "send_welcome_email";
    type State = Mailer;

    async fn run(self, cx: TaskContext<Mailer>) -> Result<(), TaskError> {
        let mailer = cx.state();
        // Idempotency: a re-run after a crash finds the email already sent and stops.
        if mailer.db.email_sent(&self.email).await? {
            tracing::info!(task_id = %cx.id(), email = %self.email, "welcome email already sent; nothing to do");
            return Ok(());
        }
        // A dependency that is not ready is no failure: snooze, using no attempt, and look
        // again later (as often as needed: attempts are for errors).
        let now = tokio::time::Instant::now();
        if now < mailer.relay_ready_at {
            let wait = (mailer.relay_ready_at - now).min(MAX_SNOOZE);
            tracing::info!(task_id = %cx.id(), wait_ms = wait.as_millis() as u64, "mail relay not up yet; snoozing");
            return Err(TaskError::snooze(wait));
        }
        // The simulated SMTP call; a cancellation (`POST /tasks/{id}/cancel`) or a shutdown
        // interrupts it instead of waiting it out.
        tokio::select! {
            () = tokio::time::sleep(mailer.delay) => {}
            () = cx.cancelled() => {
                let why = match cx.cancel_reason() {
                    Some(CancelReason::Requested) => "cancelled",
                    _ => "interrupted by shutdown",
                };
                return Err(TaskError::retryable(why));
            }
        }
        if mailer.fail_rate > 0.0 && rand::random::<f64>() < mailer.fail_rate {
            return Err(TaskError::retryable(
                "simulated SMTP failure (EMAIL_FAIL_RATE)",
            ));
        }
        // Recorded with a unique constraint: two racing runs still produce one row.
        mailer.db.record_sent(&self.email, cx.id()).await?;
        // From the signup to the email sent: what a user of the example would measure first.
        let since_signup_ms = cx
            .enqueued_at()
            .map(|at| (chrono::Utc::now() - at).num_milliseconds());
        tracing::info!(task_id = %cx.id(), email = %self.email, attempt = cx.attempt(),
            since_signup_ms, "welcome email sent");
        Ok(())
    }

    fn options() -> TaskOptions {
        TaskOptions::default()
            .max_attempts(25)
            .backoff(Backoff::exponential(
                Duration::from_millis(100),
                Duration::from_secs(2),
            ))
            .timeout(Duration::from_secs(60))
            .queue("emails")
    }
}
