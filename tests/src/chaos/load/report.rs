//! What a load recorded: every request with its answer and latency, and the figures the
//! scenarios read from them.

use std::time::Duration;

use super::Reply;
use crate::http::Request;

/// One request and its answer.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The request.
    pub request: Request,
    /// The base URL it went to.
    pub target: String,
    /// When it was sent, from the start of the load.
    pub at: Duration,
    /// Until the whole answer was read (or the failure).
    pub latency: Duration,
    /// The answer.
    pub reply: Reply,
}

/// Every request of a load with its answer, in sending order.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// The requests.
    pub sent: Vec<Sent>,
}

impl LoadReport {
    /// Acknowledged requests with their task ids.
    pub fn acknowledged(&self) -> impl Iterator<Item = (&Request, &str)> {
        self.sent
            .iter()
            .filter_map(|s| s.reply.task_id().map(|id| (&s.request, id)))
    }

    /// How many were acknowledged.
    pub fn acknowledged_count(&self) -> usize {
        self.acknowledged().count()
    }

    /// Answers with `status`.
    pub fn with_status(&self, status: u16) -> impl Iterator<Item = &Sent> {
        self.sent
            .iter()
            .filter(move |s| s.reply.status() == Some(status))
    }

    /// Rejections other than `expected` statuses.
    pub fn unexpected(&self, expected: &[u16]) -> Vec<&Sent> {
        self.sent
            .iter()
            .filter(|s| s.reply.status().is_some_and(|st| !expected.contains(&st)))
            .collect()
    }

    /// Requests without an answer.
    pub fn failed_count(&self) -> usize {
        self.sent
            .iter()
            .filter(|s| matches!(s.reply, Reply::Failed(_)))
            .count()
    }

    /// The `p`-th percentile (0–100, nearest rank) latency of answered requests; zero if
    /// none was answered.
    pub fn percentile(&self, p: f64) -> Duration {
        let mut latencies: Vec<Duration> = self
            .sent
            .iter()
            .filter(|s| !matches!(s.reply, Reply::Failed(_)))
            .map(|s| s.latency)
            .collect();
        latencies.sort_unstable();
        durable_testkit::percentile(&latencies, p).unwrap_or_default()
    }

    /// Merges another report in.
    pub fn extend(&mut self, other: LoadReport) {
        self.sent.extend(other.sent);
    }
}
