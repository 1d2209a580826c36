//! Admin reads: keyset pages in both orders with filters, bounded payload searches, the
//! error history, bounded counts and the throughput table.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DurationRound as _, TimeDelta};
use durable_core::store::{
    ClaimRequest, Count, ListQuery, NewTask, Store, ThroughputBucket, COUNT_BOUND, SEARCH_SCAN,
};
use durable_core::{TaskId, TaskState, WorkerId};

use super::clock::ClockDb;
use super::{TestDb, Writes};

const LEASE: Duration = Duration::from_secs(30);

async fn claim(
    store: &Arc<dyn Store>,
    owner: WorkerId,
    limit: usize,
    name: &str,
) -> Vec<durable_core::store::ClaimedTask> {
    store
        .claim(&ClaimRequest::new(owner, LEASE, limit, [name]))
        .await
        .expect("claim")
}

/// Every page of `query`, following `next`.
async fn all_pages(store: &Arc<dyn Store>, mut query: ListQuery) -> (Vec<TaskId>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.list(&query).await.expect("list");
        pages += 1;
        assert!(page.tasks.len() <= query.limit as usize);
        ids.extend(page.tasks.iter().map(|t| t.id));
        match page.next {
            Some(next) => query = query.after(next),
            None => return (ids, pages),
        }
    }
}

/// Pages cover every matching row once, oldest or newest first, with filters.
pub async fn admin_pages_in_both_orders_with_filters(db: &impl TestDb) {
    let store = db.store();
    let rows: Vec<NewTask> = (0..23)
        .map(|i| {
            let name = if i % 3 == 0 { "report" } else { "work" };
            NewTask::new(name, format!(r#"{{"n":{i}}}"#))
        })
        .collect();
    // One at a time: ids are UUID v7, so creation order is id order.
    for t in &rows {
        store.insert(std::slice::from_ref(t)).await.expect("insert");
    }
    let ids: Vec<TaskId> = rows.iter().map(|t| t.id).collect();

    let (oldest, pages) = all_pages(&store, ListQuery::new(5)).await;
    assert_eq!(oldest, ids);
    assert_eq!(pages, 5);
    let (newest, _) = all_pages(&store, ListQuery::new(5).newest_first()).await;
    let mut reversed = ids.clone();
    reversed.reverse();
    assert_eq!(newest, reversed);

    let reports: Vec<TaskId> = rows
        .iter()
        .filter(|t| t.name == "report")
        .map(|t| t.id)
        .rev()
        .collect();
    let (newest_reports, _) =
        all_pages(&store, ListQuery::new(3).name("report").newest_first()).await;
    assert_eq!(newest_reports, reports);

    // A full last page says so only by an empty next one.
    let page = store.list(&ListQuery::new(23)).await.expect("list");
    assert_eq!(page.tasks.len(), 23);
    let after = store
        .list(&ListQuery::new(23).after(page.next.expect("full page")))
        .await
        .expect("list");
    assert!(after.tasks.is_empty() && after.next.is_none());

    let claimed = claim(&store, WorkerId::new(), 2, "work").await;
    assert!(store.fail(&claimed[0].fence(), "boom").await.expect("fail"));
    let failed = store
        .list(&ListQuery::new(10).state(TaskState::Failed).newest_first())
        .await
        .expect("list");
    assert_eq!(failed.tasks.len(), 1);
    assert_eq!(failed.tasks[0].id, claimed[0].id);
    assert!(failed.next.is_none());
}

/// Only rows created in the range; the store's clock decides `created_at`.
pub async fn admin_lists_a_creation_time_range(db: &impl ClockDb) {
    let store = db.store();
    let early = NewTask::new("work", "{}");
    store
        .insert(std::slice::from_ref(&early))
        .await
        .expect("insert");
    db.clock()
        .advance(Duration::from_secs(3600))
        .await
        .expect("advance");
    let middle = store.now();
    let late = NewTask::new("work", "{}");
    store
        .insert(std::slice::from_ref(&late))
        .await
        .expect("insert");

    let from_middle = store
        .list(&ListQuery::new(10).created_from(middle - TimeDelta::seconds(1)))
        .await
        .expect("list");
    assert_eq!(
        from_middle.tasks.iter().map(|t| t.id).collect::<Vec<_>>(),
        [late.id]
    );
    let before = store
        .list(&ListQuery::new(10).created(
            middle - TimeDelta::hours(2),
            middle - TimeDelta::minutes(30),
        ))
        .await
        .expect("list");
    assert_eq!(
        before.tasks.iter().map(|t| t.id).collect::<Vec<_>>(),
        [early.id]
    );
}

/// A search reads at most `SEARCH_SCAN` rows per call and resumes after the last row it
/// read: a page can be empty and still have a next one, and no match is skipped or repeated.
pub async fn admin_search_is_bounded_and_resumable(db: &impl TestDb) {
    let store = db.store();
    let total = SEARCH_SCAN as usize + 500;
    let hits = [3, 5_000, SEARCH_SCAN as usize + 200];
    let rows: Vec<NewTask> = (0..total)
        .map(|i| {
            let word = if hits.contains(&i) { "needle" } else { "hay" };
            NewTask::new("work", format!(r#"{{"n":{i},"word":"{word}"}}"#))
        })
        .collect();
    store.insert(&rows).await.expect("insert");
    // The batch's ids are not in insert order: compare in id order.
    let mut by_id: Vec<&NewTask> = rows.iter().collect();
    by_id.sort_by_key(|t| t.id);
    let expected: Vec<TaskId> = by_id
        .iter()
        .filter(|t| t.payload.contains("needle"))
        .map(|t| t.id)
        .collect();

    let first = store
        .list(&ListQuery::new(10).search("needle"))
        .await
        .expect("list");
    let cut = first.next.expect("the scan stopped at its bound");
    assert_eq!(
        cut,
        by_id[SEARCH_SCAN as usize - 1].id,
        "resumes after the last row read"
    );
    let found_first: Vec<TaskId> = first.tasks.iter().map(|t| t.id).collect();
    assert_eq!(
        found_first,
        expected
            .iter()
            .copied()
            .filter(|id| *id <= cut)
            .collect::<Vec<_>>()
    );

    let (oldest, pages) = all_pages(&store, ListQuery::new(10).search("needle")).await;
    assert_eq!(oldest, expected);
    assert_eq!(pages, 2);
    let (one_by_one, _) = all_pages(&store, ListQuery::new(1).search("needle")).await;
    assert_eq!(one_by_one, expected);
    let (newest, _) = all_pages(&store, ListQuery::new(2).search("needle").newest_first()).await;
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(newest, reversed);
    let none = store
        .list(&ListQuery::new(10).search("no such text").after(cut))
        .await
        .expect("list");
    assert!(none.tasks.is_empty() && none.next.is_none());
}

/// Exact counts per state, queue and due rows; past `COUNT_BOUND`, `AtLeast`.
pub async fn admin_stats_exact_then_bounded(db: &impl TestDb) {
    let store = db.store();
    let mut rows: Vec<NewTask> = (0..3)
        .map(|_| NewTask::new("work", "{}").with_queue("a"))
        .collect();
    rows.extend((0..2).map(|_| NewTask::new("work", "{}").with_queue("b")));
    rows.push(
        NewTask::new("later", "{}")
            .with_queue("a")
            .with_run_at(store.now() + TimeDelta::hours(1)),
    );
    store.insert(&rows).await.expect("insert");
    let b_claim = ClaimRequest::new(WorkerId::new(), LEASE, 1, ["work"]);
    let claimed = store
        .write(durable_core::store::WriteBatch::new().claim(&b_claim))
        .await
        .claimed
        .expect("claim");
    let claimed_queue = claimed[0].queue.clone();
    let stats = store.stats().await.expect("stats");
    assert_eq!(
        store.state_stats().await.expect("state stats"),
        stats.states,
        "the gauges' counts are those of stats"
    );
    assert_eq!(stats.state(TaskState::Pending), Count::Exact(5));
    assert_eq!(stats.state(TaskState::Processing), Count::Exact(1));
    assert_eq!(stats.state(TaskState::Completed), Count::Exact(0));
    assert_eq!(stats.due, Count::Exact(4));
    let queues: Vec<(String, Count, Count)> = stats
        .queues
        .iter()
        .map(|q| (q.queue.clone(), q.pending, q.processing))
        .collect();
    let expected: Vec<(String, Count, Count)> = ["a", "b"]
        .iter()
        .map(|q| {
            let total = if *q == "a" { 4 } else { 2 };
            let busy = u64::from(claimed_queue == *q);
            (
                (*q).to_owned(),
                Count::Exact(total - busy),
                Count::Exact(busy),
            )
        })
        .collect();
    assert_eq!(queues, expected);

    // Exactly the bound in one queue: still exact there; past it overall.
    let many: Vec<NewTask> = (0..COUNT_BOUND)
        .map(|_| NewTask::new("bulk", "{}").with_queue("big"))
        .collect();
    store.insert(&many).await.expect("insert");
    let stats = store.stats().await.expect("stats");
    assert_eq!(
        store.state_stats().await.expect("state stats"),
        stats.states,
        "the gauges' counts are those of stats"
    );
    let big = stats
        .queues
        .iter()
        .find(|q| q.queue == "big")
        .expect("queue big");
    assert_eq!(big.pending, Count::Exact(COUNT_BOUND));
    assert_eq!(stats.state(TaskState::Pending), Count::AtLeast(COUNT_BOUND));
    // One more: past the bound there too.
    store
        .insert(&[NewTask::new("bulk", "{}").with_queue("big")])
        .await
        .expect("insert");
    let stats = store.stats().await.expect("stats");
    assert_eq!(
        store.state_stats().await.expect("state stats"),
        stats.states,
        "the gauges' counts are those of stats"
    );
    assert_eq!(stats.state(TaskState::Pending), Count::AtLeast(COUNT_BOUND));
    assert_eq!(stats.due, Count::AtLeast(COUNT_BOUND));
    assert_eq!(stats.state(TaskState::Processing), Count::Exact(1));
    let big = stats
        .queues
        .iter()
        .find(|q| q.queue == "big")
        .expect("queue big");
    assert_eq!(big.pending, Count::AtLeast(COUNT_BOUND));
    assert_eq!(stats.queues.len(), 3);
}

/// Counts added per minute and instance are summed across instances, oldest first, within
/// the last 24 hours.
pub async fn admin_throughput_adds_and_sums(db: &impl ClockDb) {
    let store = db.store();
    let minute = TimeDelta::minutes(1);
    let now = store.now().duration_trunc(minute).expect("trunc");
    let (a, b) = (WorkerId::new(), WorkerId::new());
    let m0 = now - TimeDelta::minutes(5);
    let m1 = now - TimeDelta::minutes(2);
    let at = |m: chrono::DateTime<chrono::Utc>| m + TimeDelta::seconds(17);
    store
        .add_throughput(
            a,
            &[
                ThroughputBucket::new(at(m0), 3, 1, 0),
                ThroughputBucket::new(m0, 1, 0, 0),
            ],
        )
        .await
        .expect("add");
    store
        .add_throughput(
            a,
            &[
                ThroughputBucket::new(at(m0), 1, 0, 0),
                ThroughputBucket::new(at(m1), 1, 0, 0),
            ],
        )
        .await
        .expect("add");
    store
        .add_throughput(b, &[ThroughputBucket::new(m0, 0, 0, 2)])
        .await
        .expect("add");
    store.add_throughput(b, &[]).await.expect("nothing to add");
    let buckets = store
        .throughput(now - TimeDelta::minutes(10))
        .await
        .expect("throughput");
    assert_eq!(
        buckets,
        [
            ThroughputBucket::new(m0, 5, 1, 2),
            ThroughputBucket::new(m1, 1, 0, 0)
        ]
    );
    let since_m1 = store
        .throughput(m1 + TimeDelta::seconds(30))
        .await
        .expect("throughput");
    assert_eq!(since_m1, [ThroughputBucket::new(m1, 1, 0, 0)]);

    // A day later, those minutes are gone; new ones count.
    db.clock()
        .advance(Duration::from_secs(25 * 3600))
        .await
        .expect("advance");
    let later = store.now();
    store
        .add_throughput(a, &[ThroughputBucket::new(later, 0, 0, 1)])
        .await
        .expect("add");
    let buckets = store
        .throughput(m0 - TimeDelta::hours(1))
        .await
        .expect("throughput");
    let later_minute = later.duration_trunc(minute).expect("trunc");
    assert_eq!(buckets, [ThroughputBucket::new(later_minute, 0, 0, 1)]);
}
