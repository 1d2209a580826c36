//! In-process HTTP load generator: `C` keep-alive HTTP/1 connections (hyper-util's legacy
//! client), each sending requests back to back for a fixed time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::stats::percentile_ms;
use crate::Result;

/// What one load run measured.
#[derive(Debug, Clone)]
pub(crate) struct LoadResult {
    /// Successful (2xx) responses completed in the measured window.
    pub(crate) ok: u64,
    /// Failed requests or non-2xx answers in the measured window.
    pub(crate) errors: u64,
    /// Length of the measured window.
    pub(crate) elapsed: Duration,
    /// Latencies of the successful requests, sorted.
    pub(crate) latencies: Vec<Duration>,
}

impl LoadResult {
    /// Successful requests per second.
    pub(crate) fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// Median latency in ms.
    pub(crate) fn p50(&self) -> f64 {
        percentile_ms(&self.latencies, 50.0)
    }
    /// 99th-percentile latency in ms.
    pub(crate) fn p99(&self) -> f64 {
        percentile_ms(&self.latencies, 99.0)
    }
}

struct Worker {
    ok: u64,
    errors: u64,
    last_end: Instant,
    latencies: Vec<Duration>,
}

/// Sends `POST http://{addr}/` from `concurrency` connections for `warmup + duration`;
/// only requests started after the warm-up are counted. With `keyed`, each request carries
/// a unique `Idempotency-Key`.
pub(crate) async fn drive(
    addr: SocketAddr,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    keyed: bool,
) -> Result<LoadResult> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build_http();
    let uri: hyper::Uri = format!("http://{addr}/").parse()?;
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut handles = Vec::with_capacity(concurrency);
    for connection in 0..concurrency {
        let client = client.clone();
        let uri = uri.clone();
        handles.push(tokio::spawn(async move {
            let mut worker = Worker {
                ok: 0,
                errors: 0,
                last_end: measure_from,
                latencies: Vec::new(),
            };
            let mut n = 0u64;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let mut request = hyper::Request::post(uri.clone());
                if keyed {
                    n += 1;
                    request = request.header("idempotency-key", format!("{connection}-{n}"));
                }
                let request = request
                    .body(Empty::<Bytes>::new())
                    .expect("a static request is valid");
                let success = match client.request(request).await {
                    Ok(response) => {
                        let status = response.status();
                        let body = response.into_body().collect().await;
                        status.is_success() && body.is_ok()
                    }
                    Err(_) => false,
                };
                let done = Instant::now();
                if sent < measure_from {
                    continue;
                }
                worker.last_end = done;
                if success {
                    worker.ok += 1;
                    worker.latencies.push(done - sent);
                } else {
                    worker.errors += 1;
                    // Do not spin on a refused connection.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            worker
        }));
    }
    let mut result = LoadResult {
        ok: 0,
        errors: 0,
        elapsed: duration,
        latencies: Vec::new(),
    };
    let mut last_end = measure_from;
    for handle in handles {
        let worker = handle.await?;
        result.ok += worker.ok;
        result.errors += worker.errors;
        result.latencies.extend(worker.latencies);
        last_end = last_end.max(worker.last_end);
    }
    result.elapsed = last_end
        .saturating_duration_since(measure_from)
        .max(duration);
    result.latencies.sort_unstable();
    Ok(result)
}
