//! One `http` measurement: a server for each design on fresh storage, driven at one
//! concurrency.

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use axum_durable::core::store::Store;
use axum_durable::{Client, Durable, DurableLayer, EnqueueOptions, Idempotency, Registry, Runtime};
use tokio::net::TcpListener;

use super::{Traffic, Variant};
use crate::backend::{BenchStore, NoOp};
use crate::counting::CountingStore;
use crate::load::{self, LoadResult};
use crate::Result;

async fn naive_handler(State(store): State<Arc<BenchStore>>) -> StatusCode {
    match store.naive_insert().await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn durable_handler(durable: Durable) -> &'static str {
    durable.spawn(NoOp {});
    "ok"
}

/// Like `durable_handler`, with a unique key of its own per request: every task is stored,
/// through the unique insert path.
async fn durable_unique_handler(durable: Durable) -> &'static str {
    let key = uuid::Uuid::now_v7().to_string();
    durable.spawn_with(NoOp {}, EnqueueOptions::new().unique_key(key));
    "ok"
}

async fn spawn_handler() -> &'static str {
    tokio::spawn(async {});
    "ok"
}

/// Serves `app` on a free local port, drives it, stops it. Returns the load result.
async fn serve_and_drive(
    app: Router,
    c: usize,
    warmup: Duration,
    duration: Duration,
    keyed: bool,
) -> Result<LoadResult> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .into_future(),
    );
    let result = load::drive(addr, c, warmup, duration, keyed).await;
    let _ = stop.send(());
    if tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .is_err()
    {
        eprintln!("  (server did not stop within 5 s)");
    }
    result
}

/// One measurement of one design at one concurrency, on fresh storage. Returns the load
/// result and a note when not every acknowledged task ran.
pub(super) async fn measure(
    variant: Variant,
    c: usize,
    warmup: Duration,
    duration: Duration,
    url: &str,
    keyed: bool,
) -> Result<(LoadResult, Option<String>, Option<Traffic>)> {
    // With keys, the `Durable` servers take each request's key and record its response.
    let idempotent = |router: Router| {
        if keyed {
            router.layer(Idempotency::new())
        } else {
            router
        }
    };
    match variant {
        Variant::Spawn => {
            let app = Router::new().route("/", post(spawn_handler));
            Ok((
                serve_and_drive(app, c, warmup, duration, keyed).await?,
                None,
                None,
            ))
        }
        Variant::Naive(backend) => {
            let store = Arc::new(BenchStore::open(backend, url).await?);
            let app = Router::new()
                .route("/", post(naive_handler))
                .with_state(Arc::clone(&store));
            let result = serve_and_drive(app, c, warmup, duration, keyed).await?;
            if let Ok(store) = Arc::try_unwrap(store) {
                store.close().await?;
            }
            Ok((result, None, None))
        }
        Variant::EnqueueOnly(backend) => {
            let store = BenchStore::open(backend, url).await?;
            let client = Client::new(Arc::clone(&store.store));
            let app = idempotent(Router::new().route("/", post(durable_handler)))
                .layer(DurableLayer::new(client.clone()));
            let result = serve_and_drive(app, c, warmup, duration, keyed).await?;
            drop(client);
            store.close().await?;
            Ok((result, None, None))
        }
        Variant::Durable(backend) | Variant::DurableUnique(backend) => {
            let store = BenchStore::open(backend, url).await?;
            let counting = Arc::new(CountingStore::new(Arc::clone(&store.store)));
            let runtime = Runtime::builder(
                Arc::clone(&counting) as Arc<dyn Store>,
                Registry::new().register::<NoOp>(()),
            )
            .start();
            let handler = if matches!(variant, Variant::DurableUnique(_)) {
                post(durable_unique_handler)
            } else {
                post(durable_handler)
            };
            let app = idempotent(Router::new().route("/", handler))
                .layer(DurableLayer::new(runtime.client()));
            let result = serve_and_drive(app, c, warmup, duration, keyed).await?;
            // Every acknowledged task must run: wait for the stragglers, then stop.
            let counts_deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            let mut note = None;
            loop {
                let counts = store.store.counts().await?;
                if counts.unfinished() == 0 {
                    break;
                }
                if tokio::time::Instant::now() >= counts_deadline {
                    note = Some(format!(
                        "{} tasks still unfinished 30 s after the load",
                        counts.unfinished()
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            runtime.shutdown(Duration::from_secs(10)).await;
            let stats = runtime.stats();
            drop(runtime);
            let insert = counting.tally("insert");
            let complete = counting.tally("complete");
            let claim = counting.tally("claim");
            let write = counting.tally("write");
            let per = |a: u64, b: u64| a as f64 / (b.max(1)) as f64;
            let traffic = Traffic {
                tasks: insert.rows,
                rows_per_insert: per(insert.rows, insert.calls),
                rows_per_complete: per(complete.rows, complete.calls),
                claims_per_100: 100.0 * per(claim.calls, insert.rows),
                writes_per_100: 100.0 * per(write.calls, insert.rows),
                local_pct: 100.0 * per(stats.dispatched_locally, insert.rows),
            };
            drop(counting);
            store.close().await?;
            Ok((result, note, Some(traffic)))
        }
    }
}
