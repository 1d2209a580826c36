//! The admin router (`axum_durable::admin`) on both backends: who gets in, who may act,
//! CSRF, redaction, escaping, and the actions themselves.

mod access;
mod operations;
mod pages;
mod support;

use support::Harness;

/// Runs each case on a temporary SQLite file and, when a test database is configured, on a
/// PostgreSQL schema of its own.
macro_rules! on_both {
    ($($case:path => $name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let t = axum_durable::testing::TestDurable::new(crate::support::registry())
                        .await
                        .expect("harness");
                    $case(crate::Harness::new(t)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(url) = durable_testkit::database_url() else { return };
                    let schema = durable_testkit::PgSchema::new(&url).await;
                    let store = axum_durable::postgres::PostgresStore::builder(url.as_str())
                        .schema(schema.name())
                        .max_connections(8)
                        .connect()
                        .await
                        .expect("connect");
                    let t = axum_durable::testing::TestDurable::with_postgres(
                        store,
                        crate::support::registry(),
                    )
                    .await
                    .expect("harness");
                    $case(crate::Harness::new(t)).await;
                }
            )*
        }
    };
}

on_both!(
    crate::access::unauthenticated_requests_are_refused => unauthenticated_requests_are_refused,
    crate::access::a_wrong_password_is_refused => a_wrong_password_is_refused,
    crate::access::actions_need_an_operator_same_origin_and_the_token => actions_need_an_operator_same_origin_and_the_token,
    crate::access::an_api_action_carries_what_was_seen => an_api_action_carries_what_was_seen,
    crate::access::logout_ends_the_session => logout_ends_the_session,
    crate::access::path_and_method_tricks_reach_nothing => path_and_method_tricks_reach_nothing,
    crate::pages::payloads_are_redacted_and_escaped => payloads_are_redacted_and_escaped,
    crate::pages::lists_follow_the_contract => lists_follow_the_contract,
    crate::operations::retry_and_delete_from_the_detail_page => retry_and_delete_from_the_detail_page,
    crate::operations::retry_failed_of_a_type => retry_failed_of_a_type,
    crate::operations::retry_failed_form_keeps_the_queue => retry_failed_form_keeps_the_queue,
    crate::operations::the_overview_counts_and_charts => the_overview_counts_and_charts,
);
