//! Tasks claimed ahead (`RuntimeBuilder::claim_ahead`): claimed beyond the free slots, run
//! only as slots are given back, never more at once than the slots; handed back unstarted at
//! shutdown when the grace runs out; by default as many as the slots finish in a claim
//! round trip.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use durable_core::runtime::{ClaimAhead, RuntimeBuilder};
use durable_core::store::Store;
use durable_core::{Runtime, TaskState};

use super::counting::Counting;
use super::tasks::{registry, Probe, Work};
use super::{eventually, row, wait_state, TestDb};

const WAIT: Duration = Duration::from_secs(10);

/// One slot, one task claimed ahead, no poll and no local dispatch: every task arrives
/// through a claim a wakeup asked for.
fn builder(store: Arc<dyn Store>, probe: &Probe) -> RuntimeBuilder {
    Runtime::builder(store, registry(probe))
        .concurrency(1)
        .claim_ahead(1)
        .local_dispatch(false)
        .poll_interval(Duration::from_secs(3600))
        .lease(Duration::from_secs(5))
}

/// Two tasks for one slot come in one claim; the second starts when the first ends, with no
/// claim in between, and never beside it.
pub async fn a_task_claimed_ahead_starts_when_the_slot_frees(db: &impl TestDb) {
    let probe = Probe::default();
    let counting = Arc::new(Counting::new(db.store()));
    let counts = Arc::clone(&counting);
    let rt = builder(Arc::clone(&counting) as Arc<dyn Store>, &probe).start();
    eventually("the start-up claim", WAIT, || async {
        (counts.claims.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    let ids = rt
        .client()
        .enqueue_many([Work::sleeping("first", 300), Work::new("second")])
        .await
        .expect("enqueue");
    for id in &ids {
        wait_state(&counting.inner, *id, TaskState::Completed, WAIT).await;
    }
    assert_eq!(
        probe.peak(),
        1,
        "a task claimed ahead ran beside the running one"
    );
    assert_eq!((probe.runs("first"), probe.runs("second")), (1, 1));
    let with_rows = counts.claims_with_rows.load(Ordering::SeqCst);
    assert_eq!(with_rows, 1, "both tasks should have come in one claim");
    rt.shutdown(Duration::from_secs(5)).await;
}

/// At shutdown a task claimed ahead runs if the grace lets the running one end first;
/// otherwise it is handed back with it, `pending` and never started.
pub async fn a_task_claimed_ahead_is_handed_back_unstarted_at_shutdown(db: &impl TestDb) {
    let probe = Probe::default();
    let store = db.store();
    let rt = builder(Arc::clone(&store), &probe)
        .cancel_grace(Duration::from_millis(50))
        .start();
    // One at a time, so the long one holds the slot (two claimed together start in
    // whichever order their runners take the slot).
    let long = rt
        .client()
        .enqueue(Work::sleeping("long", 30_000))
        .await
        .expect("enqueue");
    eventually("the long task running", WAIT, || async {
        (probe.live() == 1).then_some(())
    })
    .await;
    let waiting = rt
        .client()
        .enqueue(Work::new("waiting"))
        .await
        .expect("enqueue");
    wait_state(&store, waiting, TaskState::Processing, WAIT).await;
    let ids = [long, waiting];
    let report = rt.shutdown(Duration::from_millis(500)).await;
    assert!(!report.drained);
    assert_eq!(
        report.requeued, 2,
        "the running task and the one claimed ahead"
    );
    for id in &ids {
        assert_eq!(row(&store, *id).await.state, TaskState::Pending);
    }
    assert_eq!(
        probe.runs("waiting"),
        0,
        "a task claimed ahead started during shutdown"
    );
    // The running attempt was stopped, not counted, and is a requeue; the waiting one never
    // began, and is handed back as it was: being claimed ahead uses up nothing.
    let (long, waiting) = (row(&store, ids[0]).await, row(&store, ids[1]).await);
    assert_eq!((long.attempts, long.requeues), (0, 1));
    assert_eq!(
        (waiting.attempts, waiting.requeues),
        (0, 0),
        "a task handed back unstarted counted a requeue"
    );
}

/// Two slots, claims slowed to 100 ms, no poll and no local dispatch, claiming ahead as the
/// runtime sees fit ([`ClaimAhead::Auto`]).
fn auto_builder(store: Arc<dyn Store>, probe: &Probe) -> RuntimeBuilder {
    Runtime::builder(store, registry(probe))
        .concurrency(2)
        .claim_ahead(ClaimAhead::Auto)
        .local_dispatch(false)
        .poll_interval(Duration::from_secs(3600))
        .lease(Duration::from_secs(5))
}

/// Short tasks behind slow claims: once the runtime has timed a claim and a task, it claims
/// ahead (up to twice the slots), and still runs no more at once than the slots.
pub async fn auto_claims_ahead_of_short_tasks_behind_slow_claims(db: &impl TestDb) {
    let probe = Probe::default();
    let counting = Arc::new(Counting::slow_claims(
        db.store(),
        Duration::from_millis(100),
    ));
    let rt = auto_builder(Arc::clone(&counting) as Arc<dyn Store>, &probe).start();
    let ids = rt
        .client()
        .enqueue_many((0..30).map(|i| Work::new(format!("short-{i}"))))
        .await
        .expect("enqueue");
    for id in &ids {
        wait_state(&counting.inner, *id, TaskState::Completed, WAIT).await;
    }
    assert_eq!(
        counting.largest_claim.load(Ordering::SeqCst),
        2 + 4,
        "claims should fill the two slots and four ahead (the cap: twice the slots)"
    );
    assert!(probe.peak() <= 2, "ran {} at once on 2 slots", probe.peak());
    rt.shutdown(Duration::from_secs(5)).await;
}

/// Tasks much longer than a claim round trip: nothing is claimed ahead of them (it would
/// wait here while another instance could run it).
pub async fn auto_claims_nothing_ahead_of_long_tasks(db: &impl TestDb) {
    let probe = Probe::default();
    let counting = Arc::new(Counting::new(db.store()));
    let rt = auto_builder(Arc::clone(&counting) as Arc<dyn Store>, &probe).start();
    let mut ids = Vec::new();
    // In rounds, so every claim after the first is sized with both timings measured.
    for round in 0..3 {
        let batch = rt
            .client()
            .enqueue_many((0..3).map(|i| Work::sleeping(format!("long-{round}-{i}"), 400)))
            .await
            .expect("enqueue");
        ids.extend(batch);
        for id in &ids {
            wait_state(&counting.inner, *id, TaskState::Completed, WAIT).await;
        }
    }
    assert_eq!(
        counting.largest_claim.load(Ordering::SeqCst),
        2,
        "a claim asked for more than the free slots ahead of 400 ms tasks"
    );
    rt.shutdown(Duration::from_secs(5)).await;
}

/// Short tasks, then every slot held by a long one: once no attempt has started or ended
/// for longer than a claim round trip, nothing more is claimed ahead (a task claimed now
/// would wait here for the long ones while another instance could run it), whatever the
/// averages of the short tasks say.
pub async fn auto_claims_nothing_ahead_while_every_slot_is_held(db: &impl TestDb) {
    let probe = Probe::default();
    let counting = Arc::new(Counting::slow_claims(
        db.store(),
        Duration::from_millis(100),
    ));
    let rt = auto_builder(Arc::clone(&counting) as Arc<dyn Store>, &probe).start();
    let short = rt
        .client()
        .enqueue_many((0..30).map(|i| Work::new(format!("short-{i}"))))
        .await
        .expect("enqueue");
    for id in &short {
        wait_state(&counting.inner, *id, TaskState::Completed, WAIT).await;
    }
    let long = rt
        .client()
        .enqueue_many((0..2).map(|i| Work::sleeping(format!("long-{i}"), 3_000)))
        .await
        .expect("enqueue");
    eventually("both slots held by the long tasks", WAIT, || async {
        (probe.live() == 2).then_some(())
    })
    .await;
    // The slots held, nothing starting or ending, for four claim round trips.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let late = rt
        .client()
        .enqueue_many((0..4).map(|i| Work::new(format!("late-{i}"))))
        .await
        .expect("enqueue");
    // Long enough for a woken claim (100 ms) to land, well before the long tasks end.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        probe.live(),
        2,
        "the long tasks should still hold the slots"
    );
    for id in &late {
        assert_eq!(
            row(&counting.inner, *id).await.state,
            TaskState::Pending,
            "a task was claimed ahead behind slots held by long tasks"
        );
    }
    for id in long.iter().chain(&late) {
        wait_state(&counting.inner, *id, TaskState::Completed, WAIT).await;
    }
    rt.shutdown(Duration::from_secs(5)).await;
}

/// Three of four slots held by long tasks, the fourth turning short ones over: the count
/// claimed ahead is what that one slot finishes in a round trip, not what four would (the
/// averages describe the short tasks, the only ones that end). A task claimed beyond that
/// would wait here while another instance could run it.
pub async fn auto_claims_ahead_only_for_the_slots_that_turn_over(db: &impl TestDb) {
    let probe = Probe::default();
    let counting = Arc::new(Counting::slow_claims(
        db.store(),
        Duration::from_millis(100),
    ));
    let rt = auto_builder(Arc::clone(&counting) as Arc<dyn Store>, &probe)
        .concurrency(4)
        .start();
    // Claims of about 100 ms, tasks of 100 ms: four slots finish four in a round trip.
    let warm = rt
        .client()
        .enqueue_many((0..24).map(|i| Work::sleeping(format!("warm-{i}"), 100)))
        .await
        .expect("enqueue");
    for id in &warm {
        wait_state(&counting.inner, *id, TaskState::Completed, WAIT).await;
    }
    let long = rt
        .client()
        .enqueue_many((0..3).map(|i| Work::sleeping(format!("long-{i}"), 4_000)))
        .await
        .expect("enqueue");
    eventually("three slots held by the long tasks", WAIT, || async {
        (probe.live() == 3).then_some(())
    })
    .await;
    // Past eight average runs (800 ms): the long tasks are known to be long.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    counting.largest_claim.store(0, Ordering::SeqCst);
    let short = rt
        .client()
        .enqueue_many((0..8).map(|i| Work::sleeping(format!("short-{i}"), 100)))
        .await
        .expect("enqueue");
    for id in &short {
        wait_state(&counting.inner, *id, TaskState::Completed, WAIT).await;
    }
    // One slot free and one finished per round trip ahead: 2. Four slots' worth would
    // have asked for 8 - 3 = 5.
    let largest = counting.largest_claim.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&largest),
        "a claim asked for {largest} beside three slots held by long tasks"
    );
    assert_eq!(probe.live(), 3, "the long tasks should still run");
    for id in &long {
        wait_state(&counting.inner, *id, TaskState::Completed, WAIT).await;
    }
    rt.shutdown(Duration::from_secs(5)).await;
}
