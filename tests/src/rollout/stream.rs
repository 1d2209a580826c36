//! A client holding a long-lived server-sent-event stream (`GET /stream`) open on an
//! instance, and noting when and how it ended.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// How a held stream ended.
#[derive(Debug, Clone)]
pub struct StreamEnd {
    /// When the last byte (or the error) arrived.
    pub at: Instant,
    /// The body ended properly (the server finished the response); `false`: the connection
    /// was cut (its error).
    pub clean: bool,
    /// What cut it, if it was cut.
    pub error: Option<String>,
    /// Body chunks received in all.
    pub chunks: usize,
}

/// A stream being read in the background.
#[derive(Debug)]
pub struct HeldStream {
    ended: oneshot::Receiver<StreamEnd>,
    /// Whether the server was asked to ignore shutdown (`?ignore_stop=true`).
    pub ignores_stop: bool,
}

impl HeldStream {
    /// Opens `GET {base_url}/stream` (with `?ignore_stop=true` if `ignore_stop`), waits for
    /// its first event, and keeps reading it until it ends.
    ///
    /// # Panics
    ///
    /// If the stream cannot be opened or sends nothing within 5 s.
    pub async fn open(base_url: &str, ignore_stop: bool) -> HeldStream {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("build the HTTP client");
        let url = if ignore_stop {
            format!("{base_url}/stream?ignore_stop=true")
        } else {
            format!("{base_url}/stream")
        };
        let mut response = tokio::time::timeout(Duration::from_secs(5), client.get(&url).send())
            .await
            .unwrap_or_else(|_| panic!("GET {url}: no answer within 5 s"))
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(response.status().as_u16(), 200, "GET {url}");
        let first = tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .unwrap_or_else(|_| panic!("GET {url}: no event within 5 s"))
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert!(first.is_some(), "GET {url} ended before its first event");
        let (tx, ended) = oneshot::channel();
        tokio::spawn(async move {
            let mut chunks = 1;
            let end = loop {
                match response.chunk().await {
                    Ok(Some(_)) => chunks += 1,
                    Ok(None) => {
                        break StreamEnd {
                            at: Instant::now(),
                            clean: true,
                            error: None,
                            chunks,
                        }
                    }
                    Err(e) => {
                        break StreamEnd {
                            at: Instant::now(),
                            clean: false,
                            error: Some(e.to_string()),
                            chunks,
                        }
                    }
                }
            };
            let _ = tx.send(end);
        });
        HeldStream {
            ended,
            ignores_stop: ignore_stop,
        }
    }

    /// Waits up to `timeout` for the stream to end.
    ///
    /// # Panics
    ///
    /// If it is still open after `timeout`.
    pub async fn ended(self, timeout: Duration) -> StreamEnd {
        tokio::time::timeout(timeout, self.ended)
            .await
            .unwrap_or_else(|_| panic!("the stream was still open {timeout:?} later"))
            .expect("the stream reader ended without a report")
    }
}
