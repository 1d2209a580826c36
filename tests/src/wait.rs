//! Polling a condition with a deadline, instead of fixed sleeps.

use std::fmt::Debug;
use std::time::{Duration, Instant};

/// How often conditions are re-checked.
pub const POLL: Duration = Duration::from_millis(25);

/// Calls `check` every [`POLL`] until it returns `Ok(value)`, and returns that value.
/// `check` returns `Err(observed)` while the condition does not hold yet.
///
/// # Panics
///
/// After `timeout`, with `what` and the last observed state.
pub async fn wait_until<T, S: Debug>(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Result<T, S>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(observed) if Instant::now() >= deadline => {
                panic!(
                    "timed out after {timeout:?} waiting until {what}; last observed: {observed:?}"
                )
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}
