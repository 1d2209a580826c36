//! `.schema(..)` puts the store's schema in front of the `search_path` the application set
//! (in the URL's `options`, or in `PgConnectOptions::options`), instead of replacing it.

use std::str::FromStr;

use durable_core::store::NewTask;
use durable_sqlx::postgres::PostgresStore;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::conformance::Writes as _;
use durable_testkit::PgSchema;

/// An application schema holding one table with one row; dropped with the guard.
async fn app_schema(url: &str) -> (String, PgSchema) {
    let guard = PgSchema::new(url).await;
    let schema = guard.name().to_owned();
    let mut conn = PgConnection::connect(url).await.expect("connect");
    for statement in [
        format!("CREATE SCHEMA {schema}"),
        format!("CREATE TABLE {schema}.app_items (id integer PRIMARY KEY)"),
        format!("INSERT INTO {schema}.app_items VALUES (1)"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .expect("application schema");
    }
    conn.close().await.expect("close");
    (schema, guard)
}

/// The store's connections resolve names through its schema, then the application's path;
/// its tables are in its schema; the application's table is found unqualified, also in the
/// transactions the store hands out.
async fn check_paths(store: &PostgresStore, durable: &str, app: &str) {
    store.migrate().await.expect("migrate");
    let schemas: Vec<String> = sqlx::query_scalar("SELECT unnest(current_schemas(false))::text")
        .fetch_all(store.pool())
        .await
        .expect("current_schemas");
    assert_eq!(
        schemas,
        [durable, app, "public"],
        "the application's path kept"
    );
    let mut tx = store.begin().await.expect("begin");
    let items: i64 = sqlx::query_scalar("SELECT count(*) FROM app_items")
        .fetch_one(&mut *tx)
        .await
        .expect("the application's table, unqualified");
    assert_eq!(items, 1);
    tx.commit().await.expect("commit");
    let placed: Vec<String> = sqlx::query_scalar(
        "SELECT schemaname::text FROM pg_tables
         WHERE tablename IN ('durable_tasks', '_durable_migrations')
           AND schemaname IN ($1, $2)",
    )
    .bind(durable)
    .bind(app)
    .fetch_all(store.pool())
    .await
    .expect("tables");
    assert_eq!(
        placed,
        [durable, durable],
        "the store's tables in its schema"
    );
    store
        .insert(&[NewTask::new("work", "{}")])
        .await
        .expect("usable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_path_in_the_url_is_kept_after_the_store_schema() {
    let Some(url) = crate::database_url() else {
        return;
    };
    let (app, _app_guard) = app_schema(&url).await;
    let guard = PgSchema::new(&url).await;
    let durable = guard.name().to_owned();
    let separator = if url.contains('?') { '&' } else { '?' };
    let with_path = format!("{url}{separator}options=-c%20search_path%3D{app}%2Cpublic");
    let store = PostgresStore::builder(with_path)
        .schema(&durable)
        .connect()
        .await
        .expect("connect");
    check_paths(&store, &durable, &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_path_in_the_connect_options_is_kept_after_the_store_schema() {
    let Some(url) = crate::database_url() else {
        return;
    };
    let (app, _app_guard) = app_schema(&url).await;
    let guard = PgSchema::new(&url).await;
    let durable = guard.name().to_owned();
    let options = PgConnectOptions::from_str(&url)
        .expect("url")
        .options([("search_path", format!("{app},public"))]);
    let store = PostgresStore::builder_with_options(options)
        .schema(&durable)
        .connect()
        .await
        .expect("connect");
    check_paths(&store, &durable, &app).await;
}
