//! The periodic task: a digest of signups, once per occurrence of its schedule, whichever
//! instance runs it and however often instances restart.

use std::time::Duration;

use axum_durable::periodic::{CatchUp, Periodic, Schedule};
use axum_durable::{Task, TaskContext, TaskError, TaskId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::db::Db;

/// The digest of one occurrence: `at` says which (it is also the task's `run_at`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SignupDigest {
    pub(crate) at: DateTime<Utc>,
}

impl Task for SignupDigest {
    const NAME: &'static str = "signup_digest";
    type State = Db;

    async fn run(self, cx: TaskContext<Db>) -> Result<(), TaskError> {
        // Keyed by the occurrence: a re-run after a crash records nothing twice.
        let (users, new) = record(cx.state(), self.at, cx.id()).await?;
        if new {
            tracing::info!(task_id = %cx.id(), at = %self.at, users, "signup digest");
        }
        Ok(())
    }
}

/// The digest's schedule: `DIGEST_EVERY_MS` if set, else `DIGEST_CRON` in `DIGEST_TZ`. After
/// a downtime, every missed digest is made, up to the 1,000 latest.
pub(crate) fn periodic(config: &Config) -> Result<Periodic, axum_durable::core::Error> {
    let schedule = match config.digest_every {
        Some(every) => Schedule::every(every.max(Duration::from_millis(1))),
        None => Schedule::cron(&config.digest_cron, config.digest_tz)?,
    };
    Ok(
        Periodic::new(schedule, |occurrence| SignupDigest { at: occurrence.at })
            .catch_up(CatchUp::AllUpTo(1_000)),
    )
}

/// Records the digest of `at` (the number of users then) unless it exists; returns the count
/// and whether this call recorded it.
async fn record(db: &Db, at: DateTime<Utc>, task_id: TaskId) -> Result<(i64, bool), sqlx::Error> {
    match db {
        Db::Sqlite(s) => {
            let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
                .fetch_one(s.reader_pool())
                .await?;
            let done = sqlx::query(
                "INSERT INTO digests (scheduled_at, users, task_id) VALUES (?, ?, ?)
                 ON CONFLICT (scheduled_at) DO NOTHING",
            )
            .bind(at.timestamp_millis())
            .bind(users)
            .bind(task_id.to_string())
            .execute(s.writer_pool())
            .await?;
            Ok((users, done.rows_affected() == 1))
        }
        Db::Postgres(s) => {
            let (users, new): (i64, bool) = sqlx::query_as(
                "WITH inserted AS (
                     INSERT INTO digests (scheduled_at, users, task_id)
                     SELECT $1, count(*), $2 FROM users
                     ON CONFLICT (scheduled_at) DO NOTHING RETURNING users)
                 SELECT coalesce((SELECT users FROM inserted), (SELECT count(*) FROM users)),
                        EXISTS (SELECT 1 FROM inserted)",
            )
            .bind(at)
            .bind(task_id.as_uuid())
            .fetch_one(s.pool())
            .await?;
            Ok((users, new))
        }
    }
}
