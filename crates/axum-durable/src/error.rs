//! The crate's error type, with its HTTP rendering.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// Errors of durable operations in handlers.
///
/// As a response it answers `503 Service Unavailable` when the database could not store the
/// tasks (try again later) and `500 Internal Server Error` when the task itself is unusable
/// (too large, not serializable): in both cases nothing was acknowledged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Enqueueing failed: validation or the store.
    #[error(transparent)]
    Enqueue(#[from] durable_core::Error),
    /// The sqlx store failed (opening, writing in, or committing a transaction).
    #[error(transparent)]
    Store(#[from] durable_sqlx::Error),
}

impl Error {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Enqueue(
                durable_core::Error::PayloadTooLarge { .. } | durable_core::Error::Serialize { .. },
            )
            | Error::Store(durable_sqlx::Error::Task(
                durable_core::Error::PayloadTooLarge { .. } | durable_core::Error::Serialize { .. },
            )) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        tracing::error!(error = %self, status = status.as_u16(), "durable operation failed");
        (
            status,
            format!("Background task could not be stored: {self}"),
        )
            .into_response()
    }
}
