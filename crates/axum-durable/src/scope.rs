//! The request scope: tasks a handler spawned, waiting for the layer to persist them.

use std::sync::{Mutex, MutexGuard};

use durable_core::{Client, NewTask};

/// What one request buffered.
#[derive(Debug, Default)]
pub(crate) struct Buffer {
    pub(crate) rows: Vec<NewTask>,
    /// A spawn that could not be prepared (payload too large...): the response becomes 500.
    pub(crate) invalid: Option<String>,
    /// Tasks were written in the handler's own transaction: wake the runtime afterwards.
    pub(crate) wrote_in_tx: bool,
    /// The layer took the buffer to write it: a later spawn (a handle that outlived its
    /// handler) cannot ride with the response any more and is enqueued on its own.
    pub(crate) flushed: bool,
}

#[derive(Debug)]
pub(crate) struct Scope {
    pub(crate) client: Client,
    buffer: Mutex<Buffer>,
}

impl Scope {
    pub(crate) fn new(client: Client) -> Self {
        Self {
            client,
            buffer: Mutex::new(Buffer::default()),
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
        let taken = std::mem::take(&mut *buffer);
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
        if !buffer.rows.is_empty() {
            let names: Vec<&str> = buffer.rows.iter().map(|r| r.name.as_str()).collect();
            tracing::error!(discarded = buffer.rows.len(), tasks = ?names,
                "request ended before its handler returned; the tasks it spawned were not stored");
        }
        // Tasks written in the handler's transaction are started by a wakeup after the
        // commit. If the handler was dropped between its commit and that wakeup, the
        // request scope is the last to know: wake the runtime here. A spurious wakeup (the
        // transaction rolled back) costs one empty claim.
        if buffer.wrote_in_tx {
            self.client.notify_committed();
        }
    }
}
