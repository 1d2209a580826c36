//! Three releases on one database, through the real migrator: this one (latest migration
//! `v`); the next, whose migration `v + 1` declares compatibility with this one; and the one
//! after, whose migration `v + 2` declares none with older builds. Instances of each start in turn, as in a rollout and a
//! rollback.

use sqlx::migrate::{Migration, MigrationType};
use sqlx::SqlSafeStr as _;

use crate::error::Error;

/// The next release's migration (`v + 1` for this release's latest version `v`): a nullable
/// column, which builds of version `v` ignore.
fn next_sql(this: i64) -> String {
    format!(
        "-- durable:compatible-from {this}\n\
         -- A nullable column: older builds leave it NULL.\n\
         ALTER TABLE durable_tasks ADD COLUMN note TEXT;\n"
    )
}

/// The migration of the release after (`v + 2`): one that only builds of its version handle.
fn after_sql(version: i64) -> String {
    format!(
        "-- durable:compatible-from {version}\n\
         ALTER TABLE durable_tasks ADD COLUMN kind TEXT NOT NULL DEFAULT 'x';\n"
    )
}

/// `base` with `sql` as one more migration.
fn release(base: &[Migration], version: i64, sql: String) -> Vec<Migration> {
    let mut migrations = base.to_vec();
    migrations.push(Migration::new(
        version,
        format!("release {version}").into(),
        MigrationType::Simple,
        sqlx::AssertSqlSafe(sql).into_sql_str(),
        false,
    ));
    migrations
}

/// What every backend's run must show, given how to run a release and read the records.
macro_rules! roll_forward_and_back {
    ($this:expr, $run:expr, $records:expr, $use_store:expr) => {{
        let this: &[Migration] = $this;
        let v = this.iter().map(|m| m.version).max().unwrap_or(0);
        let next = release(this, v + 1, next_sql(v));
        let after = release(&next, v + 2, after_sql(v + 2));
        $run(this).await.expect("this release, on a fresh database");
        let shipped = $records.await;
        assert_eq!(shipped.first(), Some(&(1, 1)));
        assert_eq!(shipped.last().map(|r| r.0), Some(v));
        $run(&next).await.expect("the next release");
        $run(this)
            .await
            .expect("an instance of this release restarting after the next one migrated");
        let mut expected: Vec<(i64, i64)> = this
            .iter()
            .map(|m| (m.version, super::compatible_from(m).expect("declaration")))
            .collect();
        expected.push((v + 1, v));
        assert_eq!($records.await, expected);
        $use_store.await;

        $run(&after).await.expect("the release after");
        for (build, supported) in [(this, v), (&next[..], v + 1)] {
            match $run(build).await {
                Err(Error::IncompatibleSchema {
                    applied,
                    required,
                    supported: s,
                }) if s == supported && applied == v + 2 && required == v + 2 => {}
                other => panic!("release {supported} against migration {}: {other:?}", v + 2),
            }
        }
        $run(&after).await.expect("the release after, again");
    }};
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_releases_roll_forward_and_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        crate::sqlite::SqliteStore::connect(dir.path().join("tasks.db").display().to_string())
            .await
            .expect("connect");
    let pool = store.writer_pool().clone();
    let records = || async {
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT version, compatible_from FROM _durable_migrations ORDER BY version",
        )
        .fetch_all(&pool)
        .await
        .expect("records")
    };
    let use_store = async {
        let task = durable_core::store::NewTask::new("work", "{}");
        store
            .insert_rows(std::slice::from_ref(&task))
            .await
            .expect("insert");
        assert!(durable_core::store::AdminStore::get(&store, task.id)
            .await
            .expect("get")
            .is_some());
    };
    roll_forward_and_back!(
        &super::sqlite::MIGRATOR.migrations,
        |m| super::sqlite::run(&pool, m),
        records(),
        use_store
    );
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_releases_roll_forward_and_back() {
    use sqlx::Connection as _;

    let url = match std::env::var("DURABLE_TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            assert!(
                std::env::var("CI").map_or(true, |v| v.is_empty()),
                "PostgreSQL tests are required in CI: set DURABLE_TEST_DATABASE_URL"
            );
            return;
        }
    };
    // A schema of its own, named so the integration tests' sweeper drops it if this test dies.
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    let store = crate::postgres::PostgresStore::builder(url.as_str())
        .schema(schema.as_str())
        .connect()
        .await
        .expect("connect");
    let options = (*store.pool().connect_options()).clone();
    let pool = store.pool().clone();
    let records = || async {
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT version, compatible_from FROM _durable_migrations ORDER BY version",
        )
        .fetch_all(&pool)
        .await
        .expect("records")
    };
    let use_store = async {
        let task = durable_core::store::NewTask::new("work", "{}");
        store
            .insert_rows(std::slice::from_ref(&task))
            .await
            .expect("insert");
        assert!(durable_core::store::AdminStore::get(&store, task.id)
            .await
            .expect("get")
            .is_some());
    };
    roll_forward_and_back!(
        &super::postgres::MIGRATOR.migrations,
        |m| super::postgres::run(&options, m),
        records(),
        use_store
    );
    store.pool().close().await;
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await
    .expect("drop the schema");
}
