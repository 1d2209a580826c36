//! The `Durable` extractor: the handler's way to spawn durable tasks.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use durable_core::client::Batch;
use durable_core::{Client, EnqueueOptions, Task, TaskId};
use durable_sqlx::sqlx;
use durable_sqlx::{DetachedCommit, EnqueueConnection, TransactionSource};
use http::request::Parts;
use http::StatusCode;

use crate::error::Error;
use crate::scope::Scope;

/// Handle to spawn durable tasks from a handler; extracted from the request that
/// [`DurableLayer`](crate::DurableLayer) prepared.
///
/// [`spawn`](Self::spawn) is the drop-in replacement for `tokio::spawn`: synchronous, it
/// validates and buffers the task and returns its id at once. The layer writes every task
/// the request buffered in **one transaction after the handler returns and before the
/// response is sent**; if that write fails the client gets a `503` instead of the handler's
/// answer, so nothing is acknowledged that is not stored.
///
/// # Examples
///
/// ```no_run
/// use axum::{routing::post, Json, Router};
/// use axum_durable::{Durable, Task, TaskContext, TaskError};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct SendWelcomeEmail { user_id: i64 }
///
/// impl Task for SendWelcomeEmail {
///     const NAME: &'static str = "send_welcome_email";
///     type State = ();
///     async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> { Ok(()) }
/// }
///
/// async fn signup(durable: Durable) -> Json<String> {
///     // was: tokio::spawn(send_welcome_email(42));
///     let id = durable.spawn(SendWelcomeEmail { user_id: 42 });
///     Json(id.to_string()) // sent only after the task is stored
/// }
/// # let _: Router = Router::new().route("/signup", post(signup));
/// ```
///
/// Without the layer, extraction fails with a `500` naming the missing layer; use
/// `Option<Durable>` to make it optional.
#[derive(Debug, Clone)]
pub struct Durable {
    scope: Arc<Scope>,
}

impl Durable {
    pub(crate) fn new(scope: Arc<Scope>) -> Self {
        Self { scope }
    }

    pub(crate) fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The client behind this handle (for enqueues that are not tied to the response).
    pub fn client(&self) -> &Client {
        &self.scope.client
    }

    /// Buffers `task`; it is stored before the response is sent. Returns its id at once.
    ///
    /// If the task cannot be prepared (payload over the limit, serialization error) the
    /// request answers `500` and nothing it spawned is stored; use
    /// [`try_spawn`](Self::try_spawn) to handle that case yourself.
    pub fn spawn<T: Task>(&self, task: T) -> TaskId {
        self.spawn_with(task, EnqueueOptions::new())
    }

    /// Like [`spawn`](Self::spawn), run at `at`.
    pub fn spawn_at<T: Task>(&self, at: DateTime<Utc>, task: T) -> TaskId {
        self.spawn_with(task, EnqueueOptions::new().run_at(at))
    }

    /// Like [`spawn`](Self::spawn), run after `delay`.
    pub fn spawn_after<T: Task>(&self, delay: Duration, task: T) -> TaskId {
        self.spawn_with(task, EnqueueOptions::new().delay(delay))
    }

    /// Like [`spawn`](Self::spawn), with per-task options.
    ///
    /// # Unique keys
    ///
    /// With a [unique key](EnqueueOptions::unique), the task is deduplicated when the layer
    /// writes it: if another task holds the key then, nothing is stored and the response is
    /// sent as usual. The id returned here is the one the task would have had, **not** the
    /// holder's — a buffered spawn answers before the insert. To learn the id that survived
    /// (to put it in the response, say), store the task with
    /// [`enqueue_with`](Self::enqueue_with) or [`spawn_in_with`](Self::spawn_in_with),
    /// which return it once stored.
    pub fn spawn_with<T: Task>(&self, task: T, options: EnqueueOptions) -> TaskId {
        match self.try_spawn_with(task, options) {
            Ok(id) => id,
            Err(error) => {
                let mut buffer = self.scope.buffer();
                if buffer.flushed {
                    // The response is gone: there is no request left to fail.
                    drop(buffer);
                    tracing::error!(task_name = T::NAME, %error,
                        "a task spawned after its request's response could not be prepared; it is not stored");
                } else {
                    buffer
                        .invalid
                        .get_or_insert_with(|| format!("task `{}`: {error}", T::NAME));
                }
                TaskId::new()
            }
        }
    }

    /// Like [`spawn`](Self::spawn), but reports a task that cannot be prepared instead of
    /// failing the request.
    pub fn try_spawn<T: Task>(&self, task: T) -> Result<TaskId, Error> {
        self.try_spawn_with(task, EnqueueOptions::new())
    }

    /// [`try_spawn`](Self::try_spawn) with per-task options.
    #[allow(
        clippy::needless_pass_by_value,
        reason = "takes the task like `tokio::spawn` does: the handler hands it over"
    )]
    pub fn try_spawn_with<T: Task>(
        &self,
        task: T,
        options: EnqueueOptions,
    ) -> Result<TaskId, Error> {
        let mut buffer = self.scope.buffer();
        if !buffer.flushed {
            return Ok(buffer.batch.push_with(&task, options)?);
        }
        drop(buffer);
        let mut late = self.scope.client.batch();
        let id = late.push_with(&task, options)?;
        Self::enqueue_late(id, T::NAME, late);
        Ok(id)
    }

    /// A spawn on a handle whose request's tasks were already written (the handle was
    /// cloned into `tokio::spawn`, an `on_upgrade` callback or a streaming body): it can no
    /// longer hold the response back, so it is enqueued on its own — durable, but not
    /// acknowledged by the response.
    fn enqueue_late(id: TaskId, name: &'static str, late: Batch) {
        tracing::warn!(task_id = %id, task_name = %name,
            "task spawned after its request's response was written; enqueued on its own, \
             not tied to the response (use `durable.client().enqueue(..).await` to wait for the commit)");
        let write = async move {
            if let Err(error) = late.commit().await {
                tracing::error!(task_id = %id, task_name = %name, %error,
                    "a task spawned after its request's response could not be stored; it is lost");
            }
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(write);
        } else {
            // Not on a Tokio thread (a plain `std::thread`): the writer's channels work
            // from any thread, so wait for the answer on a thread of its own.
            let waited = std::thread::Builder::new()
                .name("durable-late-spawn".into())
                .spawn(
                    move || match tokio::runtime::Builder::new_current_thread().build() {
                        Ok(runtime) => runtime.block_on(write),
                        Err(error) => tracing::error!(%error,
                            "cannot wait for a task spawned after its response; it is not stored"),
                    },
                );
            if let Err(error) = waited {
                tracing::error!(task_id = %id, %error,
                    "cannot start a thread for a task spawned outside a Tokio runtime; it is not stored");
            }
        }
    }

    /// Stores `task` now, before the handler continues (group-committed with other
    /// requests' tasks), independent of the response status.
    ///
    /// # Cancel safety
    ///
    /// If the handler is dropped while this is pending, the write still completes.
    pub async fn enqueue<T: Task>(&self, task: T) -> Result<TaskId, Error> {
        Ok(self.scope.client.enqueue(task).await?)
    }

    /// [`enqueue`](Self::enqueue) with per-task options. With a
    /// [unique key](EnqueueOptions::unique) another task holds, nothing is stored and that
    /// task's id is returned.
    ///
    /// ```no_run
    /// # use axum_durable::{Durable, EnqueueOptions, Task};
    /// # async fn demo<T: Task>(durable: Durable, email: T, user_id: i64) -> Result<(), axum_durable::Error> {
    /// let options = EnqueueOptions::new().unique_key(format!("user:{user_id}"));
    /// let id = durable.enqueue_with(email, options).await?; // the surviving task's id
    /// # let _ = id; Ok(()) }
    /// ```
    pub async fn enqueue_with<T: Task>(
        &self,
        task: T,
        options: EnqueueOptions,
    ) -> Result<TaskId, Error> {
        Ok(self.scope.client.enqueue_with(task, options).await?)
    }

    /// Writes `task` in the handler's own transaction (`&mut *tx`): it exists only if that
    /// transaction commits, together with the handler's rows. The runtime is woken after the
    /// response (or at once by [`commit`](Self::commit)).
    pub async fn spawn_in<C, T>(&self, conn: &mut C, task: T) -> Result<TaskId, Error>
    where
        C: EnqueueConnection + ?Sized,
        T: Task,
    {
        let id = durable_sqlx::enqueue_in(conn, &self.scope.client, task).await?;
        self.scope.buffer().wrote_in_tx = true;
        Ok(id)
    }

    /// [`spawn_in`](Self::spawn_in) with per-task options. With a
    /// [unique key](EnqueueOptions::unique) another task holds (committed, or written
    /// earlier in this transaction), nothing is inserted and that task's id is returned.
    pub async fn spawn_in_with<C, T>(
        &self,
        conn: &mut C,
        task: T,
        options: EnqueueOptions,
    ) -> Result<TaskId, Error>
    where
        C: EnqueueConnection + ?Sized,
        T: Task,
    {
        let id = durable_sqlx::enqueue_in_with(conn, &self.scope.client, task, options).await?;
        self.scope.buffer().wrote_in_tx = true;
        Ok(id)
    }

    /// Opens a transaction on `store`'s database for the handler's own rows and its tasks.
    ///
    /// # Cancel safety
    ///
    /// The `BEGIN` runs in a spawned task: a client disconnect that drops the handler cannot
    /// return a pooled connection still inside a transaction (sqlx issue 4393). Dropping the
    /// returned transaction rolls it back.
    pub async fn begin<S: TransactionSource>(
        &self,
        store: &S,
    ) -> Result<sqlx::Transaction<'static, S::Database>, Error> {
        Ok(store.begin_transaction().await?)
    }

    /// Commits a transaction opened by [`begin`](Self::begin) in a spawned task (so a client
    /// disconnect cannot interrupt it half-way) and wakes the runtime for the tasks written
    /// in it.
    pub async fn commit<T: DetachedCommit>(&self, tx: T) -> Result<(), Error> {
        tx.commit_detached().await?;
        self.scope.client.notify_committed();
        Ok(())
    }

    /// Runs `future` without persisting it, for work that may be lost (metrics, cache
    /// warm-ups): tracked by the runtime's `TaskTracker` so shutdown waits for it, its error
    /// or panic logged under `name`. The first step off raw `tokio::spawn`.
    pub fn spawn_volatile<F, E>(&self, name: &'static str, future: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        self.scope.client.spawn_volatile(name, future);
    }
}

/// Rejection when no [`DurableLayer`](crate::DurableLayer) prepared the request.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "Missing request extension: the `Durable` extractor needs `DurableLayer`. \
     Did you forget to add `.layer(DurableLayer::new(client))` to your router?"
)]
#[non_exhaustive]
pub struct MissingDurableLayer;

impl IntoResponse for MissingDurableLayer {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Durable {
    type Rejection = MissingDurableLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Durable>()
            .cloned()
            .ok_or(MissingDurableLayer)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Durable {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Durable>().cloned())
    }
}
