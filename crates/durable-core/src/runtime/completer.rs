//! Batched completion: finished attempts are marked `completed` together, one fenced
//! statement per batch, the same way enqueues are group-committed. A batch forms from what
//! finished while the previous one was being written; a lone completion is written at once.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::store::{Fence, Store};

/// Most completions in one statement.
const MAX_BATCH: usize = 1024;

type Reply = oneshot::Sender<Result<bool>>;

/// Handle to the completion writer.
#[derive(Debug, Clone)]
pub(crate) struct Completer {
    tx: mpsc::UnboundedSender<(Fence, Reply)>,
}

impl Completer {
    pub(crate) fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(complete_loop(store, rx));
        Self { tx }
    }

    /// Marks one attempt completed; `Ok(false)` when its fence no longer holds the row.
    pub(crate) async fn complete(&self, fence: Fence) -> Result<bool> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((fence, reply))
            .map_err(|_| Error::ShuttingDown)?;
        answer.await.map_err(|_| Error::ShuttingDown)?
    }
}

async fn complete_loop(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<(Fence, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let fences: Vec<Fence> = batch.iter().map(|(f, _)| *f).collect();
        match store.complete(&fences).await {
            Ok(applied) => {
                let applied: HashSet<_> = applied.into_iter().collect();
                for (fence, reply) in batch {
                    let _ = reply.send(Ok(applied.contains(&fence.id)));
                }
            }
            Err(error) => {
                let message = error.to_string();
                for (_, reply) in batch {
                    let _ = reply.send(Err(Error::store("complete", message.clone())));
                }
            }
        }
    }
}
