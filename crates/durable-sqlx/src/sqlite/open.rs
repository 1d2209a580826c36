//! Opening a file that another process may be opening at the same moment.

use std::future::Future;
use std::time::{Duration, Instant};

/// The longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Runs `open` again while it fails with `SQLITE_BUSY`, for at most `budget`.
///
/// Opening a file switches it to WAL. On a fresh file that needs an exclusive lock, and two
/// connections asking for it at once (two processes starting on a new file) can get
/// `SQLITE_BUSY` straight away: SQLite does not call the busy handler where waiting could
/// deadlock, so `busy_timeout` does not cover it. The loser tries again once the winner is
/// done; by then the file is in WAL and opening it takes no exclusive lock.
pub(super) async fn retry_while_busy<T, F, Fut>(
    budget: Duration,
    mut open: F,
) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let deadline = Instant::now() + budget;
    let mut pause = Duration::from_millis(2);
    loop {
        match open().await {
            Err(sqlx::Error::Database(e)) if is_busy(e.code().as_deref()) => {
                if Instant::now() + pause >= deadline {
                    return Err(sqlx::Error::Database(e));
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            other => return other,
        }
    }
}

/// `SQLITE_BUSY` or one of its extended codes (`BUSY_RECOVERY`, `BUSY_SNAPSHOT`...).
fn is_busy(code: Option<&str>) -> bool {
    code.and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| c & 0xff == 5)
}

#[cfg(test)]
mod tests {
    use super::is_busy;

    #[test]
    fn busy_codes_are_recognised() {
        for code in ["5", "261", "517", "773"] {
            assert!(is_busy(Some(code)), "{code}");
        }
        for code in ["6", "1555", "x"] {
            assert!(!is_busy(Some(code)), "{code}");
        }
        assert!(!is_busy(None));
    }
}
