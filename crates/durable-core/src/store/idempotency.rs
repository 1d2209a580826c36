//! Idempotency keys of HTTP requests: the values that cross the store seam.
//!
//! A request carrying an idempotency key first *takes* the key ([`KeyTake`], committed before
//! its handler runs, so a concurrent retry sees it running); once the handler answered, its
//! response is recorded ([`ResponseRecord`]) in the same transaction as the tasks the request
//! spawned, so a retry after a crash finds either both or neither. The HTTP side (hashing the
//! key, fingerprinting the body, replaying) is in `axum-durable`.

use std::time::Duration;

/// A request asking for an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyTake {
    /// Hash of what identifies the key: method, path, scope and the header's value.
    pub key_hash: String,
    /// Fingerprint of the request (a hash of its body): the same key with another
    /// fingerprint is a different request reusing the key.
    pub fingerprint: String,
    /// Fences this holder's writes: a record or release under another token does nothing.
    pub token: String,
    /// How long the key stays locked without a recorded response: past it, a request whose
    /// first run died before recording may take the key over.
    pub lock_for: Duration,
    /// How long the key is kept, from now — at least [`lock_for`](Self::lock_for), so a
    /// running key is never purged or taken as expired while it is locked. Its response,
    /// once recorded, is kept for [`ResponseRecord::keep_for`] from the record.
    pub keep_for: Duration,
}

impl KeyTake {
    /// A take of `key_hash` for a request with `fingerprint`, fenced by `token`.
    pub fn new(
        key_hash: impl Into<String>,
        fingerprint: impl Into<String>,
        token: impl Into<String>,
    ) -> Self {
        Self {
            key_hash: key_hash.into(),
            fingerprint: fingerprint.into(),
            token: token.into(),
            lock_for: Duration::from_secs(60),
            keep_for: Duration::from_secs(24 * 3600),
        }
    }

    /// Sets the lock timeout.
    #[must_use]
    pub fn lock_for(mut self, lock_for: Duration) -> Self {
        self.lock_for = lock_for;
        self
    }

    /// Sets how long the key is kept.
    #[must_use]
    pub fn keep_for(mut self, keep_for: Duration) -> Self {
        self.keep_for = keep_for;
        self
    }
}

/// What taking a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyClaim {
    /// The key is this request's now (new, expired, or taken over from a first run whose
    /// lock expired): run the handler.
    Taken,
    /// Another request with this key is running and holds its lock.
    Running,
    /// The key was used by a request with another fingerprint.
    Mismatch,
    /// A response was recorded for this key: replay it.
    Completed(StoredResponse),
}

/// A response as recorded for an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredResponse {
    /// HTTP status code.
    pub status: u16,
    /// The headers kept, as `(name, value)` pairs.
    pub headers: Vec<(String, String)>,
    /// The body; `None` when it was not stored (over the size limit, or of unknown size).
    pub body: Option<Vec<u8>>,
}

impl StoredResponse {
    /// A response with `status`, no headers and no body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Sets the headers kept.
    #[must_use]
    pub fn with_headers(mut self, headers: Vec<(String, String)>) -> Self {
        self.headers = headers;
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn with_body(mut self, body: Option<Vec<u8>>) -> Self {
        self.body = body;
        self
    }

    /// The headers as the JSON text stores keep them: an array of `[name, value]` pairs.
    pub fn headers_json(&self) -> String {
        serde_json::Value::from(
            self.headers
                .iter()
                .map(|(n, v)| serde_json::Value::from(vec![n.as_str(), v.as_str()]))
                .collect::<Vec<_>>(),
        )
        .to_string()
    }

    /// Reads headers written by [`headers_json`](Self::headers_json); malformed text gives no
    /// headers (a replay without them beats no replay).
    pub fn headers_from_json(text: &str) -> Vec<(String, String)> {
        serde_json::from_str::<Vec<(String, String)>>(text).unwrap_or_default()
    }
}

/// The response of the request holding a key, recorded with that request's tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseRecord {
    /// The key (see [`KeyTake::key_hash`]).
    pub key_hash: String,
    /// The holder's token (see [`KeyTake::token`]): a key taken over by another request is
    /// not overwritten, and the write fails as refused.
    pub token: String,
    /// The response.
    pub response: StoredResponse,
    /// How long the record is kept, from its commit.
    pub keep_for: Duration,
}

impl ResponseRecord {
    /// The record of `response` for the key `key_hash` held under `token`.
    pub fn new(
        key_hash: impl Into<String>,
        token: impl Into<String>,
        response: StoredResponse,
        keep_for: Duration,
    ) -> Self {
        Self {
            key_hash: key_hash.into(),
            token: token.into(),
            response,
            keep_for,
        }
    }

    /// Approximate bytes the record holds while it waits for the writer.
    pub fn bytes(&self) -> usize {
        self.key_hash.len()
            + self.token.len()
            + self.response.body.as_ref().map_or(0, Vec::len)
            + self
                .response
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.len())
                .sum::<usize>()
    }
}
