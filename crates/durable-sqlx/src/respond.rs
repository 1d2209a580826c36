//! Recording an idempotent request's response in the caller's own transaction.

use durable_core::store::{async_trait, ResponseRecord};

use crate::error::Result;

/// A database connection an idempotent request's response can be recorded on — in practice
/// `&mut *tx` of the handler's own transaction, so the response commits with the handler's
/// rows and tasks, and a retry after a crash finds either all of them or none.
#[async_trait]
pub trait ResponseConnection: Send {
    /// Records `records` (marks their keys `completed` with the response). Fails with
    /// [`Error::KeyLost`](crate::Error::KeyLost) when a key is no longer held under its
    /// record's token: roll the transaction back then.
    async fn record_responses(&mut self, records: &[ResponseRecord]) -> Result<()>;
}

#[cfg(feature = "sqlite")]
#[async_trait]
impl ResponseConnection for sqlx::SqliteConnection {
    async fn record_responses(&mut self, records: &[ResponseRecord]) -> Result<()> {
        crate::sqlite::record_on(self, records, crate::clock::system_now_ms()).await
    }
}

#[cfg(feature = "postgres")]
#[async_trait]
impl ResponseConnection for sqlx::PgConnection {
    async fn record_responses(&mut self, records: &[ResponseRecord]) -> Result<()> {
        crate::postgres::record_on(self, records).await
    }
}
