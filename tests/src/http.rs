//! HTTP side: concurrent bursts of signups and invites, and what was acknowledged.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

/// An HTTP client for talking to a local server: no proxy, bounded timeouts. Make one per
/// test (a client's connections belong to the Tokio runtime that opened them).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build the HTTP client")
}

/// Which endpoint a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `POST /signup`: user row and task in one transaction, 201.
    Signup,
    /// `POST /invite`: buffered spawn persisted by the layer, 202.
    Invite,
}

/// One request of a burst.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The endpoint.
    pub kind: Kind,
    /// The `email` of the body.
    pub email: String,
}

impl Request {
    /// `POST /signup {"email": email}`.
    pub fn signup(email: impl Into<String>) -> Self {
        Request {
            kind: Kind::Signup,
            email: email.into(),
        }
    }

    /// `POST /invite {"email": email}`.
    pub fn invite(email: impl Into<String>) -> Self {
        Request {
            kind: Kind::Invite,
            email: email.into(),
        }
    }

    fn path(&self) -> &'static str {
        match self.kind {
            Kind::Signup => "/signup",
            Kind::Invite => "/invite",
        }
    }

    fn acknowledged_status(&self) -> u16 {
        match self.kind {
            Kind::Signup => 201,
            Kind::Invite => 202,
        }
    }
}

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 201 (signup) or 202 (invite) with a `task_id`: the server promised the work is stored.
    Acknowledged {
        /// The task id of the response, lower-case hyphenated.
        task_id: String,
        /// The `user_id` of a signup response.
        user_id: Option<i64>,
    },
    /// Any other HTTP answer.
    Rejected {
        /// The status code.
        status: u16,
        /// The response body.
        body: String,
    },
    /// No complete answer: connection refused or reset (a killed server), timeout.
    Failed(String),
}

/// Requests in flight, sent concurrently from Tokio tasks.
#[derive(Debug)]
pub struct Burst {
    tasks: JoinSet<(usize, Request, Outcome)>,
    total: usize,
    acknowledged: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
}

impl Burst {
    /// Sends `requests` to `base_url` concurrently; request `i` starts `i * stagger` after
    /// the call (`Duration::ZERO`: all at once).
    pub fn start(base_url: &str, requests: Vec<Request>, stagger: Duration) -> Burst {
        let client = client();
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        let total = requests.len();
        for (i, request) in requests.into_iter().enumerate() {
            let client = client.clone();
            let url = format!("{base_url}{}", request.path());
            let acknowledged = Arc::clone(&acknowledged);
            let answered = Arc::clone(&answered);
            let delay = stagger * u32::try_from(i).expect("a burst has fewer than 2^32 requests");
            tasks.spawn(async move {
                tokio::time::sleep(delay).await;
                let outcome = send(&client, &url, &request).await;
                if matches!(outcome, Outcome::Acknowledged { .. }) {
                    acknowledged.fetch_add(1, Ordering::SeqCst);
                }
                answered.fetch_add(1, Ordering::SeqCst);
                (i, request, outcome)
            });
        }
        Burst {
            tasks,
            total,
            acknowledged,
            answered,
        }
    }

    /// Requests acknowledged so far.
    pub fn acknowledged_so_far(&self) -> usize {
        self.acknowledged.load(Ordering::SeqCst)
    }

    /// Requests with an outcome so far (any kind).
    pub fn answered_so_far(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    /// Whether every request has an outcome.
    pub fn is_done(&self) -> bool {
        self.answered_so_far() == self.total
    }

    /// Waits for every request's outcome (bounded by the client timeouts).
    pub async fn finish(mut self) -> BurstReport {
        let mut results = Vec::with_capacity(self.total);
        while let Some(joined) = self.tasks.join_next().await {
            results.push(joined.expect("a burst request task panicked"));
        }
        results.sort_by_key(|(i, _, _)| *i);
        BurstReport {
            results: results.into_iter().map(|(_, r, o)| (r, o)).collect(),
        }
    }
}

async fn send(client: &reqwest::Client, url: &str, request: &Request) -> Outcome {
    let body = serde_json::json!({ "email": request.email });
    let response = match client.post(url).json(&body).send().await {
        Ok(response) => response,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let status = response.status().as_u16();
    let text = match response.text().await {
        Ok(text) => text,
        Err(e) => return Outcome::Failed(format!("status {status}, body lost: {e}")),
    };
    if status != request.acknowledged_status() {
        return Outcome::Rejected { status, body: text };
    }
    let json: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{status} response to {url} is not JSON ({e}): {text}"));
    let task_id = json["task_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{status} response to {url} has no string task_id: {text}"))
        .to_ascii_lowercase();
    Outcome::Acknowledged {
        task_id,
        user_id: json["user_id"].as_i64(),
    }
}

/// Every request of a burst with its outcome, in sending order.
#[derive(Debug, Clone)]
pub struct BurstReport {
    /// `(request, outcome)` pairs.
    pub results: Vec<(Request, Outcome)>,
}

impl BurstReport {
    /// The acknowledged requests with their task ids.
    pub fn acknowledged(&self) -> impl Iterator<Item = (&Request, &str)> {
        self.results.iter().filter_map(|(r, o)| match o {
            Outcome::Acknowledged { task_id, .. } => Some((r, task_id.as_str())),
            _ => None,
        })
    }

    /// How many were acknowledged.
    pub fn acknowledged_count(&self) -> usize {
        self.acknowledged().count()
    }

    /// Requests answered with an unexpected status.
    pub fn rejected(&self) -> Vec<(&Request, u16, &str)> {
        self.results
            .iter()
            .filter_map(|(r, o)| match o {
                Outcome::Rejected { status, body } => Some((r, *status, body.as_str())),
                _ => None,
            })
            .collect()
    }

    /// Requests without an answer.
    pub fn failed_count(&self) -> usize {
        self.results
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
            .count()
    }
}

impl fmt::Display for BurstReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests: {} acknowledged, {} rejected, {} without answer",
            self.results.len(),
            self.acknowledged_count(),
            self.rejected().len(),
            self.failed_count()
        )
    }
}
