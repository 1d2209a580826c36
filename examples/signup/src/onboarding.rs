//! A multi-step task: onboarding a user in three steps, each run once per task however often
//! the task is retried or recovered, then completed in the same transaction as the row that
//! records the finished onboarding.
//!
//! - `POST /onboard` `{"email": ..}` → 202 `{task_id}`.
//! - Steps `create-workspace`, `grant-credits`, `notify-team` each stand for an external call
//!   (keyed by `cx.idempotency_key(step)`) and record it in `onboarding_effects`: a step
//!   that ran twice would show twice.
//! - The `onboarded` row and the task's completion commit together (`complete_in`): an
//!   attempt that lost its lease cannot write it.
//!
//! `ONBOARD_PAUSE_AFTER_STEP=N` makes every attempt wait after its step N until it is stopped
//! (for the crash test, which kills the process there).

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_durable::stores::complete_in;
use axum_durable::{Durable, Task, TaskContext, TaskError, TaskId, TaskOptions};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::db::Db;

/// What the onboarding task needs at run time.
#[derive(Debug, Clone)]
pub(crate) struct Onboarding {
    pub(crate) db: Db,
    /// `ONBOARD_PAUSE_AFTER_STEP`: wait after this step (1–3) until stopped.
    pub(crate) pause_after_step: Option<u8>,
}

/// Onboards the user `email`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct OnboardUser {
    pub(crate) email: String,
}

impl Task for OnboardUser {
    const NAME: &'static str = "onboard_user";
    type State = Onboarding;

    async fn run(self, cx: TaskContext<Onboarding>) -> Result<(), TaskError> {
        let state = cx.state();
        let workspace: String = cx
            .step("create-workspace", || async {
                state.effect(&cx, "create-workspace").await?;
                Ok::<_, TaskError>(format!("ws-{}", &cx.id().to_string()[..8]))
            })
            .await?;
        state.pause(&cx, 1).await?;
        let credits: i64 = cx
            .step("grant-credits", || async {
                state.effect(&cx, "grant-credits").await?;
                Ok::<_, TaskError>(100)
            })
            .await?;
        state.pause(&cx, 2).await?;
        cx.step("notify-team", || state.effect(&cx, "notify-team"))
            .await?;
        state.pause(&cx, 3).await?;
        // The record of the finished onboarding and the task's completion: one transaction.
        state
            .db
            .finish_onboarding(&cx, &self.email, &workspace, credits)
            .await?;
        tracing::info!(task_id = %cx.id(), email = %self.email, %workspace, "user onboarded");
        Ok(())
    }

    fn options() -> TaskOptions {
        TaskOptions::default().max_attempts(10)
    }
}

impl Onboarding {
    /// The side effect of one step: recorded, keyed as the external call would be.
    async fn effect(&self, cx: &TaskContext<Onboarding>, step: &str) -> Result<(), TaskError> {
        let key = cx.idempotency_key(step);
        self.db.record_effect(cx.id(), step, &key).await?;
        tracing::info!(task_id = %cx.id(), step, "onboarding step ran");
        Ok(())
    }

    /// Waits here until the attempt is stopped, if configured to pause after `step`.
    async fn pause(&self, cx: &TaskContext<Onboarding>, step: u8) -> Result<(), TaskError> {
        if self.pause_after_step == Some(step) {
            tracing::info!(task_id = %cx.id(), step, "onboarding paused (ONBOARD_PAUSE_AFTER_STEP)");
            cx.cancelled().await;
            return Err(TaskError::retryable("stopped while paused"));
        }
        Ok(())
    }
}

/// Body of `POST /onboard`.
#[derive(Debug, Deserialize)]
pub(crate) struct OnboardBody {
    email: String,
}

/// Stores an onboarding task; 202 with its id.
pub(crate) async fn onboard(
    durable: Durable,
    body: Result<Json<OnboardBody>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(body)) if !body.email.trim().is_empty() => {
            let task_id = durable.spawn(OnboardUser { email: body.email });
            (StatusCode::ACCEPTED, Json(json!({ "task_id": task_id }))).into_response()
        }
        Ok(_) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`email` must not be blank",
        ),
        Err(rejection) => problem(rejection.status(), &rejection.body_text()),
    }
}

fn problem(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

impl Db {
    /// Records one run of an onboarding step (autocommit: it stands for an external call).
    async fn record_effect(
        &self,
        task_id: TaskId,
        step: &str,
        key: &str,
    ) -> Result<(), sqlx::Error> {
        match self {
            Db::Sqlite(s) => {
                sqlx::query("INSERT INTO onboarding_effects (task_id, step, idempotency_key) VALUES (?, ?, ?)")
                    .bind(task_id.to_string())
                    .bind(step)
                    .bind(key)
                    .execute(s.writer_pool())
                    .await?;
            }
            Db::Postgres(s) => {
                sqlx::query("INSERT INTO onboarding_effects (task_id, step, idempotency_key) VALUES ($1, $2, $3)")
                    .bind(task_id.to_string())
                    .bind(step)
                    .bind(key)
                    .execute(s.pool())
                    .await?;
            }
        }
        Ok(())
    }

    /// Writes the `onboarded` row and completes the task in one transaction: both or
    /// neither, and never by an attempt that lost its lease (`complete_in` refuses, and the
    /// transaction is dropped — rolled back — by the `?`).
    async fn finish_onboarding(
        &self,
        cx: &TaskContext<Onboarding>,
        email: &str,
        workspace: &str,
        credits: i64,
    ) -> Result<(), TaskError> {
        match self {
            Db::Sqlite(s) => {
                let mut tx = s.begin().await?;
                sqlx::query("INSERT INTO onboarded (task_id, email, workspace, credits) VALUES (?, ?, ?, ?)")
                    .bind(cx.id().to_string())
                    .bind(email)
                    .bind(workspace)
                    .bind(credits)
                    .execute(&mut *tx)
                    .await?;
                complete_in(&mut *tx, cx).await?;
                tx.commit().await?;
            }
            Db::Postgres(s) => {
                let mut tx = s.pool().begin().await?;
                sqlx::query("INSERT INTO onboarded (task_id, email, workspace, credits) VALUES ($1, $2, $3, $4)")
                    .bind(cx.id().to_string())
                    .bind(email)
                    .bind(workspace)
                    .bind(credits)
                    .execute(&mut *tx)
                    .await?;
                complete_in(&mut *tx, cx).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }
}
