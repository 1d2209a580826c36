//! Migrations across deploys: an older build against a newer schema, shipped migrations
//! whose text moved.

use std::path::Path;
use std::time::Duration;

use crate::conformance::Writes as _;
use durable_core::store::AdminStore as _;
use durable_core::store::{ClaimRequest, NewTask};
use durable_core::{TaskState, WorkerId};
use sqlx::PgPool;

/// The versions of this build's embedded migrations, read from the migrations folder (so
/// the tests hold as migrations are added).
pub(crate) fn embedded_versions() -> Vec<i64> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut versions: Vec<i64> = std::fs::read_dir(folder)
        .expect("the migrations folder")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".sql")?.split('_').next()?.parse().ok()
        })
        .collect();
    versions.sort_unstable();
    versions
}

/// This build's schema version: its newest embedded migration.
fn this_version() -> i64 {
    embedded_versions().last().copied().expect("a migration")
}

/// What a newer release leaves behind: its schema change, and its row in the migrations
/// table with the oldest schema version it declares compatible (`None`: no declaration).
async fn apply_newer_migration(pool: &PgPool, version: i64, compatible_from: Option<i64>) {
    sqlx::query("ALTER TABLE _durable_migrations ADD COLUMN IF NOT EXISTS compatible_from bigint")
        .execute(pool)
        .await
        .expect("the newer release's bookkeeping column");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER TABLE durable_tasks ADD COLUMN note_{version} text"
    )))
    .execute(pool)
    .await
    .expect("the newer release's schema change");
    sqlx::query(
        "INSERT INTO _durable_migrations
             (version, description, success, checksum, execution_time, compatible_from)
         VALUES ($1, 'add a note', TRUE, '\\x00'::bytea, 0, $2)",
    )
    .bind(version)
    .bind(compatible_from)
    .execute(pool)
    .await
    .expect("the newer release's migration row");
}

async fn applied_versions(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM _durable_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .expect("versions")
}

/// A rollout (or a rollback) restarts an instance of this version after a newer one applied
/// the next migration, which declares itself compatible with this version: it starts and works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_build_starts_against_a_compatible_newer_schema() {
    let Some(db) = crate::pg_db_or_skip().await else {
        return;
    };
    let v = this_version();
    apply_newer_migration(db.pool(), v + 1, Some(v)).await;

    let restarted = db.store_named("restarted").await;
    restarted
        .migrate()
        .await
        .expect("an older build starts against a schema compatible with it");
    assert_eq!(
        applied_versions(db.pool()).await,
        [embedded_versions(), vec![v + 1]].concat(),
        "nothing re-applied"
    );
    let task = NewTask::new("work", "{}");
    restarted
        .insert(std::slice::from_ref(&task))
        .await
        .expect("insert");
    let claimed = restarted
        .claim(&ClaimRequest::new(
            WorkerId::new(),
            Duration::from_secs(30),
            1,
            ["work"],
        ))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    let state = restarted
        .get(task.id)
        .await
        .expect("get")
        .expect("row")
        .state;
    assert_eq!(state, TaskState::Processing);
}

/// The next migration needs its own version or newer: this version refuses to start, naming
/// both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_build_refuses_an_incompatible_newer_schema() {
    let Some(db) = crate::pg_db_or_skip().await else {
        return;
    };
    let v = this_version();
    apply_newer_migration(db.pool(), v + 1, Some(v + 1)).await;

    let error = db
        .store_named("restarted")
        .await
        .migrate()
        .await
        .expect_err("an incompatible newer schema is refused")
        .to_string();
    assert!(
        error.contains(&format!("at version {}", v + 1))
            && error.contains(&format!("schema version {} or newer", v + 1))
            && error.contains(&format!("this build's schema version is {v}")),
        "{error}"
    );
}

/// Every newer migration must accept this version: the next does not, though the one after does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_newer_migration_must_accept_this_version() {
    let Some(db) = crate::pg_db_or_skip().await else {
        return;
    };
    let v = this_version();
    apply_newer_migration(db.pool(), v + 1, Some(v + 1)).await;
    apply_newer_migration(db.pool(), v + 2, Some(v)).await;

    let error = db
        .store
        .migrate()
        .await
        .expect_err("the first newer migration needs its own version")
        .to_string();
    assert!(
        error.contains(&format!("at version {}", v + 2))
            && error.contains(&format!("schema version {} or newer", v + 1)),
        "{error}"
    );
}

/// A newer migration recorded without a compatibility declaration counts as needing its own
/// version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_migration_without_a_declaration_is_refused() {
    let Some(db) = crate::pg_db_or_skip().await else {
        return;
    };
    let v = this_version();
    apply_newer_migration(db.pool(), v + 1, None).await;

    let error = db
        .store
        .migrate()
        .await
        .expect_err("no declaration: incompatible")
        .to_string();
    assert!(
        error.contains(&format!("schema version {} or newer", v + 1))
            && error.contains(&format!("this build's schema version is {v}")),
        "{error}"
    );
}

fn shipped(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations/postgres")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The checksum sqlx (and the store) computes for a migration's text.
fn checksum(sql: String) -> Vec<u8> {
    use sqlx::SqlSafeStr as _;
    sqlx::migrate::Migration::new(
        0,
        "checksum".into(),
        sqlx::migrate::MigrationType::Simple,
        sqlx::AssertSqlSafe(sql).into_sql_str(),
        false,
    )
    .checksum
    .into_owned()
}

async fn set_recorded_checksum(pool: &PgPool, version: i64, checksum: Vec<u8>) {
    sqlx::query("UPDATE _durable_migrations SET checksum = $1 WHERE version = $2")
        .bind(checksum)
        .bind(version)
        .execute(pool)
        .await
        .expect("update checksum");
}

/// A database migrated by a build from a CRLF checkout (Windows, `core.autocrlf`) recorded
/// the checksum of the CRLF text: the same migration, so it still starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_applied_from_a_crlf_checkout_is_the_same_migration() {
    let Some(db) = crate::pg_db_or_skip().await else {
        return;
    };
    let crlf = shipped("0002_requeues_and_attempt_started_at.sql").replace('\n', "\r\n");
    set_recorded_checksum(db.pool(), 2, checksum(crlf)).await;
    db.store
        .migrate()
        .await
        .expect("line endings do not make a different migration");
}

/// A shipped migration whose text changed otherwise is refused, with what to do instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_shipped_migration_is_refused_with_the_rule() {
    let Some(db) = crate::pg_db_or_skip().await else {
        return;
    };
    let edited = shipped("0001_create_durable_tasks.sql").replace("One row per task", "A task");
    set_recorded_checksum(db.pool(), 1, checksum(edited)).await;
    let error = db
        .store
        .migrate()
        .await
        .expect_err("an edited migration is refused")
        .to_string();
    assert!(
        error.contains("migration 1") && error.contains("new migration"),
        "{error}"
    );
}
