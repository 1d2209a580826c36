//! The store conformance suite: behaviour every `Store` must have. Each backend's test file
//! instantiates it with `conformance_tests!(make_db)`, where `make_db()` returns a fresh,
//! private database (a new SQLite file, a new PostgreSQL schema) so tests run in parallel.

#![allow(dead_code, unreachable_pub)]

pub mod admin;
pub mod admin_actions;
pub mod admin_errors;
pub mod ahead;
pub mod attempts;
pub mod cancel;
pub mod clock;
mod counting;
pub mod faulty;
mod forward;
pub mod hand_back;
pub mod hardening;
pub mod idempotency;
pub mod periodic;
pub mod runtime;
pub mod steps;
pub mod store;
pub mod tasks;
pub mod unique;
pub mod wait;
pub mod wakeups;
pub mod writes;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use durable_core::store::{Store, TaskRecord};
use durable_core::{TaskId, TaskState};

pub use writes::Writes;

/// A fresh private database.
pub trait TestDb: Send + Sync + 'static {
    /// The store under test (already migrated).
    fn store(&self) -> Arc<dyn Store>;
    /// A second, independent store (own pools/connections) on the same database: another
    /// "process".
    fn another(&self) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>>;
}

/// Polls `check` until it returns `Some`, or panics after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Everything logged at WARN or above by this test binary so far, every test's alike (look
/// for something unique to the test). The first call installs the capturing subscriber.
pub fn warnings() -> String {
    use std::sync::{Mutex, OnceLock};
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let log = LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || Capture(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        log
    });
    let bytes = log.lock().expect("log").clone();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Appends log lines to the captured text.
struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads a row that must exist.
pub async fn row(store: &Arc<dyn Store>, id: TaskId) -> TaskRecord {
    store
        .get(id)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("task {id} not stored"))
}

/// Waits until a row reaches `state`.
pub async fn wait_state(
    store: &Arc<dyn Store>,
    id: TaskId,
    state: TaskState,
    deadline: Duration,
) -> TaskRecord {
    eventually(&format!("task {id} to be {state}"), deadline, || async {
        let r = row(store, id).await;
        (r.state == state).then_some(r)
    })
    .await
}

/// Generates one `#[tokio::test]` per conformance case for a backend. `make()` returns a
/// fresh database, or `None` when the backend is not available here (the test then returns
/// after the backend printed why).
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!(@store $make;
            insert_and_get, insert_batch_is_atomic, claim_respects_limit_and_order,
            claim_skips_future_tasks, claim_caps_per_queue, claimed_insert_is_processing,
            fencing_rejects_stale_worker, heartbeat_extends_and_reports_lost,
            retry_returns_to_pending_later, fail_keeps_error, requeue_does_not_count_attempt,
            rescue_requeues_or_fails_expired, cancel_only_pending, prune_bounded_and_keeps_failed,
            counts_per_state, concurrent_claimers_never_share_a_task,
            two_stores_fencing_interleaving, migrate_is_idempotent,
            write_combines_completions_inserts_and_claim, write_parts_fail_alone,
            backlog_counts_due_rows_only, claim_takes_only_named_task_types,
            unclaimable_counts_waiting_unknown_types, list_filters_and_pages_in_id_order);
        $crate::conformance_tests!(@attempts $make;
            requeue_counts_attempts_past_its_limit,
            rescue_spares_a_last_attempt_that_never_started, rescue_counts_earlier_attempts,
            completion_wins_over_a_hand_back_in_one_cycle);
        $crate::conformance_tests!(@runtime $make;
            runs_to_completion, retries_then_succeeds, panic_is_caught_and_retried,
            timeout_is_retryable, permanent_error_fails_at_once, exhausted_attempts_end_failed,
            unknown_task_type_waits_for_a_runtime_that_knows_it, unknown_task_types_are_reported, undecodable_payload_is_retried_then_fails, oversized_payload_refused,
            concurrency_limit_never_exceeded, queue_limit_never_exceeded,
            shutdown_requeues_unfinished, shutdown_waits_for_finishing_tasks,
            local_dispatch_starts_without_poll, notify_committed_wakes_runtime,
            scheduled_task_runs_when_due, lease_expiry_recovered_by_second_runtime,
            lost_lease_cancels_zombie_attempt, retention_prunes_completed_only,
            concurrent_enqueuers_and_workers, enqueue_from_task, idle_runtime_is_quiet,
            cancelled_task_never_runs, shutdown_during_claim_drains_claimed_tasks,
            shutdown_drains_tasks_committed_after_the_last_claim);
        $crate::conformance_tests!(@unique $make;
            unique_dedups_while_pending_and_processing, unique_states_decide_when_the_key_is_free,
            unique_period_holds_completed_tasks_until_the_period_ends, unique_rows_in_one_batch,
            unique_race_through_the_writer, unique_race_in_user_transactions,
            unique_dedup_starts_nothing_and_keeps_capacity);
        $crate::conformance_tests!(@idempotency $make;
            idempotency_first_running_mismatch_then_replay, idempotency_release_lets_a_retry_run,
            idempotency_expired_keys_run_as_new_and_are_purged,
            idempotency_lock_expiry_hands_the_key_over,
            idempotency_record_and_tasks_commit_together);
        $crate::conformance_tests!(@cancel $make;
            cancel_pending_never_runs, cancel_running_fires_the_token_and_ends_cancelled,
            another_instance_cancels_a_running_task, rescue_of_a_cancel_requested_row_cancels_it,
            outcomes_of_a_cancel_requested_task,
            snooze_keeps_the_attempt_and_runs_again_after_the_delay,
            snoozing_forever_with_one_attempt_still_runs_again);
        $crate::conformance_tests!(@periodic $make;
            store_clock_is_current, schedule_rows_compare_and_set,
            concurrent_advances_enqueue_each_occurrence_once, catch_up_policies_after_a_gap,
            runtimes_share_a_schedule_without_a_leader);
        $crate::conformance_tests!(@clock $make;
            advance_makes_a_delayed_task_due, advance_makes_a_retry_due,
            advance_expires_a_lease_for_rescue,
            runtime_runs_delayed_tasks_and_retries_after_advance);
        $crate::conformance_tests!(@wakeups $make;
            a_slot_freed_while_the_queue_ran_dry_claims_nothing,
            a_wakeup_while_every_slot_is_busy_claims_when_one_frees);
        $crate::conformance_tests!(@ahead $make;
            a_task_claimed_ahead_starts_when_the_slot_frees,
            a_task_claimed_ahead_is_handed_back_unstarted_at_shutdown,
            auto_claims_ahead_of_short_tasks_behind_slow_claims,
            auto_claims_nothing_ahead_of_long_tasks,
            auto_claims_nothing_ahead_while_every_slot_is_held,
            auto_claims_ahead_only_for_the_slots_that_turn_over);
        $crate::conformance_tests!(@wait $make;
            wait_returns_the_final_state, wait_sees_a_task_run_by_another_instance);
        $crate::conformance_tests!(@hardening $make;
            panics_anywhere_in_an_attempt_are_failed_attempts,
            task_cancelling_its_own_token_is_retried,
            reclaim_by_the_same_runtime_keeps_every_slot,
            shutdown_keeps_its_grace_when_outcome_writes_hang,
            insert_committed_after_a_forced_shutdown_is_handed_back,
            a_last_attempt_is_marked_started_before_it_runs,
            claim_landing_after_the_hand_back_starts_nothing);
        $crate::conformance_tests!(@hand_back $make;
            shutdown_reports_a_hand_back_it_could_not_write,
            shutdown_gives_a_slow_database_the_time_its_writes_take,
            shutdown_writes_the_outcomes_attempts_were_still_recording);
        $crate::conformance_tests!(@admin $make;
            admin_pages_in_both_orders_with_filters, admin_lists_a_creation_time_range,
            admin_search_is_bounded_and_resumable, admin_stats_exact_then_bounded,
            admin_throughput_adds_and_sums);
        $crate::conformance_tests!(@admin_errors $make;
            admin_error_history_across_retries, admin_error_history_of_rescues_and_hand_backs);
        $crate::conformance_tests!(@admin_actions $make;
            admin_retry_puts_failed_and_cancelled_tasks_back, admin_retry_respects_unique_keys,
            admin_retry_failed_oldest_first, admin_delete_removes_the_task_and_its_steps,
            admin_requeue_ends_the_running_attempts_fence, admin_requeue_stuck_attempts,
            admin_retry_and_requeue_wake_runtimes);
        $crate::conformance_tests!(@steps $make;
            steps_run_once_per_task, duplicate_step_names_fail_the_task,
            step_checkpoints_are_fenced_and_pruned, zombie_completion_never_commits,
            uncommitted_completion_is_a_failed_attempt, step_in_commits_with_its_rows);
        // Bulk retries past held and shared unique keys, and operators retrying at once.
        $crate::conformance_tests!(@admin_actions $make;
            admin_retry_failed_passes_over_held_keys, admin_concurrent_retries_make_one_live_task);
    };
    // Each module's cases: `@module $make; case, ...` runs `conformance::module::case`.
    (@$module:ident $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(db) = $make().await else { return };
                conformance::$module::$case(&db).await;
            }
        )*
    };
}
