//! Load for the failure-mode scenarios: an open-loop request generator over a changing set
//! of servers (instances come and go), recording each request's answer and latency; and a
//! raw TCP client that hangs up at a chosen moment.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

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

/// The servers a load spreads over (round robin), changed while it runs as instances are
/// restarted: the load balancer of the scenarios.
#[derive(Debug, Clone, Default)]
pub struct Targets(Arc<RwLock<Vec<String>>>);

impl Targets {
    /// The given base URLs.
    pub fn new(urls: impl IntoIterator<Item = String>) -> Self {
        Targets(Arc::new(RwLock::new(urls.into_iter().collect())))
    }

    /// Replaces the set.
    pub fn set(&self, urls: impl IntoIterator<Item = String>) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = urls.into_iter().collect();
    }

    /// Adds one.
    pub fn add(&self, url: &str) {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(url.to_owned());
    }

    /// Removes one (deregistration before a shutdown).
    pub fn remove(&self, url: &str) {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|u| u != url);
    }

    /// The `i`-th pick of a round robin over the current set; `None` if it is empty.
    pub fn pick(&self, i: usize) -> Option<String> {
        let urls = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if urls.is_empty() {
            None
        } else {
            Some(urls[i % urls.len()].clone())
        }
    }
}

/// What a load sends.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Requests per second (open loop: sent on schedule whatever the answers take).
    pub rate: f64,
    /// Stop after this many requests.
    pub count: Option<usize>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Email prefix: request `i` uses `<prefix>-<i>@example.com` (distinct per scenario phase).
    pub prefix: String,
    /// Every n-th request (n > 0) is an invite (`POST /invite`) instead of a signup.
    pub invite_every: Option<usize>,
    /// Most requests in flight; the schedule waits beyond that (default 256).
    pub max_in_flight: usize,
}

impl LoadSpec {
    /// Signups at `rate` per second, emails `<prefix>-<i>@example.com`, until stopped.
    pub fn new(prefix: &str, rate: f64) -> Self {
        LoadSpec {
            rate,
            count: None,
            duration: None,
            prefix: prefix.to_owned(),
            invite_every: None,
            max_in_flight: 256,
        }
    }

    /// Stop after `n` requests.
    #[must_use]
    pub fn count(mut self, n: usize) -> Self {
        self.count = Some(n);
        self
    }

    /// Stop after `d`.
    #[must_use]
    pub fn duration(mut self, d: Duration) -> Self {
        self.duration = Some(d);
        self
    }

    /// Every `n`-th request is an invite.
    #[must_use]
    pub fn invites(mut self, n: usize) -> Self {
        self.invite_every = Some(n.max(1));
        self
    }

    /// At most `n` requests in flight.
    #[must_use]
    pub fn in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    fn request(&self, i: usize) -> Request {
        let email = format!("{}-{i}@example.com", self.prefix);
        match self.invite_every {
            Some(n) if i % n == n - 1 => Request::invite(email),
            _ => Request::signup(email),
        }
    }
}

/// A load in progress.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    spawner: tokio::task::JoinHandle<JoinSet<Sent>>,
    acknowledged: Arc<AtomicUsize>,
    started: Instant,
}

impl Load {
    /// Starts sending `spec` to `targets`.
    pub fn start(targets: &Targets, spec: LoadSpec) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let spawner = tokio::spawn(spawn_requests(
            targets.clone(),
            spec,
            Arc::clone(&stop),
            Arc::clone(&acknowledged),
            started,
        ));
        Load {
            stop,
            spawner,
            acknowledged,
            started,
        }
    }

    /// Requests acknowledged so far.
    pub fn acknowledged_so_far(&self) -> usize {
        self.acknowledged.load(Ordering::SeqCst)
    }

    /// When the load started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Waits until the load's count or duration is reached, then for every answer.
    pub async fn finish(self) -> LoadReport {
        let mut requests = self.spawner.await.expect("the load spawner panicked");
        let mut sent = Vec::new();
        while let Some(joined) = requests.join_next().await {
            sent.push(joined.expect("a load request task panicked"));
        }
        sent.sort_by_key(|s| s.at);
        LoadReport { sent }
    }

    /// Stops sending now, then waits for the answers of what was sent.
    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        self.finish().await
    }
}

async fn spawn_requests(
    targets: Targets,
    spec: LoadSpec,
    stop: Arc<AtomicBool>,
    acknowledged: Arc<AtomicUsize>,
    started: Instant,
) -> JoinSet<Sent> {
    let client = client();
    let limit = Arc::new(Semaphore::new(spec.max_in_flight));
    let mut set = JoinSet::new();
    let interval = Duration::from_secs_f64(1.0 / spec.rate.max(0.001));
    for i in 0.. {
        if spec.count.is_some_and(|n| i >= n) {
            break;
        }
        let due = started + interval.mul_f64(i as f64);
        if spec
            .duration
            .is_some_and(|d| due.duration_since(started) >= d)
        {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let permit = Arc::clone(&limit)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let request = spec.request(i);
        let target = targets.pick(i);
        let client = client.clone();
        let acknowledged = Arc::clone(&acknowledged);
        set.spawn(async move {
            let at = started.elapsed();
            let sending = Instant::now();
            let (target, reply) = match target {
                Some(target) => {
                    let reply = send(&client, &target, &request).await;
                    (target, reply)
                }
                None => (
                    String::new(),
                    Reply::Failed("no server to send to".to_owned()),
                ),
            };
            let latency = sending.elapsed();
            if matches!(reply, Reply::Acknowledged { .. }) {
                acknowledged.fetch_add(1, Ordering::SeqCst);
            }
            drop(permit);
            Sent {
                request,
                target,
                at,
                latency,
                reply,
            }
        });
    }
    set
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

fn acknowledged_status(kind: Kind) -> u16 {
    match kind {
        Kind::Signup => 201,
        Kind::Invite => 202,
    }
}

fn path(kind: Kind) -> &'static str {
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

fn classify(status: u16, body: &str, retry_after: Option<String>, acknowledged: u16) -> Reply {
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

    /// The `p`-th percentile (0–100) latency of answered requests.
    pub fn percentile(&self, p: f64) -> Duration {
        percentile(
            self.sent
                .iter()
                .filter(|s| !matches!(s.reply, Reply::Failed(_)))
                .map(|s| s.latency)
                .collect(),
            p,
        )
    }

    /// Merges another report in.
    pub fn extend(&mut self, other: LoadReport) {
        self.sent.extend(other.sent);
    }
}

/// The `p`-th percentile (nearest rank) of `values`; zero if empty.
pub fn percentile(mut values: Vec<Duration>, p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort_unstable();
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// When a [`hang_up`] client drops its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// After writing only this many bytes of the request.
    MidRequest(usize),
    /// After writing the whole request, if no complete answer came within this long.
    AfterSend(Duration),
}

/// Sends `request` over a raw connection to `base_url` (`http://host:port`) and hangs up as
/// `cut` says. Returns the answer if a complete one arrived first.
pub async fn hang_up(base_url: &str, request: &Request, cut: Cut) -> Reply {
    let addr: SocketAddr = base_url
        .trim_start_matches("http://")
        .parse()
        .expect("base URL is http://ip:port");
    let body = serde_json::json!({ "email": request.email }).to_string();
    let raw = format!(
        "POST {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        path(request.kind),
        body.len()
    );
    let mut stream = match TcpStream::connect(addr).await {
        Ok(stream) => stream,
        Err(e) => return Reply::Failed(format!("connect: {e}")),
    };
    let limit = match cut {
        Cut::MidRequest(bytes) => {
            let bytes = bytes.min(raw.len().saturating_sub(1));
            let _ = stream.write_all(&raw.as_bytes()[..bytes]).await;
            return Reply::Failed(format!("hung up after {bytes} request bytes"));
        }
        Cut::AfterSend(limit) => limit,
    };
    if let Err(e) = stream.write_all(raw.as_bytes()).await {
        return Reply::Failed(format!("write: {e}"));
    }
    let mut answer = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut answer)).await {
        Ok(Ok(_)) => parse_raw(&answer, acknowledged_status(request.kind)),
        Ok(Err(e)) => Reply::Failed(format!("read: {e}")),
        Err(_) => Reply::Failed(format!("hung up after {}ms", limit.as_millis())),
    }
}

fn parse_raw(answer: &[u8], acknowledged: u16) -> Reply {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Reply::Failed(format!("incomplete answer: {text:?}"));
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok());
    let Some(status) = status else {
        return Reply::Failed(format!("no status line: {head:?}"));
    };
    if status == acknowledged && body.is_empty() {
        return Reply::Failed(format!("status {status} without body"));
    }
    classify(status, body, None, acknowledged)
}

#[cfg(test)]
mod tests {
    use super::{parse_raw, percentile, Reply};
    use std::time::Duration;

    #[test]
    fn percentiles() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(values.clone(), 99.0), Duration::from_millis(99));
        assert_eq!(percentile(values.clone(), 50.0), Duration::from_millis(50));
        assert_eq!(percentile(values, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(Vec::new(), 99.0), Duration::ZERO);
    }

    #[test]
    fn raw_answers() {
        let ok = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\r\n{\"user_id\":1,\"task_id\":\"ABC\"}";
        assert_eq!(
            parse_raw(ok, 201),
            Reply::Acknowledged {
                task_id: "abc".to_owned()
            }
        );
        let conflict = b"HTTP/1.1 409 Conflict\r\n\r\n{}";
        assert_eq!(parse_raw(conflict, 201).status(), Some(409));
        assert!(matches!(parse_raw(b"HTTP/1.1 2", 201), Reply::Failed(_)));
    }
}
