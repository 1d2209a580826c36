//! Steady traffic on `POST /work`: an open-loop generator over the instances in rotation
//! (the load balancer of the rollout), bounded in count and time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::chaos::load::Targets;

/// What the traffic sends.
#[derive(Debug, Clone)]
pub struct TrafficSpec {
    /// Requests per second (sent on schedule, whatever the answers take).
    pub rate: f64,
    /// At most this many requests.
    pub count: usize,
    /// For at most this long.
    pub duration: Duration,
    /// Every `long_every`-th request asks for a `work` task of `long_ms` (0: none), so that
    /// shutdowns find tasks longer than their grace running.
    pub long_every: usize,
    /// Duration of the long tasks.
    pub long_ms: u64,
    /// Every `delay_every`-th request (offset from the long ones) asks for its tasks to run
    /// `delay_ms` later (0: none): whichever instance is up then claims them, so tasks
    /// stored by one release are run by the other.
    pub delay_every: usize,
    /// The delay of those requests.
    pub delay_ms: u64,
}

impl TrafficSpec {
    /// The delay request `seq` asks for.
    pub fn delay_of(&self, seq: usize) -> u64 {
        if self.delay_every > 0 && seq % self.delay_every == self.delay_every / 2 {
            self.delay_ms
        } else {
            0
        }
    }

    /// Whether request `seq` asks for a long `work`.
    pub fn is_long(&self, seq: usize) -> bool {
        self.long_every > 0 && seq % self.long_every == self.long_every - 1
    }

    fn body(&self, seq: usize) -> serde_json::Value {
        let mut body = serde_json::json!({ "seq": seq });
        if self.is_long(seq) {
            body["ms"] = self.long_ms.into();
        }
        let delay = self.delay_of(seq);
        if delay > 0 {
            body["delay_ms"] = delay.into();
        }
        body
    }
}

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 202 with the ids of the tasks the server promised are stored.
    Acknowledged {
        /// Lower-case hyphenated task ids.
        task_ids: Vec<String>,
        /// The release that answered.
        version: i64,
    },
    /// Any other answer.
    Rejected {
        /// Status code.
        status: u16,
        /// Body.
        body: String,
    },
    /// No complete answer (refused, reset, timed out).
    Failed(String),
}

/// One request and its answer.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Its `seq`.
    pub seq: usize,
    /// The instance it went to.
    pub target: String,
    /// The delay it asked for its tasks, in milliseconds.
    pub delay_ms: u64,
    /// It asked for a long `work`.
    pub long: bool,
    /// When it was sent, from the start of the traffic.
    pub at: Duration,
    /// Until the answer was read.
    pub latency: Duration,
    /// The answer.
    pub reply: Reply,
}

/// Traffic in progress.
#[derive(Debug)]
pub struct Traffic {
    stop: Arc<AtomicBool>,
    spawner: tokio::task::JoinHandle<JoinSet<Sent>>,
    acknowledged: Arc<AtomicUsize>,
}

impl Traffic {
    /// Starts sending `spec` to `targets`, round robin over the instances in it at each
    /// request.
    pub fn start(targets: &Targets, spec: TrafficSpec) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let spawner = tokio::spawn(send_all(
            targets.clone(),
            spec,
            Arc::clone(&stop),
            Arc::clone(&acknowledged),
        ));
        Traffic {
            stop,
            spawner,
            acknowledged,
        }
    }

    /// Requests acknowledged so far.
    pub fn acknowledged_so_far(&self) -> usize {
        self.acknowledged.load(Ordering::SeqCst)
    }

    /// Stops sending, then waits for the answers of what was sent.
    pub async fn stop(self) -> TrafficReport {
        self.stop.store(true, Ordering::SeqCst);
        let mut requests = self.spawner.await.expect("the traffic spawner panicked");
        let mut sent = Vec::new();
        while let Some(joined) = requests.join_next().await {
            sent.push(joined.expect("a traffic request panicked"));
        }
        sent.sort_by_key(|s| s.seq);
        TrafficReport { sent }
    }
}

async fn send_all(
    targets: Targets,
    spec: TrafficSpec,
    stop: Arc<AtomicBool>,
    acknowledged: Arc<AtomicUsize>,
) -> JoinSet<Sent> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build the HTTP client");
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / spec.rate.max(0.001));
    let mut set = JoinSet::new();
    for seq in 0..spec.count {
        let due = started + interval.mul_f64(seq as f64);
        if due.duration_since(started) >= spec.duration {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let body = spec.body(seq);
        let delay_ms = spec.delay_of(seq);
        let long = spec.is_long(seq);
        let target = targets.pick(seq).unwrap_or_default();
        let client = client.clone();
        let acknowledged = Arc::clone(&acknowledged);
        set.spawn(async move {
            let at = started.elapsed();
            let sending = Instant::now();
            let reply = if target.is_empty() {
                Reply::Failed("no instance in rotation".to_owned())
            } else {
                send(&client, &format!("{target}/work"), &body).await
            };
            if matches!(reply, Reply::Acknowledged { .. }) {
                acknowledged.fetch_add(1, Ordering::SeqCst);
            }
            Sent {
                seq,
                delay_ms,
                long,
                target,
                at,
                latency: sending.elapsed(),
                reply,
            }
        });
    }
    set
}

async fn send(client: &reqwest::Client, url: &str, body: &serde_json::Value) -> Reply {
    let response = match client.post(url).json(body).send().await {
        Ok(response) => response,
        Err(e) => return Reply::Failed(e.to_string()),
    };
    let status = response.status().as_u16();
    let text = match response.text().await {
        Ok(text) => text,
        Err(e) => return Reply::Failed(format!("status {status}, body lost: {e}")),
    };
    if status != 202 {
        return Reply::Rejected { status, body: text };
    }
    let json: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("202 from {url} is not JSON ({e}): {text}"));
    let task_ids = json["task_ids"]
        .as_array()
        .unwrap_or_else(|| panic!("202 from {url} has no task_ids: {text}"))
        .iter()
        .map(|id| {
            id.as_str()
                .unwrap_or_else(|| panic!("a task id of {url} is not a string: {text}"))
                .to_ascii_lowercase()
        })
        .collect();
    let version = json["version"]
        .as_i64()
        .unwrap_or_else(|| panic!("202 from {url} has no version: {text}"));
    Reply::Acknowledged { task_ids, version }
}

/// One acknowledged task and what its request asked for.
#[derive(Debug, Clone, Copy)]
pub struct Acked<'a> {
    /// Lower-case hyphenated id.
    pub task_id: &'a str,
    /// The release that acknowledged it.
    pub version: i64,
    /// The delay its request asked for (ms).
    pub delay_ms: u64,
    /// Its request asked for a long `work`.
    pub long: bool,
}

/// Every request of the traffic with its answer, by `seq`.
#[derive(Debug, Clone, Default)]
pub struct TrafficReport {
    /// The requests.
    pub sent: Vec<Sent>,
}

impl TrafficReport {
    /// The acknowledged tasks.
    pub fn acknowledged(&self) -> impl Iterator<Item = Acked<'_>> {
        self.sent.iter().flat_map(|s| match &s.reply {
            Reply::Acknowledged { task_ids, version } => task_ids
                .iter()
                .map(|id| Acked {
                    task_id: id,
                    version: *version,
                    delay_ms: s.delay_ms,
                    long: s.long,
                })
                .collect(),
            _ => Vec::new(),
        })
    }

    /// Requests acknowledged.
    pub fn acknowledged_requests(&self) -> usize {
        self.sent
            .iter()
            .filter(|s| matches!(s.reply, Reply::Acknowledged { .. }))
            .count()
    }

    /// Requests answered otherwise.
    pub fn rejected(&self) -> Vec<&Sent> {
        self.sent
            .iter()
            .filter(|s| matches!(s.reply, Reply::Rejected { .. }))
            .collect()
    }

    /// Requests without an answer.
    pub fn failed(&self) -> Vec<&Sent> {
        self.sent
            .iter()
            .filter(|s| matches!(s.reply, Reply::Failed(_)))
            .collect()
    }

    /// The slowest answer.
    pub fn max_latency(&self) -> Duration {
        self.sent
            .iter()
            .map(|s| s.latency)
            .max()
            .unwrap_or_default()
    }
}
