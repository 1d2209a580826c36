//! The crate's error type, with its HTTP rendering.
//!
//! Bodies never carry internals (SQL, database messages, payload details): the error is
//! logged with an id, and the body shows that id so an operator can find the log line.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

/// Errors of durable operations in handlers.
///
/// As a response it answers `503 Service Unavailable` with `Retry-After` when the failure
/// is transient — the database unreachable or busy, this instance shutting down — so a
/// retry can succeed, and `500 Internal Server Error` otherwise (a task that cannot be
/// prepared, a constraint the handler's own transaction broke): a retry would fail the same
/// way. In both cases nothing was acknowledged.
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
        // Each variant is transparent: its `source()` skips the wrapped error itself, so
        // classify the wrapped error, not this one.
        let inner: &(dyn std::error::Error + 'static) = match self {
            Error::Enqueue(error) => error,
            Error::Store(error) => error,
        };
        if is_transient(inner) {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        failure(self.status(), "Background task could not be stored", &self)
    }
}

/// Whether a retry of the same request can succeed: the client's writer was full, this
/// instance is shutting down (another may take the request), or the database failed for a
/// reason not tied to the rows — unreachable, busy or locked, a timeout. A row the database
/// refused, a task that cannot be prepared, or a constraint the handler's own transaction
/// broke would fail the same way again.
pub(crate) fn is_transient(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(mut error) = next {
        // This crate's variants are transparent: their `source()` is the inner error's
        // source, which would skip the inner error itself.
        match error.downcast_ref::<Error>() {
            Some(Error::Store(store)) => error = store,
            Some(Error::Enqueue(core)) => error = core,
            None => {}
        }
        if let Some(core) = error.downcast_ref::<durable_core::Error>() {
            match core {
                durable_core::Error::Overloaded { .. } | durable_core::Error::ShuttingDown => {
                    return true
                }
                // Failed for a reason not tied to the data, unless the store's own error
                // (further down the chain) says the rows were refused.
                durable_core::Error::Store { .. } => {
                    return !chain_has(
                        error,
                        durable_sqlx::Error::is_rejection,
                        durable_sqlx::Error::sqlx_is_rejection,
                    );
                }
                _ => return false,
            }
        }
        if let Some(store) = error.downcast_ref::<durable_sqlx::Error>() {
            return store.is_unavailable();
        }
        if let Some(database) = error.downcast_ref::<durable_sqlx::sqlx::Error>() {
            return durable_sqlx::Error::sqlx_is_unavailable(database);
        }
        next = error.source();
    }
    false
}

/// Whether a `durable_sqlx::Error` in `error`'s source chain satisfies `test`, or an
/// `sqlx::Error` satisfies `test_sqlx` (a converted store error carries sqlx's own).
fn chain_has(
    error: &(dyn std::error::Error + 'static),
    test: fn(&durable_sqlx::Error) -> bool,
    test_sqlx: fn(&durable_sqlx::sqlx::Error) -> bool,
) -> bool {
    let mut next = error.source();
    while let Some(error) = next {
        if error
            .downcast_ref::<durable_sqlx::Error>()
            .is_some_and(test)
            || error
                .downcast_ref::<durable_sqlx::sqlx::Error>()
                .is_some_and(test_sqlx)
        {
            return true;
        }
        next = error.source();
    }
    false
}

/// A plain-text failure answer: `what`, an error id to find the log line by, and on a `503`
/// a `Retry-After`. The error itself goes to the log only.
pub(crate) fn failure<B: From<String>>(
    status: StatusCode,
    what: &str,
    error: &dyn std::fmt::Display,
) -> http::Response<B> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let id = &id[..16];
    tracing::error!(error_id = id, status = status.as_u16(), %error, "{what}");
    let body = if status == StatusCode::SERVICE_UNAVAILABLE {
        format!("{what}; try again later (error id {id})")
    } else {
        format!("{what} (error id {id})")
    };
    let mut response = plain(status, body);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// A plain-text response.
pub(crate) fn plain<B: From<String>>(status: StatusCode, body: String) -> http::Response<B> {
    let mut response = http::Response::new(B::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transient_error_answers_503_with_retry_after_and_no_internals() {
        let response = Error::Enqueue(durable_core::Error::ShuttingDown).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn a_refused_write_answers_500_without_retry_after() {
        let refused =
            durable_core::Error::rejected("insert", "CHECK constraint failed: secret_column");
        let response = Error::Enqueue(refused).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn the_body_shows_an_error_id_not_the_error() {
        let refused =
            durable_core::Error::store("insert", "CHECK constraint failed: secret_column");
        let response: http::Response<String> = failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Background task could not be stored",
            &refused,
        );
        let body = response.into_body();
        assert!(body.contains("error id"), "{body}");
        assert!(!body.contains("secret_column"), "{body}");
    }

    fn unavailable(operation: &'static str) -> durable_sqlx::Error {
        durable_sqlx::Error::Database {
            operation,
            source: sqlx::Error::PoolTimedOut,
        }
    }

    /// The variants are transparent, so their `source()` skips the inner error itself: the
    /// status must still see that the database was unavailable (a terminated backend during
    /// a handler's own transaction answered 500 instead of 503) or the instance stopping.
    #[test]
    fn an_unavailable_store_answers_503_however_it_is_wrapped() {
        assert_eq!(
            Error::Store(unavailable("insert user")).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let core: durable_core::Error = unavailable("insert").into();
        assert_eq!(
            Error::Enqueue(core).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            Error::Enqueue(durable_core::Error::ShuttingDown).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let broken = durable_sqlx::Error::Database {
            operation: "insert user",
            source: sqlx::Error::RowNotFound,
        };
        assert_eq!(
            Error::Store(broken).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
