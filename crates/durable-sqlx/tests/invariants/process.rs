//! A simulated process: a Tokio runtime of its own, a store with connections of its own
//! (behind the fault decorator) and a durable runtime. Crashing it drops its Tokio runtime
//! with everything on it — no shutdown, no requeue, no more heartbeats — like a SIGKILL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_core::runtime::ShutdownReport;
use durable_core::{Client, Registry, Runtime, WorkerId};

use crate::db::Connector;
use crate::faults::{Faults, FaultyStore};
use crate::plan::NARROW;
use crate::tasks::{Chaos, ExecLog, Plan, Probe, Tick};

/// What every process of an iteration shares.
#[derive(Debug, Clone)]
pub struct Setup {
    pub connector: Connector,
    pub faults: Arc<Faults>,
    pub plan: Arc<Plan>,
    pub log: Arc<ExecLog>,
    pub lease: Duration,
    pub concurrency: usize,
    pub narrow: Option<usize>,
    pub cancel_grace: Duration,
    pub poll: Duration,
}

/// How a process ended.
#[derive(Debug, Clone, Copy)]
pub enum End {
    Crashed(Instant),
    Stopped(Stopped),
}

/// A graceful shutdown: when it returned (`None`: it did not return within its bound),
/// what it reported, and the runtime's running count right after.
#[derive(Debug, Clone, Copy)]
pub struct Stopped {
    pub grace: Duration,
    pub began: Instant,
    pub returned: Option<Instant>,
    pub report: Option<ShutdownReport>,
    pub running_after: usize,
}

pub struct Process {
    pub incarnation: u32,
    pub runtime: Runtime,
    tokio: tokio::runtime::Runtime,
}

impl Process {
    pub async fn start(setup: &Setup, incarnation: u32) -> Process {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name(format!("invariant-p{incarnation}"))
            .build()
            .expect("a Tokio runtime for a process");
        let setup = setup.clone();
        let faults = Arc::clone(&setup.faults);
        let runtime = tokio
            .spawn(async move {
                let raw = setup.connector.connect().await;
                let store = FaultyStore::new(raw, setup.faults, incarnation);
                let probe = Probe {
                    incarnation,
                    plan: setup.plan,
                    log: setup.log,
                };
                let registry = Registry::new()
                    .register::<Chaos>(probe)
                    .register::<Tick>(());
                let mut builder = Runtime::builder(store, registry);
                if let Some(limit) = setup.narrow {
                    builder = builder.queue_limit(NARROW, limit);
                }
                builder
                    .lease(setup.lease)
                    .concurrency(setup.concurrency)
                    .cancel_grace(setup.cancel_grace)
                    .poll_interval(setup.poll)
                    // Rows stay for the final checks.
                    .retention(None)
                    .start()
            })
            .await
            .expect("start a process");
        faults
            .journal()
            .owners
            .insert(runtime.worker_id(), incarnation);
        Process {
            incarnation,
            runtime,
            tokio,
        }
    }

    pub fn owner(&self) -> WorkerId {
        self.runtime.worker_id()
    }

    pub fn client(&self) -> Client {
        self.runtime.client()
    }

    /// SIGKILL: everything on the process's Tokio runtime is dropped where it stands.
    pub fn crash(self) -> End {
        let at = Instant::now();
        self.tokio.shutdown_background();
        End::Crashed(at)
    }

    /// `Runtime::shutdown(grace)`, given at most `bound` to return; then the process exits.
    pub async fn shutdown(self, grace: Duration, bound: Duration) -> End {
        let began = Instant::now();
        let runtime = self.runtime.clone();
        let call = self
            .tokio
            .spawn(async move { runtime.shutdown(grace).await });
        let report = tokio::time::timeout(bound, call).await;
        let returned = matches!(report, Ok(Ok(_))).then(Instant::now);
        let running_after = self.runtime.running();
        self.tokio.shutdown_background();
        End::Stopped(Stopped {
            grace,
            began,
            returned,
            report: report.ok().and_then(Result::ok),
            running_after,
        })
    }
}
