//! Load for the failure-mode scenarios: an open-loop request generator over a changing set
//! of servers (instances come and go), recording each request's answer and latency; and a
//! raw TCP client that hangs up at a chosen moment.

mod hang_up;
mod report;
mod send;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::http::Request;

pub use hang_up::{hang_up, Cut};
pub use report::{LoadReport, Sent};
pub use send::{client, send, send_to, Reply};

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
