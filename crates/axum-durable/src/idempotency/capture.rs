//! The key a request holds, turning its response into a record, and replaying a record.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use durable_core::store::{ResponseRecord, StoredResponse};
use http::{HeaderName, HeaderValue, StatusCode};
use http_body::Body as _;

use super::Settings;

/// Header on a replayed response.
pub(crate) const REPLAYED: &str = "idempotent-replayed";

/// Header on a replay whose body was not recorded.
pub(crate) const BODY_OMITTED: &str = "idempotent-body-omitted";

/// The idempotency key a request holds while its handler runs, and what becomes of it.
#[derive(Clone)]
pub(crate) struct Held {
    pub(crate) key_hash: String,
    pub(crate) token: String,
    pub(crate) settings: Arc<Settings>,
    /// The response to record with the request's tasks (set once the handler answered).
    pub(crate) record: Option<ResponseRecord>,
    /// The handler recorded its response in its own transaction
    /// ([`Durable::respond_in`](crate::Durable::respond_in)): nothing left to record.
    pub(crate) recorded_in_tx: bool,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("key_hash", &self.key_hash)
            .field("recorded_in_tx", &self.recorded_in_tx)
            .field("record", &self.record.as_ref().map(|r| r.response.status))
            .finish_non_exhaustive()
    }
}

impl Held {
    /// The record of `response` for this key.
    pub(crate) fn record_of(&self, response: StoredResponse) -> ResponseRecord {
        ResponseRecord::new(
            &self.key_hash,
            &self.token,
            response,
            self.settings.keep_for,
        )
    }
}

/// Reads `response` into what is recorded, and gives back an identical response. The body
/// is read only when its size is known and within the limit (a buffered body: reading it
/// costs nothing and loses nothing); otherwise it is left streaming and not recorded.
pub(crate) async fn capture(settings: &Settings, response: Response) -> (Response, StoredResponse) {
    let headers = settings
        .stored_headers
        .iter()
        .flat_map(|name| {
            response.headers().get_all(name).iter().filter_map(|value| {
                value
                    .to_str()
                    .ok()
                    .map(|v| (name.as_str().to_owned(), v.to_owned()))
            })
        })
        .collect();
    let stored = StoredResponse::new(response.status().as_u16()).with_headers(headers);
    let fits = response
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n <= settings.max_response_body as u64);
    if !fits {
        return (response, stored);
    }
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, settings.max_response_body).await {
        Ok(bytes) => {
            let stored = stored.with_body(Some(bytes.to_vec()));
            (Response::from_parts(parts, Body::from(bytes)), stored)
        }
        Err(error) => {
            // The body failed while read: the client would have seen that failure too.
            tracing::warn!(%error, "response body failed while recorded for idempotency");
            let mut failed = Response::from_parts(parts, Body::empty());
            *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            (failed, StoredResponse::new(500))
        }
    }
}

/// The answer to a retry of a recorded request.
pub(crate) fn replay(stored: StoredResponse) -> Response {
    let omitted = stored.body.is_none();
    let mut response = Response::new(Body::from(stored.body.unwrap_or_default()));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    if omitted {
        headers.insert(BODY_OMITTED, HeaderValue::from_static("true"));
    }
    response
}

/// Releases `key` so a retry runs again: its request is not recorded. A key recorded
/// meanwhile, or taken over, is left alone (the release is fenced by the token).
pub(crate) async fn release(client: &durable_core::Client, key: &Held) {
    match client.release_key(&key.key_hash, &key.token).await {
        Ok(_) => {}
        Err(error) => tracing::warn!(%error,
            "could not release an idempotency key; retries answer 409 until its lock expires"),
    }
}

/// [`release`] from where nothing can be awaited (a dropped request).
pub(crate) fn release_detached(client: &durable_core::Client, key: Held) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        let client = client.clone();
        handle.spawn(async move { release(&client, &key).await });
    }
}
