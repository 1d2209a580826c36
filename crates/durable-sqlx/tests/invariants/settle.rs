//! The end of an iteration: waiting for every task to settle, for every runtime to be idle,
//! and probing that each one has its whole capacity back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_core::store::{Store, TaskRecord};
use durable_core::TaskId;

use crate::process::Process;
use crate::tasks::Tick;

/// How long tasks get to settle once faults stop (a task may time out on every attempt).
pub const SETTLE: Duration = Duration::from_secs(15);

/// Waits until every stored task is terminal; returns those that are not at the deadline.
pub async fn settle(store: &Arc<dyn Store>, ids: &[TaskId]) -> Vec<TaskRecord> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let mut open = Vec::new();
        for id in ids {
            match store.get(*id).await {
                // Strict: a retry due a moment later is not settled yet.
                Ok(Some(row)) if !row.state.is_terminal() => open.push(row),
                Ok(_) => {}
                Err(error) => panic!("reading task {id}: {error}"),
            }
        }
        if open.is_empty() || Instant::now() > deadline {
            return open;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (a few seconds at most) until no runtime runs anything; returns those still busy.
pub async fn idle<'a>(processes: &[&'a Process]) -> Vec<&'a Process> {
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while processes.iter().any(|p| p.runtime.running() != 0) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    processes
        .iter()
        .copied()
        .filter(|p| p.runtime.running() != 0)
        .collect()
}

/// An idle runtime must take `concurrency` tasks at once (local dispatch): a slot lost during
/// the chaos shows up here. Probe tasks it did not take are cancelled, so they cannot take a
/// slot of the next runtime probed.
pub async fn capacity(p: &Process, concurrency: usize) -> Option<String> {
    let client = p.client();
    let mut batch = client.batch();
    let ids: Vec<TaskId> = (0..concurrency)
        .map(|_| batch.push(&Tick).expect("prepare"))
        .collect();
    let before = p.runtime.stats().dispatched_locally;
    let inserted = batch.commit().await;
    let started = p.runtime.stats().dispatched_locally - before;
    for id in ids {
        let _ = client.cancel(id).await;
    }
    if let Err(error) = inserted {
        return Some(format!(
            "p{}: enqueue on an idle runtime failed: {error}",
            p.incarnation
        ));
    }
    (started != concurrency as u64).then(|| {
        format!(
            "p{} (owner {}): an idle runtime started only {started} of {concurrency} tasks at once",
            p.incarnation,
            p.owner()
        )
    })
}
