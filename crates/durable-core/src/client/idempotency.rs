//! Idempotency keys through a client: taken before a request's handler runs, released when
//! its response is not recorded, purged once expired.

use super::handle::Client;
use crate::error::Result;
use crate::store::{KeyClaim, KeyTake};

impl Client {
    /// Takes an idempotency key on the client's store (committed before it returns): see
    /// [`WorkerStore::take_key`](crate::store::WorkerStore::take_key).
    pub async fn take_key(&self, take: &KeyTake) -> Result<KeyClaim> {
        self.inner.store.take_key(take).await
    }

    /// Releases a key still `running` under `token`, so a retry runs again; `Ok(false)` when
    /// it was recorded or is held by another request now.
    pub async fn release_key(&self, key_hash: &str, token: &str) -> Result<bool> {
        self.inner.store.release_key(key_hash, token).await
    }

    /// Deletes at most `limit` expired idempotency keys; returns how many.
    pub async fn purge_keys(&self, limit: u32) -> Result<u64> {
        self.inner.store.purge_keys(limit).await
    }
}
