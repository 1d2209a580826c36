//! Claims walk a claim index in claim order, whatever the statistics say.

use sqlx::PgPool;

use super::pg_db_or_skip;

/// The live partition as the housekeeping's vacuum and analyze leave it in a healthy queue:
/// rows being processed and almost nothing pending. Planned on those statistics, a claim
/// expects a row or two, and reading every pending entry of an index and sorting them looks
/// as cheap as walking the claim index in order: PostgreSQL planned a bitmap scan of the
/// per-queue index (its leading column is the queue) and a sort. Under a held vacuum horizon
/// the claim indexes keep an entry for every task pending since, so each such claim read
/// more than the last until the next analyze. Every claim must walk its index in order, and
/// so must the looks before a resumed claim's position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_walk_their_index_in_order_whatever_the_statistics() {
    let Some(db) = pg_db_or_skip().await else {
        return;
    };
    sqlx::query(
        "INSERT INTO durable_tasks_live (id, name, queue, payload, state, attempts, max_attempts,
            lease_owner, lease_expires_at, started_at)
         SELECT gen_random_uuid(), 'work', CASE WHEN i % 4 = 0 THEN 'mail' ELSE 'default' END,
             '{}', CASE WHEN i % 5000 = 0 THEN 'pending' ELSE 'processing' END,
             CASE WHEN i % 5000 = 0 THEN 0 ELSE 1 END, 3,
             CASE WHEN i % 5000 = 0 THEN NULL ELSE gen_random_uuid() END,
             CASE WHEN i % 5000 = 0 THEN NULL ELSE now() + interval '30 seconds' END,
             CASE WHEN i % 5000 = 0 THEN NULL ELSE now() END
         FROM generate_series(1, 10000) AS i",
    )
    .execute(db.pool())
    .await
    .expect("fill");
    finish_most(db.pool(), "state = 'processing'").await;
    let names = ["work"];
    let plans = [
        ("claim", db.store.explain_claim(16, None, &names).await),
        (
            "resumed claim",
            db.store.explain_resumed_claim(16, None, &names).await,
        ),
    ];
    let (full, near) = db
        .store
        .explain_claim_look(None, &names)
        .await
        .expect("explain");
    // The near look's walks are bounded: one over higher priorities, one over the window
    // before the position (a lower bound in its index condition), in each of the live
    // partition's three leaves (lane 0 and the two lanes).
    assert_eq!(near.matches("Index Scan").count(), 2 * 3, "{near}");
    assert!(near.contains(">= ROW(0, "), "{near}");
    let plans = plans
        .into_iter()
        .map(|(what, plan)| (what, plan.expect("explain")));
    let plans = plans.chain([
        ("full look before the position", full),
        ("near look before the position", near),
    ]);
    for (what, plan) in plans {
        assert!(
            plan.contains("Index Scan using durable_tasks_keyed_ready on durable_tasks_keyed"),
            "the {what} does not walk the claim index:\n{plan}"
        );
        assert!(
            !super::sorts(&plan),
            "the {what} sorts what it read:\n{plan}"
        );
    }
    // The claim of one capped queue walks the per-queue index.
    let queue = db
        .store
        .explain_claim(8, Some("mail"), &names)
        .await
        .expect("explain");
    assert!(
        queue.contains("Index Scan using durable_tasks_keyed_ready_queue on durable_tasks_keyed"),
        "{queue}"
    );
    assert!(!super::sorts(&queue), "{queue}");
    let (full, near) = db
        .store
        .explain_claim_look(Some("mail"), &names)
        .await
        .expect("explain");
    for look in [full, near] {
        assert!(
            look.contains(
                "Index Scan using durable_tasks_keyed_ready_queue on durable_tasks_keyed"
            ),
            "{look}"
        );
        assert!(!super::sorts(&look), "{look}");
    }
}

/// Removes 99% of the live partition's rows that match `which` (an SQL condition), as
/// finished tasks leave it, then vacuums and analyzes it, as the housekeeping does: the
/// statistics of a healthy queue, pages that held thousands of rows holding a few.
pub(super) async fn finish_most(pool: &PgPool, which: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM durable_tasks_live WHERE ({which}) AND random() < 0.99"
    )))
    .execute(pool)
    .await
    .expect("finish");
    sqlx::query("VACUUM ANALYZE durable_tasks_live")
        .execute(pool)
        .await
        .expect("vacuum");
}
