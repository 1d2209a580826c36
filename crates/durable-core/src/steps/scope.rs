//! What one attempt shares with its runtime beyond the context's plain fields: its fence,
//! the steps it finished before (read once) or used in this run, and what its transactional
//! writes told the runtime.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::OnceCell;

use crate::error::Result;
use crate::store::{Fence, Store};

/// The per-attempt record behind [`TaskContext`](crate::TaskContext)'s steps and
/// transactional completion; the runtime keeps a clone to read the flags when the attempt
/// ends.
pub(crate) struct AttemptScope {
    pub(crate) fence: Fence,
    store: Arc<dyn Store>,
    /// Steps finished by earlier attempts, name → output JSON: read at the first step.
    finished: OnceCell<HashMap<String, String>>,
    /// Step names this attempt used (ran, returned from the store, or wrote in a transaction).
    used: Mutex<HashSet<String>>,
    /// What the attempt's writes told the runtime (shared with the runtime's record of it).
    flags: Arc<AttemptFlags>,
}

/// What an attempt's own writes tell the runtime about it.
#[derive(Debug, Default)]
pub(crate) struct AttemptFlags {
    /// A completion of this attempt was written in the application's transaction.
    completion_written: AtomicBool,
    /// A fenced write of this attempt applied to no row: the task is no longer ours.
    lease_lost: AtomicBool,
}

impl AttemptFlags {
    pub(crate) fn completion_written(&self) -> bool {
        self.completion_written.load(Ordering::SeqCst)
    }

    pub(crate) fn lease_lost(&self) -> bool {
        self.lease_lost.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for AttemptScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptScope")
            .field("fence", &self.fence)
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

impl AttemptScope {
    pub(crate) fn new(fence: Fence, store: Arc<dyn Store>, flags: Arc<AttemptFlags>) -> Self {
        Self {
            fence,
            store,
            finished: OnceCell::new(),
            used: Mutex::new(HashSet::new()),
            flags,
        }
    }

    pub(crate) fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The steps finished before this attempt, read from the store on first use.
    pub(crate) async fn finished(&self) -> Result<&HashMap<String, String>> {
        self.finished
            .get_or_try_init(|| async {
                let rows = self.store.steps(self.fence.id).await?;
                Ok(rows.into_iter().map(|s| (s.name, s.output)).collect())
            })
            .await
    }

    fn used(&self) -> MutexGuard<'_, HashSet<String>> {
        self.used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes `name` for this run; `false` when this attempt already used it.
    pub(crate) fn take_name(&self, name: &str) -> bool {
        self.used().insert(name.to_owned())
    }

    pub(crate) fn set_completion_written(&self) {
        self.flags.completion_written.store(true, Ordering::SeqCst);
    }

    pub(crate) fn set_lease_lost(&self) {
        self.flags.lease_lost.store(true, Ordering::SeqCst);
    }
}
