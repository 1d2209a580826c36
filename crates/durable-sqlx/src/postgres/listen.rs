//! The `LISTEN` side of cross-instance wakeups.
//!
//! One connection per listening runtime, outside the store's pool, with the same connect
//! options (so the same `search_path`, hence the same channel, and the same
//! `application_name`). A notification on the wakeup channel only means "look now": it
//! carries nothing, may be lost while the connection is down, and the runtime polls anyway.
//! The same connection listens on the cancellation channel, whose notifications carry a task
//! id (a lost one is found by the runtime's heartbeat instead).

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::time::Instant;

use durable_core::TaskId;

use super::sql;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A session that lasted this long was healthy: the next reconnect starts from the first
/// backoff again.
const HEALTHY: Duration = Duration::from_secs(10);

/// Where the notifications go: one wakeup slot, and the cancelled task ids.
pub(super) struct Senders {
    pub(super) wake: mpsc::Sender<()>,
    pub(super) cancel: mpsc::Sender<TaskId>,
}

/// Listens until the receiving side of `wake` is dropped, reconnecting with backoff.
pub(super) async fn listen_loop(options: PgConnectOptions, senders: Senders) {
    let wake = &senders.wake;
    let mut backoff = FIRST_BACKOFF;
    let mut reconnecting = false;
    loop {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(options.clone());
        let opened = tokio::select! {
            () = wake.closed() => {
                pool.close().await;
                return;
            }
            opened = open(&pool) => opened,
        };
        let error = match opened {
            Ok((mut listener, channel, cancel_channel)) => {
                let since = Instant::now();
                if reconnecting {
                    tracing::info!(%channel, "LISTEN connection re-established");
                    // Notifications sent while it was down are lost: look once.
                    wake_up(wake);
                } else {
                    tracing::debug!(%channel, "listening for task wakeups");
                }
                let ended = tokio::select! {
                    () = wake.closed() => None,
                    error = pump(&mut listener, &senders, &channel, &cancel_channel) => Some(error),
                };
                drop(listener);
                if since.elapsed() >= HEALTHY {
                    backoff = FIRST_BACKOFF;
                }
                match ended {
                    None => {
                        pool.close().await;
                        return;
                    }
                    Some(error) => error,
                }
            }
            Err(error) => error,
        };
        // Close in the background: a dead connection must not hold up the reconnect.
        tokio::spawn(async move { pool.close().await });
        reconnecting = true;
        tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64,
            "LISTEN connection failed; wakeups from other instances fall back to polling until it is back");
        tokio::select! {
            () = wake.closed() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Connects, asks the server for the channels of this `search_path`, and `LISTEN`s on them.
async fn open(pool: &PgPool) -> Result<(PgListener, String, String), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    let channel: String = sqlx::query_scalar(sql::CHANNEL)
        .fetch_one(&mut listener)
        .await?;
    let cancel_channel: String = sqlx::query_scalar(super::cancel::CANCEL_CHANNEL)
        .fetch_one(&mut listener)
        .await?;
    listener
        .listen_all([channel.as_str(), cancel_channel.as_str()])
        .await?;
    Ok((listener, channel, cancel_channel))
}

/// Wakes the runtime per notification until the connection fails for good. A dropped
/// connection that `PgListener` re-establishes by itself (re-`LISTEN`ing) also wakes once.
async fn pump(
    listener: &mut PgListener,
    senders: &Senders,
    channel: &str,
    cancel_channel: &str,
) -> sqlx::Error {
    let wake = &senders.wake;
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) if notification.channel() == cancel_channel => {
                if let Ok(id) = notification.payload().parse::<uuid::Uuid>() {
                    // Full (a burst of cancellations): the heartbeat finds the rest.
                    let _ = senders.cancel.try_send(TaskId::from_uuid(id));
                } else {
                    tracing::debug!(
                        payload = notification.payload(),
                        "ignoring a cancellation notification that names no task"
                    );
                }
            }
            Ok(Some(_)) => wake_up(wake),
            Ok(None) => {
                tracing::info!(%channel, "LISTEN connection dropped and re-established");
                wake_up(wake);
            }
            Err(error) => return error,
        }
    }
}

/// One wakeup; none added while one is still pending (they would say the same).
fn wake_up(wake: &mpsc::Sender<()>) {
    let _ = wake.try_send(());
}
