//! The request scope: tasks a handler spawned, waiting for the layer to persist them.

use std::sync::{Mutex, MutexGuard};

use durable_core::client::Batch;
use durable_core::Client;

use crate::idempotency::Held;

/// What one request buffered.
#[derive(Debug)]
pub(crate) struct Buffer {
    /// The tasks spawned, checked and serialized, stored together by the layer.
    pub(crate) batch: Batch,
    /// A spawn that could not be prepared (payload too large...): the response becomes 500.
    pub(crate) invalid: Option<String>,
    /// Tasks were written in the handler's own transaction: wake the runtime afterwards.
    pub(crate) wrote_in_tx: bool,
    /// The idempotency key the request holds (the `Idempotency` layer), and its response
    /// record once the handler answered: written with the batch.
    pub(crate) key: Option<Held>,
    /// The layer took the buffer to write it: a later spawn (a handle that outlived its
    /// handler) cannot ride with the response any more and is enqueued on its own.
    pub(crate) flushed: bool,
}

impl Buffer {
    fn new(client: &Client) -> Self {
        Self {
            batch: client.batch(),
            invalid: None,
            wrote_in_tx: false,
            key: None,
            flushed: false,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Scope {
    pub(crate) client: Client,
    buffer: Mutex<Buffer>,
}

impl Scope {
    pub(crate) fn new(client: Client) -> Self {
        Self {
            buffer: Mutex::new(Buffer::new(&client)),
            client,
        }
    }

    pub(crate) fn buffer(&self) -> MutexGuard<'_, Buffer> {
        self.buffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes what the request buffered, for the layer to write; from now on spawns on this
    /// scope are enqueued directly.
    pub(crate) fn take(&self) -> Buffer {
        let mut buffer = self.buffer();
        let taken = std::mem::replace(&mut *buffer, Buffer::new(&self.client));
        buffer.flushed = true;
        taken
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let buffer = self
            .buffer
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The response future was dropped before the handler returned (the client hung up,
        // a timeout layer gave up): nothing was acknowledged, and what the handler had
        // spawned so far is discarded. Loudly: the handler's own writes may have committed.
        if !buffer.batch.is_empty() {
            let names: Vec<&str> = buffer.batch.names().collect();
            tracing::error!(discarded = buffer.batch.len(), tasks = ?names,
                "request ended before its handler returned; the tasks it spawned were not stored");
        }
        // Tasks written in the handler's transaction are started by a wakeup after the
        // commit. If the handler was dropped between its commit and that wakeup, the
        // request scope is the last to know: wake the runtime here. A spurious wakeup (the
        // transaction rolled back) costs one empty claim.
        if buffer.wrote_in_tx {
            self.client.notify_committed();
        }
        // Nothing will be recorded for the key: release it so a retry runs instead of
        // answering 409 until the lock expires. (A record committed in the handler's own
        // transaction is not released: the release only removes a key still running.)
        if let Some(key) = buffer.key.take() {
            crate::idempotency::release_detached(&self.client, key);
        }
    }
}
