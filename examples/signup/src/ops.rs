//! What operators see: Prometheus metrics at `GET /metrics`, and alerts when tasks fail.
//!
//! Alerts are logged at error level (`task failed; paging`), which a log pipeline can
//! already page on. To page directly, build with `--features webhook` and set
//! `ALERT_WEBHOOK_URL`: each alert is then also posted there as JSON (an incident tool's or
//! a chat's incoming webhook).

use axum_durable::core::runtime::{AlertKind, TaskEvent};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// From this attempt on, a task that keeps failing alerts before it is dead.
pub(crate) const ALERT_AFTER_ATTEMPTS: u32 = 5;

/// Installs the Prometheus recorder the runtime's metrics go to; the handle renders them.
pub(crate) fn install_metrics() -> Result<PrometheusHandle, Box<dyn std::error::Error>> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    // Histograms are summarized lazily: keep their buckets bounded between scrapes.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// The alerting hook: runs off the workers' path, one event at a time.
pub(crate) async fn alert(event: TaskEvent) {
    let what = match event.kind {
        AlertKind::Dead => "task failed for good",
        _ => "task keeps failing",
    };
    tracing::error!(task_id = %event.id, task_name = %event.name, queue = %event.queue,
        attempt = event.attempt, max_attempts = event.max_attempts, permanent = event.permanent,
        error = %event.error, "{what}; paging");
    #[cfg(feature = "webhook")]
    webhook::post(&event, what).await;
}

#[cfg(feature = "webhook")]
mod webhook {
    use std::sync::OnceLock;

    use axum_durable::core::runtime::TaskEvent;

    /// Posts the alert to `ALERT_WEBHOOK_URL`, if set; a failure is logged (the hook's
    /// timeout bounds a webhook that hangs).
    pub(super) async fn post(event: &TaskEvent, what: &str) {
        static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
        let Ok(url) = std::env::var("ALERT_WEBHOOK_URL") else {
            return;
        };
        let body = serde_json::json!({
            "summary": format!("{what}: {} ({})", event.name, event.id),
            "task_id": event.id.to_string(),
            "task_name": event.name,
            "queue": event.queue,
            "attempt": event.attempt,
            "max_attempts": event.max_attempts,
            "permanent": event.permanent,
            "error": event.error,
        });
        let client = CLIENT.get_or_init(reqwest::Client::new);
        match client.post(&url).json(&body).send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                tracing::warn!(status = %response.status(), "alert webhook refused the alert");
            }
            Err(error) => tracing::warn!(%error, "alert webhook unreachable"),
        }
    }
}
