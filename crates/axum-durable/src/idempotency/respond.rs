//! What a handler behind the idempotency layer can do with its key: record its response in
//! its own transaction.

use axum::response::{IntoResponse, Response};
use durable_core::store::StoredResponse;
use durable_sqlx::ResponseConnection;

use super::capture::{capture, Held};
use crate::error::Error;
use crate::extract::Durable;

impl Durable {
    /// Records `response` as the answer to this request's idempotency key on `conn` — the
    /// handler's own transaction (`&mut *tx`) — and returns it, to be returned by the
    /// handler. Use it when the handler writes its rows and tasks in its own transaction
    /// ([`begin`](Self::begin), [`spawn_in`](Self::spawn_in)): the record then commits
    /// with them, so a retry after a crash between that commit and the response gets the
    /// recorded answer instead of running the handler a second time. Without an
    /// [`Idempotency`](crate::Idempotency) layer, or for a request without a key, it
    /// returns the response and writes nothing.
    ///
    /// The record stands once the transaction commits, whatever the handler answers then.
    /// If the transaction rolls back, the key is released when the request ends.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use axum::{extract::State, http::StatusCode, response::Response, Json};
    /// use axum_durable::sqlite::SqliteStore;
    /// use axum_durable::Durable;
    ///
    /// async fn signup(State(store): State<SqliteStore>, durable: Durable) -> axum::response::Result<Response> {
    ///     let mut tx = durable.begin(&store).await?;
    ///     // ... insert the user, durable.spawn_in(&mut *tx, ...) ...
    ///     let response = durable
    ///         .respond_in(&mut *tx, (StatusCode::CREATED, Json("created")))
    ///         .await?;
    ///     durable.commit(tx).await?;
    ///     Ok(response)
    /// }
    /// ```
    pub async fn respond_in<C>(
        &self,
        conn: &mut C,
        response: impl IntoResponse,
    ) -> Result<Response, Error>
    where
        C: ResponseConnection + ?Sized,
    {
        let response = response.into_response();
        let Some(held) = self.held_key() else {
            return Ok(response);
        };
        let (response, stored) = capture(&held.settings, response).await;
        conn.record_responses(&[held.record_of(stored)]).await?;
        if let Some(key) = &mut self.scope().buffer().key {
            key.recorded_in_tx = true;
        }
        Ok(response)
    }

    /// The key this request holds, if any, and not yet recorded.
    fn held_key(&self) -> Option<Held> {
        self.scope()
            .buffer()
            .key
            .as_ref()
            .filter(|key| !key.recorded_in_tx)
            .cloned()
    }

    pub(crate) fn hold_key(&self, key: Held) {
        self.scope().buffer().key = Some(key);
    }

    pub(crate) fn key_recorded_in_tx(&self) -> bool {
        self.scope()
            .buffer()
            .key
            .as_ref()
            .is_some_and(|key| key.recorded_in_tx)
    }

    pub(crate) fn set_key_record(&self, response: StoredResponse) {
        if let Some(key) = &mut self.scope().buffer().key {
            key.record = Some(key.record_of(response));
        }
    }
}
