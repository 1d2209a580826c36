//! The query plans SQLite picks for the claim statements and the counts, on a real file: each
//! must read the partial claim indexes, never scan the whole table (which holds every
//! finished task until it is pruned).

use super::{sql, SqliteStore};

/// `EXPLAIN QUERY PLAN` of `statement`: one detail line per step.
async fn plan(store: &SqliteStore, statement: &str) -> Vec<String> {
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "EXPLAIN QUERY PLAN {statement}"
    )))
    .fetch_all(store.reader_pool())
    .await
    .unwrap_or_else(|e| panic!("explain {statement}: {e}"));
    rows.into_iter().map(|(_, _, _, detail)| detail).collect()
}

/// Asserts that `statement` reads `durable_tasks` through `index` and nowhere by a full scan.
async fn assert_indexed(store: &SqliteStore, what: &str, statement: &str, index: &str) {
    let steps = plan(store, statement).await;
    let shown = steps.join("\n");
    eprintln!("{what}:\n{shown}");
    assert!(
        steps
            .iter()
            .any(|s| s.contains(&format!("INDEX {index}")) && s.contains("durable_tasks")),
        "{what} should use {index}:\n{shown}"
    );
    assert!(
        !steps
            .iter()
            .any(|s| s.starts_with("SCAN durable_tasks") && !s.contains("INDEX")),
        "{what} scans the whole table:\n{shown}"
    );
}

/// A migrated store on a new file in `dir`, filled by `fill` (one statement) and analyzed.
async fn filled_store(dir: &tempfile::TempDir, fill: &'static str) -> SqliteStore {
    let url = format!("sqlite://{}", dir.path().join("plan.db").display());
    let store = SqliteStore::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    sqlx::query(fill)
        .execute(store.writer_pool())
        .await
        .expect("fill");
    sqlx::query("ANALYZE")
        .execute(store.writer_pool())
        .await
        .expect("analyze");
    store
}

#[tokio::test]
async fn claims_and_counts_read_the_claim_indexes() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 20,000 rows of which 1% are pending, a few of those of a type no claim names.
    let store = filled_store(
        &dir,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO durable_tasks (id, name, queue, payload, state, max_attempts, run_at,
             created_at, updated_at, finished_at)
         SELECT printf('00000000-0000-7000-8000-%012d', i), CASE WHEN i % 700 = 0 THEN 'newer' ELSE 'work' END,
             CASE WHEN i % 3 = 0 THEN 'mail' ELSE 'default' END, '{}',
             CASE WHEN i % 100 = 0 THEN 'pending' ELSE 'completed' END, 3, i, i, i,
             CASE WHEN i % 100 = 0 THEN NULL ELSE i END
         FROM n",
    )
    .await;
    for (what, statement, index) in [
        (
            "the bound cycle's claim",
            sql::BOUND_CLAIM,
            "durable_tasks_claim",
        ),
        (
            "the JSON cycle's claim",
            sql::CYCLE_CLAIM,
            "durable_tasks_claim",
        ),
        (
            "the claim of the other queues",
            sql::CLAIM_OTHERS,
            "durable_tasks_claim",
        ),
        (
            "the claim of one capped queue",
            sql::CLAIM_QUEUE,
            "durable_tasks_claim_queue",
        ),
        ("the backlog", sql::BACKLOG, "durable_tasks_claim"),
        (
            "the unclaimable count",
            sql::UNCLAIMABLE,
            "durable_tasks_claim",
        ),
    ] {
        assert_indexed(&store, what, statement, index).await;
    }
    // And the claims take the named types only, through those plans.
    let claimed = store
        .claim_rows(&durable_core::store::ClaimRequest::new(
            durable_core::WorkerId::new(),
            std::time::Duration::from_secs(30),
            1000,
            ["work"],
        ))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 200 - 200 / 7);
    assert!(claimed.iter().all(|c| c.name == "work"));
}

/// The counts per state (what the runtime's state gauges read every `stats_interval`) read
/// the rare states through an index that holds only their rows: counting a few cancelled rows
/// must not read every completed one.
#[tokio::test]
async fn counts_per_state_read_each_states_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 20,000 finished rows, all completed but for three cancelled and two failed ones.
    let store = filled_store(
        &dir,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO durable_tasks (id, name, queue, payload, state, max_attempts, run_at,
             created_at, updated_at, finished_at)
         SELECT printf('00000000-0000-7000-8000-%012d', i), 'work', 'default', '{}',
             CASE WHEN i <= 3 THEN 'cancelled' WHEN i <= 5 THEN 'failed' ELSE 'completed' END,
             3, i, i, i, i
         FROM n",
    )
    .await;
    let steps = plan(&store, super::overview::STATES).await;
    let shown = steps.join("\n");
    eprintln!("{shown}");
    // One count reads the table itself: the completed rows' (SQLite does not read the
    // pruning index for one of its two states), which stops at the bound in a table whose
    // finished rows are mostly completed ones.
    let scans = steps
        .iter()
        .filter(|s| s.starts_with("SCAN durable_tasks") && !s.contains("INDEX"))
        .count();
    assert_eq!(
        scans, 1,
        "only the completed count reads the table:\n{shown}"
    );
    assert!(
        steps
            .iter()
            .any(|s| s.contains("INDEX durable_tasks_cancelled")),
        "cancelled rows are counted on their own index:\n{shown}"
    );
    let states = durable_core::store::AdminStore::state_stats(&store)
        .await
        .expect("state stats");
    let of = |state: durable_core::TaskState| {
        states
            .iter()
            .find(|(s, _)| *s == state)
            .map(|(_, count)| *count)
            .expect("every state is reported")
    };
    assert_eq!(
        of(durable_core::TaskState::Cancelled),
        durable_core::store::Count::Exact(3)
    );
    assert_eq!(
        of(durable_core::TaskState::Failed),
        durable_core::store::Count::Exact(2)
    );
}
