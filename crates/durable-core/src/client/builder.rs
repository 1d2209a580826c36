//! [`ClientBuilder`]: a client's settings, and the start of its writers.

use std::sync::{Arc, OnceLock};

use super::handle::{Client, ClientInner};
use crate::store::Store;
use crate::writer::Writer;

/// Default bound on the rows queued for writing by one client.
pub const DEFAULT_MAX_QUEUED_ROWS: usize = 16_384;

/// Default bound on the bytes queued for writing by one client (payloads, names and a
/// fixed per-row overhead).
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 64 * 1024 * 1024;

/// Default limit on a serialized payload: 256 KiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 256 * 1024;

impl Client {
    /// A client writing to `store`, with the default settings.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (it spawns its writer task).
    pub fn new(store: impl Store) -> Self {
        Self::builder(store).build()
    }
    /// Settings for a client writing to `store`.
    pub fn builder(store: impl Store) -> ClientBuilder {
        ClientBuilder::new(Arc::new(store))
    }
}

/// Settings of a [`Client`]: payload limit and the bounds of its write queue.
///
/// # Examples
///
/// ```no_run
/// # use durable_core::{store::Store, Client};
/// # fn demo(store: impl Store) {
/// let client = Client::builder(store)
///     .max_payload_bytes(64 * 1024)
///     .max_queued_rows(4096)
///     .build();
/// # let _ = client; }
/// ```
#[derive(Debug)]
pub struct ClientBuilder {
    store: Arc<dyn Store>,
    max_payload_bytes: usize,
    max_queued_rows: usize,
    max_queued_bytes: usize,
}

impl ClientBuilder {
    /// Settings for a client over a store shared with others (a runtime's, say), all at
    /// their defaults.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            max_queued_rows: DEFAULT_MAX_QUEUED_ROWS,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
        }
    }

    /// Largest serialized payload accepted, in bytes (default
    /// [`DEFAULT_MAX_PAYLOAD_BYTES`]).
    #[must_use]
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// Most rows waiting to be written (default [`DEFAULT_MAX_QUEUED_ROWS`]). While the
    /// database is slow or hung, enqueues wait for it; once this many rows wait, further
    /// enqueues fail at once with [`Error::Overloaded`](crate::Error::Overloaded) instead of piling up in memory. A
    /// request is admitted whole while any room is left, so one batch larger than the bound
    /// is still written (when the queue is not full).
    #[must_use]
    pub fn max_queued_rows(mut self, rows: usize) -> Self {
        self.max_queued_rows = rows.max(1);
        self
    }

    /// Most bytes of rows waiting to be written — payloads, names and about 128 bytes per
    /// row (default [`DEFAULT_MAX_QUEUED_BYTES`], 64 MiB); as
    /// [`max_queued_rows`](Self::max_queued_rows).
    #[must_use]
    pub fn max_queued_bytes(mut self, bytes: usize) -> Self {
        self.max_queued_bytes = bytes.max(1);
        self
    }

    /// Starts the client's writer.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (it spawns its writer task).
    pub fn build(self) -> Client {
        let writer = Writer::start(
            Arc::clone(&self.store),
            self.max_queued_rows,
            self.max_queued_bytes,
        );
        Client {
            inner: Arc::new(ClientInner {
                store: self.store,
                writer,
                max_payload_bytes: self.max_payload_bytes,
                link: OnceLock::new(),
                waiters: super::link::Waiters::default(),
            }),
        }
    }
}
