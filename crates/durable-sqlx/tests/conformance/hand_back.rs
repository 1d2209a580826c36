//! What shutdown hands back: the attempts it stopped, the outcomes of attempts that were
//! still recording them, and what it reports when that write fails or is slow.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_core::store::Store;
use durable_core::{Registry, Runtime, TaskId, TaskState};

use super::faulty::{Faulty, Sticky};
use super::hardening::{Attempts, SyncPanic};
use super::tasks::{Probe, Work};
use super::{eventually, row, TestDb};

const WAIT: Duration = Duration::from_secs(10);

/// A runtime on a [`Faulty`] store over `db`'s, its one [`Sticky`] attempt running.
async fn sticky_running(db: &impl TestDb) -> (Arc<Faulty>, Arc<dyn Store>, Runtime, TaskId) {
    let faulty = Faulty::new(db.store());
    let store: Arc<dyn Store> = Arc::clone(&faulty) as Arc<dyn Store>;
    let rt = Runtime::builder(
        Arc::clone(&store),
        Registry::new().register::<Sticky>(Probe::default()),
    )
    .lease(Duration::from_secs(30))
    .poll_interval(Duration::from_millis(50))
    .cancel_grace(Duration::from_millis(50))
    .start();
    let id = rt.client().enqueue(Sticky).await.expect("enqueue");
    eventually("the attempt to run", WAIT, || async {
        (rt.running() == 1).then_some(())
    })
    .await;
    (faulty, store, rt, id)
}

/// A stopped attempt whose requeue the database does not confirm within the grace is
/// neither finished nor requeued: the report counts it apart, and its row stays
/// `processing` for the lease sweep.
pub async fn shutdown_reports_a_hand_back_it_could_not_write(db: &impl TestDb) {
    let (faulty, store, rt, id) = sticky_running(db).await;
    faulty.hang_hand_backs();
    let grace = Duration::from_millis(500);
    let started = Instant::now();
    let report = rt.shutdown(grace).await;
    assert!(
        started.elapsed() < grace + Duration::from_millis(300),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert_eq!(
        (
            report.finished,
            report.requeued,
            report.not_handed_back,
            report.drained
        ),
        (0, 0, 1, false),
        "{report:?}"
    );
    let r = row(&store, id).await;
    assert_eq!(
        r.state,
        TaskState::Processing,
        "left for the lease sweep: {r:?}"
    );
}

/// A database that commits slowly right now (every write 200 ms) is given the time its
/// writes take: the shutdown starts the hand-back early enough, and waits for it past the
/// end of the grace if need be, rather than leaving the row to wait out its lease.
pub async fn shutdown_gives_a_slow_database_the_time_its_writes_take(db: &impl TestDb) {
    let (faulty, store, rt, id) = sticky_running(db).await;
    faulty.slow_writes(Duration::from_millis(200));
    // The runtime's claims meet the slow database before the signal.
    eventually("two slow claims", WAIT, || async {
        (faulty.slowed() >= 2).then_some(())
    })
    .await;
    let grace = Duration::from_millis(600);
    let started = Instant::now();
    let report = rt.shutdown(grace).await;
    let took = started.elapsed();
    assert_eq!(
        (
            report.finished,
            report.requeued,
            report.not_handed_back,
            report.drained
        ),
        (0, 1, 0, false),
        "{report:?} after {took:?}"
    );
    assert!(
        took < grace + Duration::from_secs(1),
        "shutdown took {took:?}"
    );
    let r = row(&store, id).await;
    assert_eq!(r.state, TaskState::Pending, "handed back: {r:?}");
}

/// Attempts that finished while their outcome writes hang (a write cycle stuck on its
/// connection) have those outcomes written by the shutdown's hand-back, in the one write
/// that hands back the attempt still running: the completion is recorded and the failure
/// counts its attempt. Only the attempt the shutdown stopped goes back uncounted.
pub async fn shutdown_writes_the_outcomes_attempts_were_still_recording(db: &impl TestDb) {
    let faulty = Faulty::new(db.store());
    let store: Arc<dyn Store> = Arc::clone(&faulty) as Arc<dyn Store>;
    let probe = Probe::default();
    let registry = super::tasks::registry(&probe)
        .register::<Sticky>(probe.clone())
        .register::<SyncPanic>(Attempts::default());
    let rt = Runtime::builder(Arc::clone(&store), registry)
        .concurrency(4)
        .lease(Duration::from_secs(30))
        .poll_interval(Duration::from_millis(50))
        .cancel_grace(Duration::from_millis(50))
        .start();
    let client = rt.client();
    let sticky = client.enqueue(Sticky).await.expect("enqueue");
    eventually("the sticky attempt to run", WAIT, || async {
        (rt.running() == 1).then_some(())
    })
    .await;
    faulty.hang_outcomes.store(true, Ordering::SeqCst);
    let quick = client
        .enqueue(Work::sleeping("quick", 10))
        .await
        .expect("enqueue");
    let panics = client.enqueue(SyncPanic).await.expect("enqueue");
    eventually("both outcome writes to hang", WAIT, || async {
        (faulty.hung() >= 2).then_some(())
    })
    .await;
    // The stuck writes stay stuck; the database takes new ones.
    faulty.hang_outcomes.store(false, Ordering::SeqCst);
    let grace = Duration::from_secs(1);
    let started = Instant::now();
    let report = rt.shutdown(grace).await;
    let took = started.elapsed();
    assert!(
        took < grace + Duration::from_millis(300),
        "shutdown took {took:?}"
    );
    assert_eq!(
        (
            report.finished,
            report.requeued,
            report.not_handed_back,
            report.drained
        ),
        (2, 1, 0, false),
        "{report:?}"
    );
    let r = row(&store, quick).await;
    assert_eq!(
        (r.state, r.attempts),
        (TaskState::Completed, 1),
        "the completion is written: {r:?}"
    );
    let r = row(&store, panics).await;
    assert_eq!(
        (r.state, r.attempts, r.requeues),
        (TaskState::Pending, 1, 0),
        "the failed attempt counts: {r:?}"
    );
    assert!(
        r.last_error.as_deref().is_some_and(|e| e.contains("boom")),
        "{r:?}"
    );
    let r = row(&store, sticky).await;
    assert_eq!(
        (r.state, r.attempts, r.requeues),
        (TaskState::Pending, 0, 1),
        "the stopped attempt goes back uncounted: {r:?}"
    );
}
