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

    pub(crate) fn take(&self) -> Buffer {
        std::mem::take(&mut *self.buffer())
    }
}

impl Drop for Scope {
    /// Tasks written in the handler's transaction are started by a wakeup after the commit.
    /// If the handler was dropped (client disconnect) between its commit and that wakeup, the
    /// request scope is the last to know: wake the runtime here. A spurious wakeup (the
    /// transaction rolled back) costs one empty claim.
    fn drop(&mut self) {
        let buffer = self
            .buffer
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buffer.wrote_in_tx {
            self.client.notify_committed();
        }
    }
}
