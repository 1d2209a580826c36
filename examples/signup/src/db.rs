//! The application's own tables, on whichever database `DATABASE_URL` names.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use axum_durable::core::store::Store;
use axum_durable::postgres::PostgresStore;
use axum_durable::sqlite::SqliteStore;
use axum_durable::{Durable, EnqueueOptions, TaskId, UniqueKey};

use crate::email::SendWelcomeEmail;

/// The database: the task store and the app's tables share it, so a user row and its email
/// task commit in one transaction.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    /// Embedded default.
    Sqlite(SqliteStore),
    /// Several instances on one server.
    Postgres(PostgresStore),
}

/// Why a signup was not stored.
#[derive(Debug)]
pub(crate) enum SignupError {
    /// The email is already registered.
    Duplicate,
    /// The database or the task store failed.
    Storage(axum_durable::Error),
}

impl From<axum_durable::Error> for SignupError {
    fn from(e: axum_durable::Error) -> Self {
        SignupError::Storage(e)
    }
}

fn storage(operation: &'static str) -> impl FnOnce(sqlx::Error) -> SignupError {
    move |source| {
        SignupError::Storage(axum_durable::Error::Store(
            axum_durable::stores::Error::Database { operation, source },
        ))
    }
}

/// A duplicate email is the client's problem (409); anything else is ours.
/// One welcome email per user at a time: the task's unique key is the user id, so whatever
/// path writes it again (a replayed request, a re-signup after the user row was deleted and
/// recreated with the same id, a script re-sending welcomes) finds the waiting or running
/// task and gets its id instead of queuing a second email.
fn welcome_once(user_id: i64) -> EnqueueOptions {
    EnqueueOptions::new().unique(UniqueKey::new(format!("user:{user_id}")))
}

fn insert_user_error(e: sqlx::Error) -> SignupError {
    if matches!(&e, sqlx::Error::Database(db) if db.is_unique_violation()) {
        SignupError::Duplicate
    } else {
        storage("insert user")(e)
    }
}

impl Db {
    /// Opens `url`: `postgres://...` / `postgresql://...`, else SQLite (a file created if
    /// missing).
    pub(crate) async fn connect(url: &str) -> Result<Self, Box<dyn std::error::Error>> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Db::Postgres(PostgresStore::connect(url).await?))
        } else {
            Ok(Db::Sqlite(SqliteStore::connect(url).await?))
        }
    }

    /// The task store.
    pub(crate) fn store(&self) -> Arc<dyn Store> {
        match self {
            Db::Sqlite(s) => Arc::new(s.clone()),
            Db::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// Applies the task store's migrations, then the app's (they use separate tables).
    pub(crate) async fn migrate(&self) -> Result<(), Box<dyn std::error::Error>> {
        match self {
            Db::Sqlite(s) => {
                s.migrate().await?;
                sqlx::migrate!("./migrations/sqlite")
                    .run(s.writer_pool())
                    .await?;
            }
            Db::Postgres(s) => {
                s.migrate().await?;
                sqlx::migrate!("./migrations/postgres")
                    .run(s.pool())
                    .await?;
            }
        }
        Ok(())
    }

    /// Inserts the user and its welcome-email task (unique per user, [`welcome_once`]) in one
    /// transaction, with the response `respond` makes of their ids: recorded in that
    /// transaction for an idempotent request (`Durable::respond_in`), so a retry finds the
    /// user, the task and the answer, or none.
    pub(crate) async fn signup<R: IntoResponse>(
        &self,
        durable: &Durable,
        email: &str,
        respond: impl FnOnce(i64, TaskId) -> R,
    ) -> Result<Response, SignupError> {
        let task = SendWelcomeEmail {
            email: email.to_owned(),
        };
        match self {
            Db::Sqlite(store) => {
                let mut tx = durable.begin(store).await?;
                let user_id: i64 =
                    sqlx::query_scalar("INSERT INTO users (email) VALUES (?) RETURNING id")
                        .bind(email)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(insert_user_error)?;
                let task_id = durable
                    .spawn_in_with(&mut *tx, task, welcome_once(user_id))
                    .await?;
                let response = durable
                    .respond_in(&mut *tx, respond(user_id, task_id))
                    .await?;
                durable.commit(tx).await?;
                Ok(response)
            }
            Db::Postgres(store) => {
                let mut tx = durable.begin(store).await?;
                let user_id: i64 =
                    sqlx::query_scalar("INSERT INTO users (email) VALUES ($1) RETURNING id")
                        .bind(email)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(insert_user_error)?;
                let task_id = durable
                    .spawn_in_with(&mut *tx, task, welcome_once(user_id))
                    .await?;
                let response = durable
                    .respond_in(&mut *tx, respond(user_id, task_id))
                    .await?;
                durable.commit(tx).await?;
                Ok(response)
            }
        }
    }

    /// Whether the welcome email to `email` was already sent.
    pub(crate) async fn email_sent(&self, email: &str) -> Result<bool, sqlx::Error> {
        match self {
            Db::Sqlite(s) => {
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sent_emails WHERE email = ?)")
                    .bind(email)
                    .fetch_one(s.reader_pool())
                    .await
            }
            Db::Postgres(s) => {
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sent_emails WHERE email = $1)")
                    .bind(email)
                    .fetch_one(s.pool())
                    .await
            }
        }
    }

    /// Records the send; a second record for the same email is a no-op.
    pub(crate) async fn record_sent(
        &self,
        email: &str,
        task_id: TaskId,
    ) -> Result<(), sqlx::Error> {
        match self {
            Db::Sqlite(s) => {
                sqlx::query(
                    "INSERT INTO sent_emails (email, task_id) VALUES (?, ?) ON CONFLICT (email) DO NOTHING",
                )
                .bind(email)
                .bind(task_id.to_string())
                .execute(s.writer_pool())
                .await?;
            }
            Db::Postgres(s) => {
                sqlx::query(
                    "INSERT INTO sent_emails (email, task_id) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING",
                )
                .bind(email)
                .bind(task_id.as_uuid())
                .execute(s.pool())
                .await?;
            }
        }
        Ok(())
    }
}
