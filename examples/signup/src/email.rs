//! The durable task: send the welcome email, exactly once in effect.

use std::time::Duration;

use axum_durable::{Backoff, Task, TaskContext, TaskError, TaskOptions};
use serde::{Deserialize, Serialize};

use crate::db::Db;

/// What the email task needs at run time.
#[derive(Debug, Clone)]
pub(crate) struct Mailer {
    pub(crate) db: Db,
    pub(crate) delay: Duration,
    pub(crate) fail_rate: f64,
}

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
        // The simulated SMTP call; shutdown interrupts it instead of waiting it out.
        tokio::select! {
            () = tokio::time::sleep(mailer.delay) => {}
            () = cx.cancelled() => return Err(TaskError::retryable("interrupted by shutdown")),
        }
        if mailer.fail_rate > 0.0 && rand::random::<f64>() < mailer.fail_rate {
            return Err(TaskError::retryable(
                "simulated SMTP failure (EMAIL_FAIL_RATE)",
            ));
        }
        // Recorded with a unique constraint: two racing runs still produce one row.
        mailer.db.record_sent(&self.email, cx.id()).await?;
        tracing::info!(task_id = %cx.id(), email = %self.email, attempt = cx.attempt(), "welcome email sent");
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
