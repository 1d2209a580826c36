//! When the claim loop claims: a wakeup that may mean new work leads to a claim, as soon as a
//! slot is free for it; a slot freed after the queue ran dry does not.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use durable_core::runtime::RuntimeBuilder;
use durable_core::store::Store;
use durable_core::{EnqueueOptions, Runtime, TaskState};

use super::counting::{ClaimHold, Counting};
use super::tasks::{registry, Probe, Work};
use super::{eventually, wait_state, TestDb, Writes as _};

const WAIT: Duration = Duration::from_secs(10);

/// No poll to fall back on: every claim here is one a wakeup asked for.
fn builder(store: Arc<dyn Store>, probe: &Probe, concurrency: usize) -> RuntimeBuilder {
    Runtime::builder(store, registry(probe))
        .concurrency(concurrency)
        .poll_interval(Duration::from_secs(3600))
        .lease(Duration::from_secs(5))
}

/// A claim that fills every free slot says more may be due, so each slot freed after it
/// wakes the claim loop. When a slot is freed while the next claim is in flight and that
/// claim then finds the queue empty, the wakeup left behind is no reason to claim again:
/// nothing new arrived since that claim began. (In a fleet behind a queue this was one
/// empty claim after every burst.)
pub async fn a_slot_freed_while_the_queue_ran_dry_claims_nothing(db: &impl TestDb) {
    let probe = Probe::default();
    let hold = Arc::new(ClaimHold::default());
    let store = Arc::new(Counting::holding(db.store(), Arc::clone(&hold)));
    let counts = Arc::clone(&store);
    let rt = builder(Arc::clone(&store) as Arc<dyn Store>, &probe, 2)
        .local_dispatch(false)
        .start();
    eventually("the start-up claim", WAIT, || async {
        (counts.claims.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;

    // Two tasks for two slots: the claim fills them both, so it says more may be due.
    let ids = rt
        .client()
        .enqueue_many([Work::sleeping("short", 100), Work::sleeping("long", 500)])
        .await
        .expect("enqueue");
    eventually("both tasks running", WAIT, || async {
        (probe.live() == 2).then_some(())
    })
    .await;
    // The short one ends: its slot wakes the claim loop, whose claim finds nothing. Hold that
    // claim in flight while the long one ends and frees its slot too.
    hold.armed.store(true, Ordering::SeqCst);
    tokio::time::timeout(WAIT, hold.entered.notified())
        .await
        .expect("a freed slot woke the claim loop while more could be due");
    eventually("the long task ended", WAIT, || async {
        (probe.live() == 0).then_some(())
    })
    .await;
    // The runner gives the slot back right after the task's future returns.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let claims = counts.claims.load(Ordering::SeqCst);
    hold.release.notify_one();
    for id in ids {
        wait_state(&store.inner, id, TaskState::Completed, WAIT).await;
    }
    // A stray claim would follow the release at once; give it ample time to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        counts.claims.load(Ordering::SeqCst),
        claims,
        "claimed again after a claim found the queue empty, with nothing new committed"
    );
    rt.shutdown(Duration::from_secs(5)).await;
}

/// A wakeup for new work while every slot is busy (here with a task dispatched locally, so
/// no claim said more might be due) is kept: the first slot freed claims it, instead of the
/// task waiting for the poll interval.
pub async fn a_wakeup_while_every_slot_is_busy_claims_when_one_frees(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let counting = Arc::new(Counting::new(Arc::clone(&store)));
    let counts = Arc::clone(&counting);
    let rt = builder(counting, &probe, 1).start();
    // The start-up claim finds nothing: no claim says more may be due.
    eventually("the start-up claim", WAIT, || async {
        (counts.claims.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let busy = rt
        .client()
        .enqueue(Work::sleeping("busy", 300))
        .await
        .expect("enqueue");
    eventually("the local task running", WAIT, || async {
        (probe.live() == 1).then_some(())
    })
    .await;
    assert_eq!(rt.stats().dispatched_locally, 1);

    // Committed in the application's own transaction while the only slot is busy.
    let late = rt
        .client()
        .prepare(&Work::new("late"), &EnqueueOptions::new())
        .expect("prepare");
    store
        .insert(std::slice::from_ref(&late))
        .await
        .expect("insert");
    rt.client().notify_committed();

    wait_state(&store, busy, TaskState::Completed, WAIT).await;
    wait_state(&store, late.id, TaskState::Completed, WAIT).await;
    rt.shutdown(Duration::from_secs(5)).await;
}
