//! Volatile futures: background work that is not persisted, but tracked and logged.

use std::future::Future;
use std::pin::Pin;

use tokio_util::sync::CancellationToken;

/// A volatile future, its error already turned into text.
pub(crate) type VolatileFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Runs a volatile future, logging its error or panic; dropped when `hard` fires.
pub(crate) async fn run(
    name: &'static str,
    future: VolatileFuture,
    hard: Option<CancellationToken>,
) {
    let guarded = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(future));
    let stop = async {
        match &hard {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = stop => tracing::warn!(volatile = name, "volatile task dropped at shutdown (it is not persisted)"),
        result = guarded => match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(volatile = name, %error, "volatile task failed"),
            Err(panic) => {
                let message = crate::error::panic_message(&*panic);
                tracing::error!(volatile = name, panic = %message, "volatile task panicked");
            }
        },
    }
}
