//! `durable_now()` is inlined by the planner, before and after a test clock redefines it:
//! the hot statements keep reading the partial claim indexes, and no plan calls the function.

use durable_core::store::AdminStore as _;

/// Claim and count plans on 20,000 rows (1% pending), with the production definition and
/// after an advance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_now_is_inlined_before_and_after_an_advance() {
    let Some(db) = crate::pg_db_or_skip().await else {
        return;
    };
    sqlx::query(
        "INSERT INTO durable_tasks (id, name, queue, payload, state, max_attempts, finished_at)
         SELECT gen_random_uuid(), 'work', CASE WHEN i % 3 = 0 THEN 'mail' ELSE 'default' END,
                '{}', CASE WHEN i % 100 = 0 THEN 'pending' ELSE 'completed' END, 3,
                CASE WHEN i % 100 = 0 THEN NULL ELSE now() END
         FROM generate_series(1, 20000) AS i",
    )
    .execute(db.pool())
    .await
    .expect("fill");
    sqlx::query("ANALYZE durable_tasks")
        .execute(db.pool())
        .await
        .expect("analyze");
    let clock = db.store.test_clock();
    for moved in [false, true] {
        if moved {
            clock
                .advance(std::time::Duration::from_secs(3600))
                .await
                .expect("advance");
        }
        let any = db
            .store
            .explain_claim(64, None, &["work"])
            .await
            .expect("explain");
        let queue = db
            .store
            .explain_claim(8, Some("mail"), &["work"])
            .await
            .expect("explain");
        let (backlog, unclaimable) = db.store.explain_counts(&["work"]).await.expect("explain");
        for plan in [&any, &queue, &backlog, &unclaimable] {
            assert!(
                plan.contains("using durable_tasks_keyed_ready"),
                "moved {moved}: {plan}"
            );
            assert!(!super::scans_a_table(plan), "moved {moved}: {plan}");
            assert!(
                !plan.contains("durable_now"),
                "not inlined (moved {moved}): {plan}"
            );
        }
    }
    // The statements run against the redefined function: every pending row is due.
    assert_eq!(
        durable_core::store::WorkerStore::backlog(&db.store)
            .await
            .expect("backlog"),
        db.store.counts().await.expect("counts").pending
    );
}
