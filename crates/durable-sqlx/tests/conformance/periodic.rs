//! Periodic schedules: the store's clock, the compare-and-set that lets exactly one instance
//! enqueue an occurrence, catch-up after a gap, and runtimes racing on one schedule.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use durable_core::periodic::{CatchUp, Periodic, Schedule};
use durable_core::store::{ListQuery, NewTask, ScheduleAdvance, Store};
use durable_core::{Registry, Runtime, Task, TaskContext, TaskError};
use serde::{Deserialize, Serialize};

use super::{eventually, TestDb};

/// The task the schedules of these cases enqueue: it carries its occurrence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tick {
    pub at: DateTime<Utc>,
}

impl Task for Tick {
    const NAME: &'static str = "periodic_tick";
    type State = ();
    async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
        Ok(())
    }
}

fn tick(at: DateTime<Utc>) -> NewTask {
    NewTask::new(
        Tick::NAME,
        serde_json::to_string(&Tick { at }).expect("json"),
    )
    .with_run_at(at)
}

fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).expect("ms")
}

/// The `run_at` of every stored `Tick`, sorted, and whether each payload names its own
/// `run_at`.
async fn ticks(store: &Arc<dyn Store>) -> Vec<DateTime<Utc>> {
    let rows = store
        .list(&ListQuery::new(1_000).name(Tick::NAME))
        .await
        .expect("list")
        .tasks;
    let mut at: Vec<DateTime<Utc>> = rows
        .iter()
        .map(|r| {
            let payload: Tick = serde_json::from_str(&r.payload).expect("tick payload");
            assert_eq!(payload.at, r.run_at, "a tick is due at its occurrence");
            r.run_at
        })
        .collect();
    at.sort();
    at
}

async fn through(store: &Arc<dyn Store>, name: &str) -> Option<DateTime<Utc>> {
    store
        .schedules(&[name.to_owned()])
        .await
        .expect("schedules")
        .first()
        .map(|r| r.enqueued_through)
}

/// The store's clock is the current time (the database's, for a server; both run here).
pub async fn store_clock_is_current(db: &impl TestDb) {
    let store = db.store();
    let before = Utc::now() - TimeDelta::seconds(5);
    let now = store.database_now().await.expect("now");
    let after = Utc::now() + TimeDelta::seconds(5);
    assert!(before < now && now < after, "{before} < {now} < {after}");
    let later = store.database_now().await.expect("now");
    assert!(
        later >= now,
        "the clock does not go back: {now} then {later}"
    );
}

/// A schedule's row reads back exactly as written (the compare-and-set compares it), and
/// advancing it from a stale value writes nothing — neither the row nor the tasks.
pub async fn schedule_rows_compare_and_set(db: &impl TestDb) {
    let store = db.store();
    let start = ms(store.database_now().await.expect("now"));
    assert!(store
        .schedules(&["digest".to_owned()])
        .await
        .expect("schedules")
        .is_empty());
    let create = ScheduleAdvance::new("digest", None, start, "every 1s");
    assert!(store.advance_schedule(create).await.expect("create"));
    assert!(
        !store.advance_schedule(create).await.expect("create again"),
        "a row that exists is not created twice"
    );
    let rows = store
        .schedules(&["digest".to_owned(), "other".to_owned()])
        .await
        .expect("schedules");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0].name.as_str(),
            rows[0].enqueued_through,
            rows[0].spec.as_str()
        ),
        ("digest", start, "every 1s")
    );

    let first = start + TimeDelta::milliseconds(1_000);
    let rows = [tick(first)];
    let step = ScheduleAdvance::new("digest", Some(start), first, "every 1s").tasks(&rows);
    assert!(store.advance_schedule(step).await.expect("advance"));
    let stale = [tick(first)];
    let step = ScheduleAdvance::new("digest", Some(start), first, "every 1s").tasks(&stale);
    assert!(!store.advance_schedule(step).await.expect("stale advance"));
    assert!(
        store.get(stale[0].id).await.expect("get").is_none(),
        "a lost race inserts nothing"
    );
    assert!(store.get(rows[0].id).await.expect("get").is_some());
    assert_eq!(through(&store, "digest").await, Some(first));
    assert_eq!(ticks(&store).await, [first]);
}

/// Two instances (two stores on one database) advancing one schedule from the same value at
/// once: exactly one wins each round, and only its occurrences are stored.
pub async fn concurrent_advances_enqueue_each_occurrence_once(db: &impl TestDb) {
    let a = db.store();
    let b = db.another().await;
    let start = ms(a.database_now().await.expect("now"));
    let (x, y) = tokio::join!(
        a.advance_schedule(ScheduleAdvance::new("race", None, start, "every 1s")),
        b.advance_schedule(ScheduleAdvance::new("race", None, start, "every 1s")),
    );
    assert!(x.expect("a") ^ y.expect("b"), "exactly one creates the row");
    let mut from = start;
    let mut expected = Vec::new();
    for round in 1..=20 {
        let to = start + TimeDelta::milliseconds(round * 1_000);
        // Each instance builds its own rows (own ids) for the same occurrences.
        let (rows_a, rows_b) = ([tick(to)], [tick(to)]);
        let (won_a, won_b) = tokio::join!(
            a.advance_schedule(
                ScheduleAdvance::new("race", Some(from), to, "every 1s").tasks(&rows_a)
            ),
            b.advance_schedule(
                ScheduleAdvance::new("race", Some(from), to, "every 1s").tasks(&rows_b)
            ),
        );
        let (won_a, won_b) = (won_a.expect("a"), won_b.expect("b"));
        assert!(
            won_a ^ won_b,
            "round {round}: exactly one instance wins ({won_a}, {won_b})"
        );
        let (winner, loser) = if won_a {
            (&rows_a, &rows_b)
        } else {
            (&rows_b, &rows_a)
        };
        assert!(a.get(winner[0].id).await.expect("get").is_some());
        assert!(a.get(loser[0].id).await.expect("get").is_none());
        expected.push(to);
        from = to;
    }
    assert_eq!(ticks(&a).await, expected, "each occurrence once");
}

/// After a gap (no instance ran for a while), a runtime starting enqueues what its catch-up
/// policy says, and moves the schedule past every due occurrence.
pub async fn catch_up_policies_after_a_gap(db: &impl TestDb) {
    let store = db.store();
    let now = ms(store.database_now().await.expect("now"));
    // Hourly, so the runtime's first pass sees the same latest occurrence as `now` does.
    let hourly = Schedule::every(Duration::from_secs(3600));
    // Three schedules that last ran 10 hours ago.
    let gap = now - TimeDelta::hours(10);
    for name in ["all", "latest", "skip"] {
        let create = ScheduleAdvance::new(name, None, gap, "gap");
        assert!(store.advance_schedule(create).await.expect("create"));
    }
    let make = |name: &str, policy| {
        Periodic::new(hourly.clone(), |o| Tick { at: o.at })
            .name(name)
            .catch_up(policy)
    };
    let registry = Registry::new()
        .register::<Tick>(())
        .periodic(make("all", CatchUp::AllUpTo(3)))
        .periodic(make("latest", CatchUp::Latest))
        .periodic(make("skip", CatchUp::Skip));
    let rt = Runtime::builder(Arc::clone(&store), registry)
        .poll_interval(Duration::from_millis(50))
        .start();
    let latest = hourly.latest_at(now).expect("an occurrence");
    for name in ["all", "latest", "skip"] {
        eventually(
            &format!("schedule {name} to catch up"),
            Duration::from_secs(10),
            || {
                let store = Arc::clone(&store);
                async move { through(&store, name).await.filter(|t| *t >= latest) }
            },
        )
        .await;
    }
    rt.shutdown(Duration::from_secs(2)).await;

    let stored = ticks(&store).await;
    let count = |t: DateTime<Utc>| stored.iter().filter(|x| **x == t).count();
    // Skip enqueues the latest only when it is at most a minute late.
    let on_time = now - latest <= TimeDelta::seconds(60);
    let hour = TimeDelta::hours(1);
    assert_eq!(count(latest), 2 + usize::from(on_time), "{stored:?}");
    assert_eq!(count(latest - hour), 1, "only `all` goes back: {stored:?}");
    assert_eq!(
        count(latest - hour * 2),
        1,
        "only `all` goes back: {stored:?}"
    );
    assert_eq!(
        stored.len(),
        4 + usize::from(on_time),
        "nothing older: {stored:?}"
    );
}

/// Two runtimes on two stores run one schedule every 100 ms: each occurrence is enqueued
/// once, none is skipped, and each task is due at its occurrence.
pub async fn runtimes_share_a_schedule_without_a_leader(db: &impl TestDb) {
    let every = Schedule::every(Duration::from_millis(100));
    let periodic =
        || Periodic::new(every.clone(), |o| Tick { at: o.at }).catch_up(CatchUp::AllUpTo(1_000));
    let a = db.store();
    let b = db.another().await;
    let rt_a = Runtime::builder(
        Arc::clone(&a),
        Registry::new().register::<Tick>(()).periodic(periodic()),
    )
    .poll_interval(Duration::from_millis(50))
    .start();
    let rt_b = Runtime::builder(b, Registry::new().register::<Tick>(()).periodic(periodic()))
        .poll_interval(Duration::from_millis(50))
        .start();
    eventually("15 occurrences", Duration::from_secs(20), || {
        let a = Arc::clone(&a);
        async move { (ticks(&a).await.len() >= 15).then_some(()) }
    })
    .await;
    rt_a.shutdown(Duration::from_secs(2)).await;
    rt_b.shutdown(Duration::from_secs(2)).await;
    let at = ticks(&a).await;
    for pair in at.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            TimeDelta::milliseconds(100),
            "consecutive occurrences, each once: {at:?}"
        );
    }
    assert_eq!(
        Some(*at.last().expect("ticks")),
        through(&a, Tick::NAME).await
    );
}
