//! [`ClientBuilder`]: a client's settings, and the start of its writers.

use std::sync::{Arc, OnceLock, Weak};

use tokio::sync::mpsc;

use super::queue::{WriteQueue, DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_QUEUED_ROWS};
use super::{writer, Client, ClientInner, LocalDispatch, DEFAULT_MAX_PAYLOAD_BYTES};
use crate::store::Store;

/// Settings of a [`Client`]: payload limit and the bounds of its write queue.
///
/// # Examples
///
/// ```no_run
/// # use durable_core::{Client, Store};
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
    /// Settings for a client over a shared store, all at their defaults.
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
        let store = self.store;
        let (writer, rx) = mpsc::unbounded_channel();
        let dispatch: Arc<OnceLock<Weak<dyn LocalDispatch>>> = Arc::new(OnceLock::new());
        let single = store.single_writer();
        let main = writer::write_loop(Arc::clone(&store), rx, Arc::clone(&dispatch), true);
        if single {
            writer::spawn_writer_thread(main);
        } else {
            tokio::spawn(main);
        }
        // A store with parallel writers commits completions on a writer of their own, so
        // a request's insert never waits for them. Lingering there gathers a few
        // milliseconds of completions into one statement.
        let completions = (!single).then(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(writer::write_loop(
                Arc::clone(&store),
                rx,
                Arc::new(OnceLock::new()),
                true,
            ));
            tx
        });
        Client {
            inner: Arc::new(ClientInner {
                store,
                writer,
                completions,
                queue: WriteQueue::new(self.max_queued_rows, self.max_queued_bytes),
                max_payload_bytes: self.max_payload_bytes,
                dispatch,
            }),
        }
    }
}
