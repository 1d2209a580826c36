//! One request of a load and what became of it: the HTTP client, sending, and classifying
//! the answer.

use std::time::Duration;

use crate::http::{Kind, Request};

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 201 (signup) / 202 (invite) with a `task_id`: the server promised the task is stored.
    Acknowledged {
        /// Lower-case hyphenated task id.
        task_id: String,
    },
    /// Any other HTTP answer.
    Rejected {
        /// Status code.
        status: u16,
        /// Response body.
        body: String,
        /// The `Retry-After` header, if any.
        retry_after: Option<String>,
    },
    /// No complete answer (refused, reset, timed out, or hung up on purpose).
    Failed(String),
}

impl Reply {
    /// The task id of an acknowledged request.
    pub fn task_id(&self) -> Option<&str> {
        match self {
            Reply::Acknowledged { task_id } => Some(task_id),
            _ => None,
        }
    }

    /// The status of a rejected request.
    pub fn status(&self) -> Option<u16> {
        match self {
            Reply::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// HTTP client for the load: no proxy, many connections, long timeout (latency is measured,
/// not cut).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build()
        .expect("build the HTTP client")
}

pub(super) fn acknowledged_status(kind: Kind) -> u16 {
    match kind {
        Kind::Signup => 201,
        Kind::Invite => 202,
    }
}

pub(super) fn path(kind: Kind) -> &'static str {
    match kind {
        Kind::Signup => "/signup",
        Kind::Invite => "/invite",
    }
}

/// Sends one request to `base_url` and classifies the answer.
pub async fn send(client: &reqwest::Client, base_url: &str, request: &Request) -> Reply {
    send_to(
        client,
        &format!("{base_url}{}", path(request.kind)),
        &request.email,
        acknowledged_status(request.kind),
    )
    .await
}

/// `POST url {"email": email}`; `acknowledged` is the status that carries a `task_id`.
pub async fn send_to(client: &reqwest::Client, url: &str, email: &str, acknowledged: u16) -> Reply {
    let body = serde_json::json!({ "email": email });
    let response = match client.post(url).json(&body).send().await {
        Ok(response) => response,
        Err(e) => return Reply::Failed(e.to_string()),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let text = match response.text().await {
        Ok(text) => text,
        Err(e) => return Reply::Failed(format!("status {status}, body lost: {e}")),
    };
    classify(status, &text, retry_after, acknowledged)
}

pub(super) fn classify(
    status: u16,
    body: &str,
    retry_after: Option<String>,
    acknowledged: u16,
) -> Reply {
    if status != acknowledged {
        return Reply::Rejected {
            status,
            body: body.to_owned(),
            retry_after,
        };
    }
    let json: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{status} response is not JSON ({e}): {body}"));
    let task_id = json["task_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{status} response has no string task_id: {body}"))
        .to_ascii_lowercase();
    Reply::Acknowledged { task_id }
}
